"""The three fine-tuning data formats: recognising an example's format and checking it.

Owns the top-level rules of each format. `chat`: `messages`, optional `tools` / `functions` /
`parallel_tool_calls`. `completion` (legacy, for babbage-002 and davinci-002): string `prompt`
and non-empty string `completion`. `preference` (DPO): `input` holding chat `messages` (and
optional tools), and `preferred_output` / `non_preferred_output`, each a non-empty list of
assistant messages. Message-level rules live in `datasets.chat`.
"""

from __future__ import annotations

from typing import Any

from service.domain.datasets.chat import Problems, TokenPlan, check_messages, check_tools
from service.domain.datasets.report import DatasetFormat

_PREFERENCE_KEYS = ("input", "preferred_output", "non_preferred_output")


def detect_format(example: dict[str, Any]) -> DatasetFormat | None:
    if "messages" in example:
        return "chat"
    if any(key in example for key in _PREFERENCE_KEYS):
        return "preference"
    if "prompt" in example or "completion" in example:
        return "completion"
    return None


def check_example(example: dict[str, Any], fmt: DatasetFormat, problems: Problems) -> TokenPlan:
    plan = TokenPlan()
    if fmt == "chat":
        check_messages(example.get("messages"), problems, plan)
        check_tools(example, problems, plan)
    elif fmt == "completion":
        _check_completion(example, problems, plan)
    else:
        _check_preference(example, problems, plan)
    return plan


def _check_completion(example: dict[str, Any], problems: Problems, plan: TokenPlan) -> None:
    prompt, completion = example.get("prompt"), example.get("completion")
    if not isinstance(prompt, str):
        problems.add("missing_prompt", "prompt must be a string")
    if not isinstance(completion, str) or not completion:
        problems.add("missing_completion", "completion must be a non-empty string")
    if isinstance(prompt, str) and isinstance(completion, str):
        plan.texts += (completion, prompt)
        plan.assistant_texts = 1


def _check_preference(example: dict[str, Any], problems: Problems, plan: TokenPlan) -> None:
    source = example.get("input")
    if not isinstance(source, dict) or "messages" not in source:
        problems.add("missing_input", "input must be an object with messages")
    else:
        check_messages(source["messages"], problems, plan, require_assistant=False)
        check_tools(source, problems, plan)
    for key in ("preferred_output", "non_preferred_output"):
        output = example.get(key)
        if not isinstance(output, list) or not output:
            problems.add(f"missing_{key}", f"{key} must be a non-empty list of messages")
            continue
        if not all(isinstance(m, dict) and m.get("role") == "assistant" for m in output):
            problems.add("invalid_preference_output", f"{key} must hold assistant messages only")
        check_messages(output, problems, plan, require_assistant=False)


def roles_of(example: dict[str, Any], fmt: DatasetFormat) -> set[str]:
    """The roles present in an example's prompt side (for missing system / user warnings)."""
    messages: object = example.get("messages")
    if fmt == "preference":
        source = example.get("input")
        messages = source.get("messages") if isinstance(source, dict) else None
    if not isinstance(messages, list):
        return set()
    roles = (m.get("role") for m in messages if isinstance(m, dict))
    return {role for role in roles if isinstance(role, str)}
