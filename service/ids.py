"""Identifiers: OpenAI-style prefixed random ids (`file-...`, `ftjob-...`, `org_...`), and the one
pattern per kind of id that an id from outside must match before it names anything in Redis.

tunegate's own ids are a prefix and 24 letters or digits; key ids are 16 hex digits. Model ids are
the upstream's (`gpt-4o-mini`, `ft:gpt-4o-mini-2024-07-18:org:suffix:id`, `...:ckpt-step-88`),
so they may hold `.`, `-`, `_` and `:`; alias names are the org's own, without `:`. Response ids are
the upstream's too (`resp_` and letters or digits).
"""

from __future__ import annotations

import re
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits
ID_LENGTH = 24
STREAM_ID_PART_MAX = 2**64 - 1


def new_id(prefix: str, length: int = ID_LENGTH) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _ours(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(prefix)}[A-Za-z0-9]{{{ID_LENGTH}}}")


PATTERNS: dict[str, re.Pattern[str]] = {
    "file": _ours("file-"),
    "job": _ours("ftjob-"),
    "sweep": _ours("sweep-"),
    "eval": _ours("eval_"),
    "run": _ours("evalrun_"),
    "output_item": _ours("outputitem_"),
    "org": _ours("org_"),
    "key": re.compile(r"[0-9a-f]{16}"),
    "model": re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,255}"),
    "alias": re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"),
    "response": re.compile(r"resp_[A-Za-z0-9]{1,128}"),
}
_STREAM_ID = re.compile(r"(\d{1,20})-(\d{1,20})")


def is_valid(kind: str, value: str) -> bool:
    """Whether `value` is shaped like an id of `kind` (a key of `PATTERNS`)."""
    return PATTERNS[kind].fullmatch(value) is not None


def is_stream_id(value: str) -> bool:
    """An audit cursor: a Redis stream id `<ms>-<seq>`, each part within 64 bits."""
    match = _STREAM_ID.fullmatch(value)
    return match is not None and all(int(part) <= STREAM_ID_PART_MAX for part in match.groups())
