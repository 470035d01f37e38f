"""JSON merge patch (RFC 7396) and patching a policy with it."""

from __future__ import annotations

from typing import Any

import pytest

from service.domain.tenancy.policy import Policy, apply_policy_patch, merge_patch
from service.errors import InvalidRequest

# RFC 7396, appendix A.
RFC_EXAMPLES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), RFC_EXAMPLES)
def test_merge_patch_follows_the_rfc(target: Any, patch: Any, result: Any) -> None:
    assert merge_patch(target, patch) == result


def test_null_resets_a_field_to_its_default() -> None:
    policy = Policy(pii="block", max_output_tokens=10, rate_limits={"requests_per_minute": 5})
    patched = apply_policy_patch(policy, {"pii": None, "rate_limits": {"tokens_per_minute": 7}})
    assert patched.pii == "redact"
    assert patched.max_output_tokens == 10
    assert patched.rate_limits is not None
    assert (patched.rate_limits.requests_per_minute, patched.rate_limits.tokens_per_minute) == (
        5,
        7,
    )


def test_the_result_is_validated_whole() -> None:
    policy = Policy(allowed_models=["my-model"], allow_unknown_models=True)
    with pytest.raises(InvalidRequest) as raised:
        apply_policy_patch(policy, {"allow_unknown_models": None})
    assert "my-model" in raised.value.message
    with pytest.raises(InvalidRequest) as unknown:
        apply_policy_patch(policy, {"rate_limits": {"per_day": 1}})
    assert unknown.value.param == "rate_limits.per_day"
