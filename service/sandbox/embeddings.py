"""The sandbox's embeddings and moderations, deterministic and offline.

An embedding is a unit vector derived from a hash of the model and the input (the same input
always embeds the same way), as long as the model's native dimension or `dimensions`;
`encoding_format: "base64"` sends the same float32 values little-endian in base64, as OpenAI
does. Usage counts the input's real tokens. A moderation flags an input that holds a word of a
small fixed vocabulary (`FLAGGED`), in that word's categories; images are never flagged.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
from array import array
from typing import Any

from service.sandbox.errors import ApiError, invalid
from service.sandbox.inference import _tokens, new_id
from service.sandbox.objects import JSON

EMBEDDING_MODELS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
MODERATION_MODELS: dict[str, str] = {
    "omni-moderation-latest": "omni-moderation-2024-09-26",
    "omni-moderation-2024-09-26": "omni-moderation-2024-09-26",
    "text-moderation-latest": "text-moderation-007",
    "text-moderation-stable": "text-moderation-007",
}
TOKEN_MODEL = "gpt-4o-mini"  # cl100k and o200k count alike for the sandbox's purposes
CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
IMAGE_CATEGORIES = frozenset(
    {
        "self-harm",
        "self-harm/intent",
        "self-harm/instructions",
        "sexual",
        "violence",
        "violence/graphic",
    }
)
FLAGGED: dict[str, tuple[str, ...]] = {
    "kill": ("violence",),
    "hate": ("hate",),
    "harass": ("harassment",),
    "bomb": ("illicit", "illicit/violent"),
    "suicide": ("self-harm",),
}


# --- embeddings -----------------------------------------------------------------------------


def embedding_model(model: object) -> str:
    if isinstance(model, str) and model in EMBEDDING_MODELS:
        return model
    raise ApiError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


@functools.lru_cache(maxsize=1024)
def vector(model: str, text: str, dimensions: int) -> bytes:
    """The embedding as float32 little-endian bytes: a hash stretched to `dimensions` values
    in [-1, 1), normalised to unit length."""
    raw = hashlib.shake_256(f"{model}\x00{text}".encode()).digest(dimensions * 2)
    values = [(raw[2 * i] << 8 | raw[2 * i + 1]) / 32768.0 - 1.0 for i in range(dimensions)]
    norm = math.sqrt(sum(value * value for value in values)) or 1.0
    packed = array("f", (value / norm for value in values))
    if packed.itemsize != 4:  # pragma: no cover - every platform tunegate runs on
        raise RuntimeError("float32 arrays needed")
    return packed.tobytes()


def _inputs(value: Any) -> list[tuple[str, int]]:
    """(text to embed, its tokens) per input."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise invalid("'input' must be a string or a non-empty array", "input")
    if all(isinstance(item, int) for item in value):
        return [(str(value), len(value))]
    found: list[tuple[str, int]] = []
    for item in value:
        if isinstance(item, str):
            if not item:
                raise invalid("'input' cannot contain an empty string", "input")
            found.append((item, _tokens(item, TOKEN_MODEL)))
        elif isinstance(item, list) and item and all(isinstance(i, int) for i in item):
            found.append((str(item), len(item)))
        else:
            raise invalid("'input' must hold strings or arrays of token ids", "input")
    return found


def embeddings(body: JSON) -> JSON:
    model = embedding_model(body.get("model"))
    native = EMBEDDING_MODELS[model]
    dimensions = body.get("dimensions")
    if dimensions is not None:
        if model == "text-embedding-ada-002":
            raise invalid("This model does not support specifying dimensions.", "dimensions")
        if not isinstance(dimensions, int) or not 1 <= dimensions <= native:
            raise invalid(f"dimensions must be an integer from 1 to {native}", "dimensions")
    size = dimensions or native
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise invalid("encoding_format must be 'float' or 'base64'", "encoding_format")
    data: list[JSON] = []
    tokens = 0
    for index, (text, count) in enumerate(_inputs(body.get("input"))):
        packed = vector(model, text, size)
        tokens += count
        embedding: Any
        if encoding == "base64":
            embedding = base64.b64encode(packed).decode()
        else:
            embedding = array("f", packed).tolist()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# --- moderations ----------------------------------------------------------------------------


def _result(texts: list[str], images: int) -> JSON:
    lowered = " ".join(texts).lower()
    hit = {category for word, kinds in FLAGGED.items() if word in lowered for category in kinds}
    applied: dict[str, list[str]] = {}
    for category in CATEGORIES:
        kinds = ["text"] if texts else []
        if images and category in IMAGE_CATEGORIES:
            kinds.append("image")
        applied[category] = kinds
    return {
        "flagged": bool(hit),
        "categories": {category: category in hit for category in CATEGORIES},
        "category_scores": {
            category: 0.97 if category in hit else 0.0001 for category in CATEGORIES
        },
        "category_applied_input_types": applied,
    }


def moderations(body: JSON) -> JSON:
    name = body.get("model", "omni-moderation-latest")
    if not isinstance(name, str) or name not in MODERATION_MODELS:
        raise ApiError(
            404,
            f"The model `{name}` does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    value = body.get("input")
    if isinstance(value, str):
        results = [_result([value], 0)]
    elif isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        results = [_result([item], 0) for item in value]
    elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        texts = [str(p.get("text", "")) for p in value if p.get("type") == "text"]
        images = sum(1 for p in value if p.get("type") == "image_url")
        if len(texts) + images != len(value):
            raise invalid("each input part must be of type 'text' or 'image_url'", "input")
        results = [_result(texts, images)]
    else:
        raise invalid("'input' must be a string, an array of strings, or input parts", "input")
    return {"id": new_id("modr-"), "model": MODERATION_MODELS[name], "results": results}
