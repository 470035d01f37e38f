"""Roles, capabilities, and org keys.

A key reads `tgk_<key id>_<secret>`: the id finds the record in one lookup, and the secret is
checked against its stored SHA-256 in constant time. Keys are shown once and never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

Role = Literal["admin", "member", "inference"]
ROLES: tuple[Role, ...] = ("admin", "member", "inference")
KEY_PREFIX = "tgk"


class Capability(StrEnum):
    INFERENCE = "inference"
    MODELS_READ = "models.read"
    MODELS_WRITE = "models.write"
    DATASETS = "datasets"
    JOBS = "jobs"
    ALIASES = "aliases"
    USAGE = "usage"
    AUDIT = "audit"
    KEYS = "keys"


_ROLE_CAPABILITIES: dict[Role, frozenset[Capability]] = {
    "admin": frozenset(Capability),
    "member": frozenset(Capability) - {Capability.AUDIT, Capability.KEYS},
    "inference": frozenset({Capability.INFERENCE, Capability.MODELS_READ}),
}


def role_allows(role: Role, capability: Capability) -> bool:
    return capability in _ROLE_CAPABILITIES[role]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an org key (org_id, key_id, role) or the operator (org_id None)."""

    org_id: str | None
    key_id: str | None
    role: Role | Literal["operator"]

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"


OPERATOR = Principal(org_id=None, key_id=None, role="operator")


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key_id: str
    secret_hash: str
    plaintext: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_key() -> IssuedKey:
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return IssuedKey(key_id, hash_secret(secret), f"{KEY_PREFIX}_{key_id}_{secret}")


def parse_key(presented: str) -> tuple[str, str] | None:
    """Split a presented key into (key id, secret), or None when it is not ours."""
    prefix, _, rest = presented.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or not key_id or not secret:
        return None
    return key_id, secret


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def token_matches(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode(), expected.encode())
