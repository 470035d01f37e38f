"""How the sandbox reads a training file: JSONL chat, prompt-completion or preference examples.

A file the sandbox would reject makes the job fail after `validating_files`, with OpenAI's
`invalid_training_file` error; a good one yields its example and token counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from service.domain.tokens import count_tokens
from service.sandbox.memory import Pair, pairs_of

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class TrainingFileError(ValueError):
    """The file is not usable for the requested method; the message says where."""


@dataclass(frozen=True)
class TrainingData:
    format: str
    examples: int
    tokens: int
    pairs: tuple[Pair, ...] = ()


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _check_messages(messages: Any, line: int, *, need_assistant: bool) -> list[str]:
    if not isinstance(messages, list) or not messages:
        raise TrainingFileError(f"Line {line}: 'messages' must be a non-empty list")
    texts: list[str] = []
    for index, message in enumerate(messages, start=1):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise TrainingFileError(f"Line {line}, message {index}: unrecognized role")
        texts.append(_text_of(message.get("content")))
    if need_assistant and not any(m.get("role") == "assistant" for m in messages):
        raise TrainingFileError(f"Line {line}: no assistant message to train on")
    return texts


def _preference_texts(example: dict[str, Any], line: int) -> list[str]:
    source = example.get("input")
    if not isinstance(source, dict):
        raise TrainingFileError(f"Line {line}: preference examples need an 'input' object")
    texts = _check_messages(source.get("messages"), line, need_assistant=False)
    for key in ("preferred_output", "non_preferred_output"):
        texts += _check_messages(example.get(key), line, need_assistant=True)
    return texts


def _example_texts(example: Any, line: int, method: str) -> tuple[str, list[str]]:
    if not isinstance(example, dict):
        raise TrainingFileError(f"Line {line}: expected a JSON object")
    if method == "dpo":
        return "preference", _preference_texts(example, line)
    if "messages" in example:
        need_assistant = method == "supervised"
        return "chat", _check_messages(example["messages"], line, need_assistant=need_assistant)
    prompt, completion = example.get("prompt"), example.get("completion")
    if method == "supervised" and isinstance(prompt, str) and isinstance(completion, str):
        return "prompt_completion", [prompt, completion]
    raise TrainingFileError(f"Line {line}: expected 'messages', or 'prompt' and 'completion'")


def _lines(content: bytes) -> Iterator[tuple[int, Any]]:
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            yield number, orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise TrainingFileError(f"Line {number}: not valid JSON") from None


def read_training_file(
    content: bytes, *, model: str, method: str, min_examples: int
) -> TrainingData:
    """Validate `content` for `method` (supervised, dpo, reinforcement) and count it."""
    formats: set[str] = set()
    examples = tokens = 0
    pairs: list[Pair] = []
    for line, example in _lines(content):
        kind, texts = _example_texts(example, line, method)
        formats.add(kind)
        examples += 1
        tokens += sum(count_tokens(text, model) for text in texts)
        pairs += _pairs(kind, example, texts)
    if len(formats) > 1:
        raise TrainingFileError("Examples mix several formats; use one format per file")
    if examples < min_examples:
        raise TrainingFileError(
            f"Training file has {examples} example(s), but must have at least {min_examples}"
        )
    return TrainingData(formats.pop(), examples, tokens, tuple(pairs))


def _pairs(kind: str, example: dict[str, Any], texts: list[str]) -> tuple[Pair, ...]:
    if kind == "chat":
        return pairs_of([example["messages"]])
    return ((texts[0], texts[1]),) if kind == "prompt_completion" else ()
