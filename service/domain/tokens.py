"""Token counting with tiktoken, entirely offline.

Owns the model -> encoding mapping and the `tiktoken.Encoding` objects. tiktoken normally
downloads its BPE rank files on first use; tunegate ships them in `service/data/` instead and
builds each encoding through tiktoken's own constructor in `tiktoken_ext.openai_public`, with its
loader pointed at the shipped file. So the split regex, the special tokens and the sha256 every
file is checked against all come from tiktoken itself, and a wrong or corrupted file fails
loudly at load time rather than producing subtly wrong counts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import tiktoken
import tiktoken.model
from tiktoken.load import load_tiktoken_bpe
from tiktoken_ext import openai_public  # type: ignore[import-untyped]

from service.domain.pricing import base_model_of

DATA_DIR = Path(__file__).resolve().parent.parent / "data"

# sha256 of each shipped rank file; tiktoken_ext.openai_public passes the same values as
# `expected_hash`, and the loader refuses a file whose hash differs from either.
EXPECTED_SHA256: dict[str, str] = {
    "cl100k_base.tiktoken": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base.tiktoken": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}

# Encodings buildable from the shipped files (o200k_harmony reuses o200k_base's ranks).
SHIPPED_ENCODINGS = frozenset({"cl100k_base", "o200k_base", "o200k_harmony"})

# Models tiktoken does not know yet are recent ones, which all use o200k_base.
DEFAULT_ENCODING = "o200k_base"

_BATCH_THREADS = 2
_MIN_PARALLEL_BATCH = 64
_constructor_lock = threading.Lock()
_executor_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


class UnsupportedEncodingError(ValueError):
    """The encoding exists in tiktoken but its rank file is not shipped with tunegate."""


def encoding_name_for_model(model: str) -> str:
    """tiktoken's encoding name for a model (fine-tuned names map by their base model)."""
    base = base_model_of(model)
    try:
        return tiktoken.model.encoding_name_for_model(base)
    except KeyError:
        return DEFAULT_ENCODING


def _load_shipped(blobpath: str, expected_hash: str | None = None) -> dict[bytes, int]:
    filename = blobpath.rsplit("/", 1)[-1]
    ours = EXPECTED_SHA256.get(filename)
    if ours is None:
        raise UnsupportedEncodingError(f"no shipped rank file for {filename}")
    if expected_hash != ours:
        raise ValueError(f"tiktoken expects sha256 {expected_hash} for {filename}, not {ours}")
    return load_tiktoken_bpe(str(DATA_DIR / filename), expected_hash=ours)


def _constructor_params(name: str) -> dict[str, Any]:
    constructor: Callable[[], dict[str, Any]] = openai_public.ENCODING_CONSTRUCTORS[name]
    # The constructors resolve `load_tiktoken_bpe` from their module globals at call time;
    # swapping it for the duration of one call lets us reuse them instead of copying regexes.
    with _constructor_lock:
        original = openai_public.load_tiktoken_bpe
        openai_public.load_tiktoken_bpe = _load_shipped
        try:
            return constructor()
        finally:
            openai_public.load_tiktoken_bpe = original


@cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """The encoding `name`, built from the shipped rank files (cached for the process)."""
    if name not in SHIPPED_ENCODINGS:
        raise UnsupportedEncodingError(f"encoding {name!r} is not shipped with tunegate")
    return tiktoken.Encoding(**_constructor_params(name))


def encoding_for_model(model: str) -> tiktoken.Encoding:
    return get_encoding(encoding_name_for_model(model))


def count_tokens(text: str, model: str) -> int:
    """Tokens in `text` for `model`; special-token text counts as ordinary text."""
    return len(encoding_for_model(model).encode_ordinary(text))


def _count_slice(encoding: tiktoken.Encoding, texts: Sequence[str]) -> list[int]:
    return [len(encoding.encode_ordinary(text)) for text in texts]


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(_BATCH_THREADS - 1, thread_name_prefix="tokens")
        return _executor


def count_batch(encoding: tiktoken.Encoding, texts: Sequence[str]) -> list[int]:
    """Token counts for many texts: one slice per thread, the calling thread taking the first.

    tiktoken releases the GIL while encoding, so the slices run in parallel. One task per slice
    rather than per text (as `encode_ordinary_batch` does) keeps the pool's overhead negligible.
    Encoding in the background while the caller runs Python was tried and is slower: building
    each result list needs the GIL back, and the handoffs stall both threads.
    """
    if len(texts) < _MIN_PARALLEL_BATCH:
        return _count_slice(encoding, texts)
    size = -(-len(texts) // _BATCH_THREADS)
    futures = [
        _pool().submit(_count_slice, encoding, texts[start : start + size])
        for start in range(size, len(texts), size)
    ]
    counts = _count_slice(encoding, texts[:size])
    for future in futures:
        counts += future.result()
    return counts


def count_tokens_batch(texts: Sequence[str], model: str) -> list[int]:
    """Token counts for many texts at once, in parallel when the batch is large enough."""
    return count_batch(encoding_for_model(model), texts)
