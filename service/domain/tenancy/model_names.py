"""Which model names a policy's `allowed_models` may name, and what each entry admits.

One rule everywhere (chat, legacy completions, fine-tuning, graders, model listing): an entry
admits the name itself and its dated snapshots (`gpt-4o-mini` admits `gpt-4o-mini-2024-07-18`
and `gpt-4o-mini-0125`; a dated entry admits only that snapshot). A name is matched as the
client sent it: an undated alias is not admitted by a dated entry, since the upstream may move
the alias to a newer snapshot. An entry must name a known model family (or a snapshot of one),
so a typo such as `gpt-4o-mni` is refused rather than silently admitting nothing.
"""

from __future__ import annotations

import re

# Model families OpenAI serves to the APIs tunegate proxies. A dated snapshot of any of these
# is known too; anything else needs the policy's `allow_unknown_models`.
KNOWN_FAMILIES: frozenset[str] = frozenset(
    {
        "babbage-002",
        "davinci-002",
        "gpt-3.5-turbo",
        "gpt-3.5-turbo-instruct",
        "gpt-4",
        "gpt-4-turbo",
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "gpt-4.5-preview",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "gpt-5-chat-latest",
        "chatgpt-4o-latest",
        "o1",
        "o1-mini",
        "o1-pro",
        "o3",
        "o3-mini",
        "o3-pro",
        "o4-mini",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "text-embedding-ada-002",
        "omni-moderation-latest",
        "text-moderation-latest",
    }
)

# `-2024-07-18` (today's form) or `-0125` (the older MMDD form).
_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{4})")


def entry_admits(entry: str, model: str) -> bool:
    """Whether an `allowed_models` entry admits `model`: itself or a dated snapshot of it."""
    if model == entry:
        return True
    return model.startswith(entry) and _SNAPSHOT.fullmatch(model, len(entry)) is not None


def family_of(name: str) -> str | None:
    """The known family a name is, or is a dated snapshot of; None when unknown."""
    if name in KNOWN_FAMILIES:
        return name
    match = re.search(r"-(?:\d{4}-\d{2}-\d{2}|\d{4})$", name)
    if match and name[: match.start()] in KNOWN_FAMILIES:
        return name[: match.start()]
    return None
