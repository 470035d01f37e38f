"""Orgs, policies and keys: the operator's use cases, and authenticating an org key."""

from __future__ import annotations

import time
from typing import Any

from service.domain.tenancy.access import (
    IssuedKey,
    Principal,
    Role,
    issue_key,
    parse_key,
    secret_matches,
)
from service.domain.tenancy.policy import Policy, apply_policy_patch
from service.domain.webhooks.targets import Network
from service.errors import AuthenticationFailed, NotFound
from service.ids import new_id
from service.operations.webhooks.destinations import check_policy
from service.store import Store
from service.store.tenancy.orgs import KeyRecord, OrgRecord


async def create_org(
    store: Store, name: str, policy: Policy | None, *, networks: tuple[Network, ...] = ()
) -> OrgRecord:
    """`networks`: private networks the org's callbacks may reach besides public addresses."""
    if policy is not None:
        await check_policy(policy, networks)
    org = OrgRecord(
        id=new_id("org_"), name=name, policy=policy or Policy(), created_at=int(time.time())
    )
    await store.tenancy.put_org(org)
    return org


def org_not_found(org_id: str) -> NotFound:
    return NotFound(f"No org with id '{org_id}'.", param="org_id")


def key_not_found(key_id: str) -> NotFound:
    return NotFound(f"No key with id '{key_id}' in this org.", param="key_id")


async def get_org(store: Store, org_id: str) -> OrgRecord:
    org = await store.tenancy.get_org(org_id)
    if org is None:
        raise org_not_found(org_id)
    return org


async def replace_policy(
    store: Store, org_id: str, policy: Policy, *, networks: tuple[Network, ...] = ()
) -> OrgRecord:
    org = await get_org(store, org_id)
    await check_policy(policy, networks)
    org.policy = policy
    await store.tenancy.put_org(org)
    return org


async def patch_policy(
    store: Store, org_id: str, patch: Any, *, networks: tuple[Network, ...] = ()
) -> OrgRecord:
    """Apply a JSON merge patch to the org's policy; the result replaces it as PUT would."""
    org = await get_org(store, org_id)
    policy = apply_policy_patch(org.policy, patch)
    return await replace_policy(store, org_id, policy, networks=networks)


async def create_key(
    store: Store, org_id: str, name: str, role: Role
) -> tuple[KeyRecord, IssuedKey]:
    await get_org(store, org_id)
    issued = issue_key()
    record = KeyRecord(
        id=issued.key_id,
        org_id=org_id,
        name=name,
        role=role,
        secret_hash=issued.secret_hash,
        created_at=int(time.time()),
    )
    await store.tenancy.put_key(record)
    return record, issued


async def list_keys(store: Store, org_id: str) -> list[KeyRecord]:
    await get_org(store, org_id)
    return await store.tenancy.list_keys(org_id)


async def page_keys(
    store: Store, org_id: str, *, after: str | None, limit: int
) -> tuple[list[KeyRecord], bool]:
    """A page of the org's keys, newest first, after the key id `after`; and whether more follow."""
    found = list(reversed(await list_keys(store, org_id)))
    if after is not None:
        ids = [record.id for record in found]
        found = found[ids.index(after) + 1 :] if after in ids else []
    return found[:limit], len(found) > limit


async def get_key(store: Store, org_id: str, key_id: str) -> KeyRecord:
    """The org's key `key_id`; another org's key is as unknown as one that never existed."""
    await get_org(store, org_id)
    record = await store.tenancy.get_key(key_id)
    if record is None or record.org_id != org_id:
        raise key_not_found(key_id)
    return record


async def revoke_key(store: Store, org_id: str, key_id: str) -> KeyRecord:
    """Revoke at once (again: a no-op). A key may revoke itself: its next call is a 401."""
    record = await get_key(store, org_id, key_id)
    if record.revoked_at is None:
        record.revoked_at = int(time.time())
        await store.tenancy.put_key(record)
    return record


async def authenticate(store: Store, presented: str) -> Principal:
    """The principal for a presented org key; AuthenticationFailed for anything else."""
    parsed = parse_key(presented)
    if parsed is None:
        raise AuthenticationFailed("Incorrect API key provided.")
    key_id, secret = parsed
    record = await store.tenancy.get_key(key_id)
    if record is None or not secret_matches(secret, record.secret_hash):
        raise AuthenticationFailed("Incorrect API key provided.")
    if record.revoked_at is not None:
        raise AuthenticationFailed(
            "This API key has been revoked.",
            code="revoked_api_key",
            extra={"org_id": record.org_id, "key_id": record.id},
        )
    return Principal(org_id=record.org_id, key_id=record.id, role=record.role)
