"""The org's models: tuned models (registered when a fine-tuning job succeeds), the base models
its policy allows, and aliases, which give a tuned model a stable name.

A model of another org and a model that does not exist answer the same 404 `model_not_found`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from service.domain.inference.request import route_model
from service.domain.pricing import is_tuned
from service.domain.tenancy.access import Capability, parse_key, role_allows, secret_matches
from service.domain.tenancy.model_names import entry_admits
from service.domain.tenancy.policy import Policy
from service.errors import (
    AuthenticationFailed,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    UpstreamRejected,
)
from service.ids import is_valid
from service.operations.context import Context
from service.operations.tenancy.orgs import get_org
from service.store import Store
from service.store.inference.models import CallerView, TunedModelRecord

BASE_OWNER = "system"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    created: int
    owned_by: str


@dataclass(frozen=True, slots=True)
class Alias:
    name: str
    model: str


def model_not_found(model: str, param: str = "model") -> NotFound:
    return NotFound(
        f"The model '{model}' does not exist or you do not have access to it.",
        param=param,
        code="model_not_found",
    )


def model_refused_by_policy(model: str, param: str = "model") -> NotFound:
    return NotFound(
        f"The model '{model}' is not in this organization's allowed_models policy.",
        param=param,
        code="model_not_found",
    )


async def register_tuned_model(
    store: Store,
    org_id: str,
    model_id: str,
    base_model: str,
    job_id: str | None = None,
    *,
    created: int | None = None,
) -> TunedModelRecord:
    """Make a tuned model routable for its org (idempotent: registering again replaces it)."""
    record = TunedModelRecord(
        id=model_id,
        org_id=org_id,
        base_model=base_model,
        job_id=job_id,
        created=created if created is not None else int(time.time()),
    )
    await store.models.put_model(record)
    return record


def _tuned_info(record: TunedModelRecord) -> ModelInfo:
    return ModelInfo(record.id, record.created, record.org_id)


def base_models(ctx: Context, policy: Policy) -> list[str]:
    """The base models the policy allows: its list, or every model the price table knows
    (fine-tunable, then served: embeddings, moderations and the rest)."""
    if policy.allowed_models:
        return [name for name in policy.allowed_models if not is_tuned(name)]
    names: list[str] = []
    for snapshot, price in ctx.prices.models.items():
        names += [snapshot, *price.aliases]
    return names + ctx.prices.served_names()


async def list_models(ctx: Context, org_id: str) -> list[ModelInfo]:
    org = await get_org(ctx.store, org_id)
    tuned = [_tuned_info(record) for record in await ctx.store.models.list_models(org_id)]
    return tuned + [ModelInfo(name, 0, BASE_OWNER) for name in base_models(ctx, org.policy)]


async def get_model(ctx: Context, org_id: str, model_id: str) -> ModelInfo:
    record = await ctx.store.models.get_model(org_id, model_id)
    if record is not None:
        return _tuned_info(record)
    org = await get_org(ctx.store, org_id)
    names = base_models(ctx, org.policy)
    if model_id in names or any(entry_admits(name, model_id) for name in names):
        return ModelInfo(model_id, 0, BASE_OWNER)
    raise model_not_found(model_id)


async def delete_model(ctx: Context, org_id: str, model_id: str) -> None:
    """Delete one of the org's tuned models upstream and stop routing to it."""
    if await ctx.store.models.get_model(org_id, model_id) is None:
        raise model_not_found(model_id)
    try:
        await ctx.upstream.delete_model(model_id)
    except UpstreamRejected as error:
        if error.status != 404:  # already gone upstream: finish the job here
            raise
    await ctx.store.models.remove_model(org_id, model_id)


async def caller_view(ctx: Context, token: str) -> CallerView:
    """The proxy's caller: its key (checked), org, tuned models and aliases (cached briefly)."""
    parsed = parse_key(token)
    view = await ctx.store.models.caller(parsed[0]) if parsed else None
    if parsed is None or view is None or not secret_matches(parsed[1], view.key.secret_hash):
        raise AuthenticationFailed("Incorrect API key provided.")
    if view.key.revoked_at is not None:
        raise AuthenticationFailed(
            "This API key has been revoked.",
            code="revoked_api_key",
            extra={"org_id": view.org.id, "key_id": view.key.id},
        )
    if not role_allows(view.key.role, Capability.INFERENCE):
        raise PermissionDenied(
            f"A key with role '{view.key.role}' may not do this ({Capability.INFERENCE.value})."
        )
    return view


# Aliases


def invalid_alias_name() -> InvalidRequest:
    return InvalidRequest(
        "An alias name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.",
        param="name",
    )


def alias_not_found(name: str) -> NotFound:
    return NotFound(f"No alias named '{name}'.", param="name", code="alias_not_found")


def check_alias_name(name: str) -> str:
    if not is_valid("alias", name):
        raise invalid_alias_name()
    return name


async def put_alias(ctx: Context, org_id: str, name: str, model: str) -> Alias:
    check_alias_name(name)
    org = await get_org(ctx.store, org_id)
    aliases = await ctx.store.models.list_aliases(org_id)
    if model in aliases:
        raise InvalidRequest("An alias must name a model, not another alias.", param="model")
    tuned = {r.id: r for r in await ctx.store.models.list_models(org_id)}
    if route_model(model, org.policy, tuned, {}) is None:
        raise model_not_found(model)
    await ctx.store.models.put_alias(org_id, name, model)
    return Alias(name, model)


async def get_alias(store: Store, org_id: str, name: str) -> Alias:
    model = (await store.models.list_aliases(org_id)).get(name)
    if model is None:
        raise alias_not_found(name)
    return Alias(name, model)


async def list_aliases(store: Store, org_id: str) -> list[Alias]:
    aliases = await store.models.list_aliases(org_id)
    return [Alias(name, aliases[name]) for name in sorted(aliases)]


async def delete_alias(store: Store, org_id: str, name: str) -> Alias:
    alias = await get_alias(store, org_id, name)
    await store.models.remove_alias(org_id, name)
    return alias
