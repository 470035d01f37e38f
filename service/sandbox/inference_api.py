"""The inference routes answered straight from the edge: chat and legacy completions,
`POST /v1/responses`, embeddings and moderations.

These skip Litestar's routing: they are the hot path of proxy benchmarks, and a plain function
from (run, body bytes) to an `Answer` is all they need. A stored response's own routes
(`/v1/responses/{id}...`) are Litestar's (`responses_api`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import orjson

from service.sandbox import embeddings as vectors
from service.sandbox import inference, responses
from service.sandbox.errors import ApiError, model_not_found
from service.sandbox.memory import Pair
from service.sandbox.objects import COMPLETION_MODELS, JSON, parse_object, resolve_base
from service.sandbox.state import Run

NOT_CHAT = (
    "This is not a chat model and thus not supported in the v1/chat/completions endpoint. "
    "Did you mean to use v1/completions?"
)
NOT_COMPLETION = (
    "This is a chat model and not supported in the v1/completions endpoint. "
    "Did you mean to use v1/chat/completions?"
)


@dataclass(frozen=True)
class Answer:
    """A JSON body, or (when `events` is set) the SSE events of a stream."""

    status: int = 200
    body: bytes = b""
    events: list[bytes] | None = None


Route = Callable[[Run, bytes], Answer]


def _model(run: Run, model: object, *, chat: bool) -> str:
    """The model as answered (aliases resolve to snapshots); 404 when it cannot answer here."""
    if isinstance(model, str):
        name = resolve_base(model)
        if name is None and model in run.models:
            name = model
        if name is not None:
            base = name.split(":")[1] if name.startswith("ft:") else name
            if (base in COMPLETION_MODELS) == chat:
                raise ApiError(404, NOT_CHAT if chat else NOT_COMPLETION, param="model")
            return name
    raise model_not_found(str(model))


def _answer(
    run: Run,
    raw: bytes,
    answer: Callable[[JSON, str, Sequence[Pair]], JSON],
    stream: Callable[[JSON, str, Sequence[Pair]], Iterator[bytes]],
    *,
    chat: bool,
) -> Answer:
    try:
        body = parse_object(raw)
        model = _model(run, body.get("model"), chat=chat)
        tuned = run.models.get(model)
        memory = tuned.memory if tuned else ()
        if body.get("stream"):
            return Answer(events=list(stream(body, model, memory)))
        return Answer(body=orjson.dumps(answer(body, model, memory)))
    except ApiError as error:
        return Answer(error.status, error.body())


def chat_completions(run: Run, raw: bytes) -> Answer:
    return _answer(run, raw, inference.chat_completion, inference.chat_chunks, chat=True)


def completions(run: Run, raw: bytes) -> Answer:
    return _answer(run, raw, inference.completion, inference.completion_chunks, chat=False)


def create_response(run: Run, raw: bytes) -> Answer:
    try:
        body = parse_object(raw)
        model = _model(run, body.get("model"), chat=True)
        made, kept = responses.create(body, model, run.responses, run.config.background_seconds)
        if body.get("stream"):  # a streamed background response runs while it streams
            if kept is not None:
                kept.ready_at, made = 0.0, kept.final
            return Answer(events=responses.events(made))
        return Answer(body=orjson.dumps(made))
    except ApiError as error:
        return Answer(error.status, error.body())


def _plain(answer: Callable[[JSON], JSON]) -> Route:
    def route(run: Run, raw: bytes) -> Answer:
        try:
            return Answer(body=orjson.dumps(answer(parse_object(raw))))
        except ApiError as error:
            return Answer(error.status, error.body())

    return route


ROUTES: dict[tuple[str, str], Route] = {
    ("POST", "/v1/chat/completions"): chat_completions,
    ("POST", "/v1/completions"): completions,
    ("POST", "/v1/responses"): create_response,
    ("POST", "/v1/embeddings"): _plain(vectors.embeddings),
    ("POST", "/v1/moderations"): _plain(vectors.moderations),
}
