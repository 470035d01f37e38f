import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.domain.datasets.validate import DatasetOptions, DatasetValidator

VALID_LINE = orjson.dumps(
    {
        "messages": [
            {"role": "user", "content": "Call me on 415-555-2671"},
            {"role": "assistant", "content": "Sure."},
        ]
    }
)

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["messages", "role", "content", "prompt", "completion", "input", "x"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)
_MESSAGE_KEYS = st.sampled_from(
    ["role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call", "type"]
)
_MESSAGE = st.dictionaries(
    _MESSAGE_KEYS,
    st.sampled_from(["user", "assistant", "tool", "text", "x", 0, 1]) | _JSON_VALUES,
    max_size=5,
)
_EXAMPLES = st.fixed_dictionaries(
    {"messages": st.lists(_MESSAGE | _JSON_VALUES, max_size=4)},
    optional={"tools": _JSON_VALUES, "parallel_tool_calls": _JSON_VALUES},
) | st.fixed_dictionaries(
    {"input": st.fixed_dictionaries({"messages": st.lists(_MESSAGE, max_size=3)})},
    optional={
        "preferred_output": st.lists(_MESSAGE, max_size=2),
        "non_preferred_output": st.lists(_MESSAGE, max_size=2),
    },
)
_LINES = st.one_of(
    st.binary(max_size=40),
    st.just(VALID_LINE),
    _JSON_VALUES.map(orjson.dumps),
    _EXAMPLES.map(orjson.dumps),
)
_FILES = st.lists(_LINES, max_size=14).map(b"\n".join) | st.binary(max_size=300)


def validate(data: bytes, cuts: list[int], mode: str) -> tuple[bytes, str]:
    validator = DatasetValidator(DatasetOptions(pii_mode=mode))
    stored, start = b"", 0
    for cut in sorted(cuts):
        stored += validator.feed(data[start:cut])
        start = cut
    stored += validator.feed(data[start:]) + validator.finish()
    return stored, validator.report().model_dump_json()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=_FILES,
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
    mode=st.sampled_from(["allow", "redact", "block"]),
)
def test_any_bytes_give_a_report_whatever_the_chunking(
    data: bytes, cuts: list[int], mode: str
) -> None:
    cuts = [min(cut, len(data)) for cut in cuts]
    stored, report_json = validate(data, cuts, mode)
    assert (stored, report_json) == validate(data, [], mode)
    report = orjson.loads(report_json)
    lines = report["lines"]
    assert all(e["line"] is None or 1 <= e["line"] <= lines for e in report["errors"])
    assert report["valid"] == (not report["error_counts"])
    if mode != "redact":
        assert stored == data


DEEP = b"[" * 1000 + b'"bob@example.com"' + b"]" * 1000


def test_deeply_nested_lines_are_handled() -> None:
    tools = b'[{"type":"function","function":{"name":"f","parameters":' + b"[" * 400
    tools += b"]" * 400 + b"}}]"
    data = (
        b'{"messages":'
        + DEEP
        + b"}\n"
        + b'{"messages":[], "tools":'
        + tools
        + b', "x":'
        + DEEP
        + b"}\n"
    )
    stored, report_json = validate(data, [], "redact")
    report = orjson.loads(report_json)
    assert report["pii"]["counts"] == {"EMAIL": 2}
    assert b"bob@example.com" not in stored
    assert {"invalid_message", "missing_messages_list"} <= set(report["error_counts"])


ODD_VALUES: list[object] = [
    None,
    True,
    0,
    2,
    1.5,
    "",
    "x",
    "assistant",
    [],
    [1],
    {},
    {"id": []},
    [{"id": 1}],
]
MESSAGE_KEYS = ["role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call"]


def test_every_message_key_with_every_json_type() -> None:
    lines = []
    for key in MESSAGE_KEYS:
        for value in ODD_VALUES:
            message = {"role": "assistant", "content": "ok", key: value}
            tool = {"role": "tool", "tool_call_id": value, "content": value}
            lines.append(orjson.dumps({"messages": [message, tool], "tools": value}))
            lines.append(orjson.dumps({"input": {"messages": value}, "preferred_output": value}))
            lines.append(orjson.dumps({"prompt": value, "completion": value}))
    for mode in ("allow", "redact"):
        _, report_json = validate(b"\n".join(lines), [], mode)
        assert orjson.loads(report_json)["lines"] == len(lines)
