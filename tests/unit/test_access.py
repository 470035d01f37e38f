"""Keys: format, hashing, constant-time checks; roles and capabilities."""

from __future__ import annotations

from service.domain.tenancy.access import (
    Capability,
    hash_secret,
    issue_key,
    parse_key,
    role_allows,
    secret_matches,
)


def test_issued_key_parses_back_and_matches_only_its_hash() -> None:
    issued = issue_key()
    parsed = parse_key(issued.plaintext)
    assert parsed is not None
    key_id, secret = parsed
    assert key_id == issued.key_id
    assert secret_matches(secret, issued.secret_hash)
    assert not secret_matches(secret + "x", issued.secret_hash)
    assert issued.secret_hash == hash_secret(secret)
    assert secret not in issued.secret_hash


def test_keys_are_unique_and_long() -> None:
    keys = {issue_key().plaintext for _ in range(200)}
    assert len(keys) == 200
    assert all(len(key) > 50 for key in keys)


def test_foreign_strings_do_not_parse() -> None:
    for value in ("", "sk-abc", "tgk_", "tgk_abc", "tgk__secret", "xyz_abc_def"):
        assert parse_key(value) is None


def test_role_capabilities_follow_design() -> None:
    assert all(role_allows("admin", capability) for capability in Capability)
    assert not role_allows("member", Capability.AUDIT)
    assert not role_allows("member", Capability.KEYS)
    assert role_allows("member", Capability.JOBS)
    assert role_allows("member", Capability.DATASETS)
    assert role_allows("inference", Capability.INFERENCE)
    assert role_allows("inference", Capability.MODELS_READ)
    for capability in set(Capability) - {Capability.INFERENCE, Capability.MODELS_READ}:
        assert not role_allows("inference", capability)
