"""Property: personal data planted in any string the model reads never reaches the upstream.

Bodies are drawn from OpenAI's request shapes (messages with names, tool calls, refusals and
legacy function calls, tool definitions with nested parameter schemas, structured-output
schemas, predictions, metadata, legacy prompts and suffixes, and a field OpenAI might add
tomorrow at a random depth). One e-mail, phone number, SSN and card number are planted in four
random strings each. Under `block` the request is refused naming exactly those JSON paths;
under `redact` the sandbox's request log never holds a planted value.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.domain.pii.body import STRUCTURAL_KEYS
from tests.api.proxy_helpers import Proxy, proxy, upstream

__all__ = ["proxy", "upstream"]

PLANTED = {
    "EMAIL": "planted.person@example.com",
    "PHONE": "(415) 555-2671",
    "US_SSN": "321-54-9876",
    "CREDIT_CARD": "4111 1111 1111 1111",
}
WORDS = st.sampled_from(["alpha", "beta", "gamma", "delta", "note", "reply", "check the order"])
NAMES = st.sampled_from(["city", "when", "topic", "limit", "query"])
ARGUMENTS = "\x00arguments"  # marks a dict that leaves as a JSON string (tool-call arguments)


def schemas(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    leaf = st.fixed_dictionaries({"type": st.just("string"), "description": WORDS})
    if depth == 0:
        return leaf
    nested = st.fixed_dictionaries(
        {
            "type": st.just("object"),
            "description": WORDS,
            "properties": st.dictionaries(NAMES, schemas(depth - 1), min_size=1, max_size=2),
        }
    )
    return st.one_of(leaf, nested)


FUTURE = st.recursive(
    WORDS,
    lambda inner: (
        st.lists(inner, min_size=1, max_size=3)
        | st.dictionaries(NAMES, inner, min_size=1, max_size=3)
    ),
    max_leaves=6,
)


def tool_call(index: int) -> st.SearchStrategy[dict[str, Any]]:
    arguments = st.dictionaries(NAMES, WORDS, min_size=1, max_size=3).map(
        lambda values: {ARGUMENTS: values}
    )
    return st.fixed_dictionaries(
        {
            "id": st.just(f"call_{index}"),
            "type": st.just("function"),
            "function": st.fixed_dictionaries({"name": st.just("lookup"), "arguments": arguments}),
        }
    )


MESSAGES = st.tuples(
    st.fixed_dictionaries({"role": st.just("system"), "content": WORDS}),
    st.fixed_dictionaries(
        {
            "role": st.just("user"),
            "name": WORDS,
            "content": st.lists(
                st.fixed_dictionaries({"type": st.just("text"), "text": WORDS}),
                min_size=1,
                max_size=3,
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "role": st.just("assistant"),
            "content": WORDS,
            "refusal": WORDS,
            "tool_calls": st.lists(tool_call(0), min_size=1, max_size=2),
            "function_call": st.fixed_dictionaries({"name": st.just("lookup"), "arguments": WORDS}),
        }
    ),
    st.fixed_dictionaries(
        {"role": st.just("tool"), "tool_call_id": st.just("call_0"), "content": WORDS}
    ),
).map(list)

CHAT = st.fixed_dictionaries(
    {
        "model": st.just("gpt-4o-mini"),
        "messages": MESSAGES,
        "tools": st.lists(
            st.fixed_dictionaries(
                {
                    "type": st.just("function"),
                    "function": st.fixed_dictionaries(
                        {"name": st.just("lookup"), "description": WORDS, "parameters": schemas(2)}
                    ),
                }
            ),
            min_size=1,
            max_size=2,
        ),
        "response_format": st.fixed_dictionaries(
            {
                "type": st.just("json_schema"),
                "json_schema": st.fixed_dictionaries(
                    {"name": st.just("answer"), "description": WORDS, "schema": schemas(2)}
                ),
            }
        ),
        "prediction": st.fixed_dictionaries({"type": st.just("content"), "content": WORDS}),
        "metadata": st.dictionaries(NAMES, WORDS, min_size=1, max_size=2),
        "future_field": FUTURE,
    }
)
LEGACY = st.fixed_dictionaries(
    {
        "model": st.just("davinci-002"),
        "prompt": st.lists(
            st.one_of(WORDS, st.lists(WORDS, min_size=1, max_size=2)), min_size=1, max_size=3
        ),
        "suffix": WORDS,
        "future_field": FUTURE,
    }
)


def slots(value: Any, path: str = "") -> list[str]:
    """The paths of every string the model reads, as the gateway names them."""
    found: list[str] = []
    if isinstance(value, str):
        return [path]
    if isinstance(value, list):
        for index, item in enumerate(value):
            found += slots(item, f"{path}[{index}]")
        return found
    for key, item in value.items():
        if key == ARGUMENTS:
            return slots(item, path)
        here = f"{path}.{key}" if path else key
        if not (isinstance(item, str) and key in STRUCTURAL_KEYS):
            found += slots(item, here)
    return found


def plant(value: Any, paths: dict[str, str], path: str = "") -> Any:
    """A copy with each planted path's string carrying its value; argument dicts as JSON."""
    if isinstance(value, str):
        return f"see {paths[path]} now" if path in paths else value
    if isinstance(value, list):
        return [plant(item, paths, f"{path}[{index}]") for index, item in enumerate(value)]
    if ARGUMENTS in value:
        return json.dumps(plant(value[ARGUMENTS], paths, path))
    return {
        key: plant(item, paths, f"{path}.{key}" if path else key) for key, item in value.items()
    }


@st.composite
def planted_bodies(draw: st.DrawFn) -> tuple[str, dict[str, Any], dict[str, str]]:
    api, shape = draw(st.sampled_from([("chat", CHAT), ("completions", LEGACY)]))
    skeleton = draw(shape)
    places = draw(st.permutations(slots(skeleton)))[: len(PLANTED)]
    paths = dict(zip(places, PLANTED.values(), strict=False))
    return api, plant(skeleton, paths), paths


def post(proxy: Proxy, key: str, api: str, body: dict[str, Any]) -> Any:
    with proxy.http(key) as http:
        return http.post(f"/v1/{'chat/completions' if api == 'chat' else 'completions'}", json=body)


# The upstream log only grows across examples, and a planted value must be in none of it.
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(planted=planted_bodies())
def test_planted_personal_data_is_named_or_never_leaves(
    upstream: Proxy, planted: tuple[str, dict[str, Any], dict[str, str]]
) -> None:
    api, body, paths = planted
    _, blocking = upstream.org({"pii": "block"})
    _, redacting = upstream.org({"pii": "redact"})

    refused = post(upstream, blocking, api, body)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "pii_blocked"
    assert sorted(error["pii_paths"]) == sorted(paths)

    answered = post(upstream, redacting, api, body)
    assert answered.status_code == 200, answered.text
    seen = json.dumps(upstream.upstream_requests())
    for value in PLANTED.values():
        assert value not in seen
        assert json.dumps(value)[1:-1] not in seen
