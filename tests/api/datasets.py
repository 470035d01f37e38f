"""Dataset builders for API tests."""

from __future__ import annotations

import orjson


def chat_example(index: int, user: str | None = None) -> dict[str, object]:
    return {
        "messages": [
            {"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": user or f"What is {index} plus {index}?"},
            {"role": "assistant", "content": f"It is {index * 2}."},
        ]
    }


def chat_jsonl(count: int = 12, *, salt: str = "") -> bytes:
    rows = [chat_example(i, f"{salt}question {i}?" if salt else None) for i in range(count)]
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def with_line(data: bytes, line_number: int, replacement: bytes) -> bytes:
    lines = data.split(b"\n")
    lines[line_number - 1] = replacement
    return b"\n".join(lines)
