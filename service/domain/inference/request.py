"""A proxied request under the org's policy: routing, checks and rewrites, all pure.

One mechanism serves every proxied API (`Api`): chat and legacy completions, Responses,
embeddings and moderations differ only by a row of `SPECS` (path, audit action, output-token
fields, where the content is, whether it streams or stores, the shape of its usage) and by the
Responses API's own checks (`service.domain.inference.responses`).

The proxy never builds a model of the whole request: it takes the client's JSON object as a
plain dict, checks only what it needs (`model`, `messages`, `prompt` or `input`, the
output-token fields, `n`/`best_of`, `user`), and rewrites it in place for the upstream.
`prepare` applies everything but the PII policy; `scan_pii` applies that, separately, because
it is the one step whose cost grows with the body (the proxy runs it after rate admission, off
the event loop when large). Everything the model reads passes the PII policy as `pii.body`
defines it (for the Responses API: `input` strings and items, `instructions`, tool definitions
and outputs, `text.format` schemas): `allow` leaves it, `redact` replaces each finding with its
typed placeholder, `block` refuses the request naming the kinds and JSON paths found (never the
values). `force_store_false` sends `store: false`; `max_output_tokens` bounds the whole answer
(see `cap_output`); `user` and `safety_identifier` leave only as a keyed hash; a chat or legacy
stream always asks the upstream for its usage chunk, which reaches the client only if the
client asked for it (a Responses stream carries its usage in its last event anyway).
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from service.domain.inference.responses import check_responses_body, check_tools
from service.domain.pii import detect as pii
from service.domain.pii.body import STRUCTURAL_KEYS, BodyScanner, OpaquePart, PiiFound
from service.domain.pricing import is_tuned
from service.domain.tenancy.policy import Policy, model_allowed
from service.errors import InvalidRequest, PayloadTooLarge

Api = Literal["chat", "completions", "responses", "embeddings", "moderations"]
UsageShape = Literal["chat", "responses", "embeddings", "none"]
USER_FIELDS = ("user", "safety_identifier")
USER_HASH_PREFIX = "tg-"


@dataclass(frozen=True, slots=True)
class ApiSpec:
    """What the proxy needs to know of one API."""

    path: str  # under /v1, here and upstream
    action: str  # the audit action (the SDK method's name)
    output_fields: tuple[str, ...]  # the output-token fields it reads, the one we fill in first
    content: str  # the parameter holding what the model reads (PII errors name it)
    streams: bool  # `stream: true` answers server-sent events
    stores: bool  # `store` defaults to true upstream: `force_store_false` always sends false
    usage: UsageShape  # how its answer reports usage
    default_model: str | None = None  # the model the upstream uses when none is named


SPECS: dict[Api, ApiSpec] = {
    "chat": ApiSpec(
        "/chat/completions",
        "chat.completions.create",
        ("max_completion_tokens", "max_tokens"),
        "messages",
        streams=True,
        stores=True,
        usage="chat",
    ),
    "completions": ApiSpec(
        "/completions",
        "completions.create",
        ("max_tokens",),
        "prompt",
        streams=True,
        stores=False,
        usage="chat",
    ),
    "responses": ApiSpec(
        "/responses",
        "responses.create",
        ("max_output_tokens",),
        "input",
        streams=True,
        stores=True,
        usage="responses",
    ),
    "embeddings": ApiSpec(
        "/embeddings",
        "embeddings.create",
        (),
        "input",
        streams=False,
        stores=False,
        usage="embeddings",
    ),
    "moderations": ApiSpec(
        "/moderations",
        "moderations.create",
        (),
        "input",
        streams=False,
        stores=False,
        usage="none",
        default_model="omni-moderation-latest",
    ),
}
# The output-token fields each API reads, the one we fill in first.
OUTPUT_FIELDS: dict[Api, tuple[str, ...]] = {api: spec.output_fields for api, spec in SPECS.items()}
LEGACY_DEFAULT_MAX_TOKENS = 16  # what the legacy endpoint generates when not told
MAX_N = 128  # OpenAI's own limits on choices
MAX_BEST_OF = 20


@dataclass(slots=True)
class Prepared:
    """A request ready for the upstream, and what the proxy needs to know about it."""

    api: Api
    body: dict[str, Any]
    model: str
    stream: bool
    client_wants_usage: bool
    output_limit: int | None
    choices: int
    pii_found: Counter[str] = field(default_factory=Counter)
    # The upstream request: a create POSTs `body` to the API's path; the Responses API's
    # stored-response operations (see `responses.STORED_OPS`) set their own.
    method: str = "POST"
    path: str = ""
    query: list[tuple[str, str]] | None = None
    # Token ids the model reads (legacy prompts, embeddings inputs), for the rate estimate.
    token_ids: int = 0

    def __post_init__(self) -> None:
        if not self.path:
            self.path = SPECS[self.api].path


def parse_body(raw: bytes, api: Api) -> dict[str, Any]:
    """The checked body of a request's raw bytes (see `check_body`)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            "We could not parse the JSON body of your request.", code="invalid_json"
        ) from None
    return check_body(body, api)


def check_body(body: object, api: Api) -> dict[str, Any]:
    """The body as a dict, or InvalidRequest naming the offending parameter."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    spec = SPECS[api]
    if spec.default_model is not None and body.get("model") is None:
        body["model"] = spec.default_model
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _missing("model", "a string")
    if api == "responses":
        check_responses_body(body)
    elif api in ("embeddings", "moderations"):
        _check_input(body, api)
    elif api == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _missing("messages", "a non-empty array")
        if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
            raise InvalidRequest("Each message must be an object with a 'role'.", param="messages")
    elif not isinstance(body.get("prompt"), str | list):
        raise _missing("prompt", "a string or an array")
    return body


def _check_input(body: dict[str, Any], api: Api) -> None:
    """Embeddings: a string, strings, token ids or arrays of them; moderations: a string,
    strings, or text and image parts. Non-empty either way."""
    value = body.get("input")
    if isinstance(value, str):
        return
    if not isinstance(value, list) or not value:
        raise _missing("input", "a string or a non-empty array")
    if api == "embeddings":
        fine = (
            all(isinstance(item, str) for item in value)
            or all(_is_token(item) for item in value)
            or all(isinstance(item, list) and item and all(map(_is_token, item)) for item in value)
        )
    else:
        fine = all(isinstance(item, str) for item in value) or all(
            isinstance(item, dict) and isinstance(item.get("type"), str) for item in value
        )
    if not fine:
        kinds = (
            "strings, token ids or arrays of token ids"
            if api == "embeddings"
            else ("strings or input parts")
        )
        raise InvalidRequest(f"'input' must be a string or an array of {kinds}.", param="input")


def _is_token(item: object) -> bool:
    return isinstance(item, int) and not isinstance(item, bool)


def _missing(param: str, kind: str) -> InvalidRequest:
    return InvalidRequest(
        f"'{param}' is required and must be {kind}.",
        param=param,
        code="missing_required_parameter",
    )


def route_model(
    name: str, policy: Policy, tuned: Mapping[str, object], aliases: Mapping[str, str]
) -> str | None:
    """The model a name routes to for this org, or None.

    An alias of the org, then one of the org's tuned models, then a base model its policy
    allows; an `ft:` name that is not the org's own never routes.
    """
    target = aliases.get(name, name)
    if target in tuned:
        return target
    if is_tuned(target) or not model_allowed(policy, target):
        return None
    return target


def refused_by_policy(name: str, policy: Policy, aliases: Mapping[str, str]) -> bool:
    """Whether a name that did not route names a base model the policy's list leaves out
    (so the 404 can say the policy is why; another org's `ft:` model never is)."""
    target = aliases.get(name, name)
    return not is_tuned(target) and not model_allowed(policy, target)


def prepare(
    body: dict[str, Any], api: Api, policy: Policy, *, model: str, org_id: str, user_key: bytes
) -> Prepared:
    """Apply the policy, all but PII (see `scan_pii`), to a checked body in place."""
    spec = SPECS[api]
    body["model"] = model
    if policy.force_store_false and (spec.stores or "store" in body):
        body["store"] = False
    if api == "responses":
        check_tools(body, policy)
    choices = _choices(body, api)
    limit = cap_output(body, api, policy.max_output_tokens, choices)
    hash_users(body, org_id, user_key)
    stream = spec.streams and body.get("stream") is True
    # The Responses API reports usage in its last event, always: nothing to ask for.
    asks = spec.usage == "chat"
    wants_usage = stream and (not asks or _asks_usage(body.get("stream_options")))
    if stream and asks:
        options = body.get("stream_options")
        body["stream_options"] = {**(options if isinstance(options, dict) else {})}
        body["stream_options"]["include_usage"] = True
    prepared = Prepared(api, body, model, stream, wants_usage, limit, choices)
    prepared.token_ids = _token_ids(body.get("prompt" if api == "completions" else "input"))
    return prepared


def _token_ids(value: object) -> int:
    """How many token ids a prompt or input holds (0 for text)."""
    if not isinstance(value, list):
        return 0
    return sum(
        1 if _is_token(item) else sum(map(_is_token, item)) if isinstance(item, list) else 0
        for item in value
    )


def _asks_usage(options: object) -> bool:
    return isinstance(options, dict) and options.get("include_usage") is True


def _count(body: dict[str, Any], name: str, most: int) -> int:
    value = body.get(name)
    if value is None:
        return 1
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
        raise InvalidRequest(f"'{name}' must be an integer from 1 to {most}.", param=name)
    return value


def _choices(body: dict[str, Any], api: Api) -> int:
    """How many answers the upstream generates: `n` (legacy: `max(n, best_of)`, since
    `best_of` candidates are generated and billed), times the prompts of a legacy batch."""
    if api not in ("chat", "completions"):
        return 1
    count = _count(body, "n", MAX_N)
    if api == "completions":
        count = max(count, _count(body, "best_of", MAX_BEST_OF))
        prompt = body.get("prompt")
        if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
            count *= len(prompt)
    return count


# --- texts -------------------------------------------------------------------------------------


def text_slots(body: dict[str, Any], api: Api) -> Iterator[tuple[Any, Any]]:
    """(container, key) for the prompt texts of a request as the audit log shows them:
    string message contents and text parts, or the legacy prompt strings."""
    if api != "chat":
        name = "input" if api in ("responses", "embeddings", "moderations") else "prompt"
        if api == "responses" and isinstance(body.get("instructions"), str):
            yield body, "instructions"
        prompt = body.get(name)
        if isinstance(prompt, str):
            yield body, name
        elif isinstance(prompt, list):
            for i, item in enumerate(prompt):
                if isinstance(item, str):
                    yield prompt, i
                elif isinstance(item, dict):
                    yield from _item_slots(item)
        return
    for message in body["messages"]:
        content = message.get("content")
        if isinstance(content, str):
            yield message, "content"
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield part, "text"


def _item_slots(item: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """A Responses input item (or a moderation part): its text, content, or output."""
    for name in ("text", "content", "output", "arguments"):
        value = item.get(name)
        if isinstance(value, str):
            yield item, name
        elif isinstance(value, list):
            for part in value:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield part, "text"


def prompt_texts(body: dict[str, Any], api: Api) -> list[str]:
    return [container[key] for container, key in text_slots(body, api)]


def model_texts(body: dict[str, Any]) -> list[str]:
    """Every string of the body the model reads (as `pii.body` defines it), for estimates."""
    texts: list[str] = []
    pending: list[Any] = [body]
    while pending:
        item = pending.pop()
        pairs = item.items() if isinstance(item, dict) else enumerate(item)
        for key, value in pairs:
            if isinstance(value, str):
                if key not in STRUCTURAL_KEYS:
                    texts.append(value)
            elif isinstance(value, dict | list):
                pending.append(value)
    return texts


def scan_pii(prepared: Prepared, policy: Policy, budget: pii.ScanBudget | None = None) -> None:
    """Apply the PII policy to everything the model reads, in place; raises when it refuses
    (InvalidRequest for findings under `block` and for unreadable parts, PayloadTooLarge past
    the scan budget)."""
    if policy.pii == "allow":
        return
    param = SPECS[prepared.api].content
    if prepared.token_ids:
        _check_token_prompt(param, policy)
    prepared.pii_found = scan_json(prepared.body, policy, budget, param=param)


def scan_json(
    value: Any, policy: Policy, budget: pii.ScanBudget | None, *, param: str, path: str = ""
) -> Counter[str]:
    """The PII policy over one JSON value (a request body, a grader), as domain errors."""
    if policy.pii == "allow":
        return Counter()
    scanner = BodyScanner(
        policy.pii,
        tuple(policy.pii_entities),
        opaque_allowed=policy.opaque_parts == "allow",
        budget=budget,
    )
    try:
        scanner.scan(value, path)
        scanner.finish()
    except PiiFound as found:
        raise pii_blocked(found, param) from None
    except OpaquePart as part:
        raise InvalidRequest(
            f"The request holds {part.what} (at {part.path}) that the gateway cannot scan for "
            "personal data; this org's policy refuses such parts (opaque_parts).",
            param=part.path,
            code="opaque_content_refused",
        ) from None
    except pii.ScanBudgetExceeded as over:
        raise PayloadTooLarge(
            f"The request needs more personal-data scanning than the gateway allows per "
            f"request ({over.what} over {over.limit:,}). Send less text in one request.",
            code="pii_scan_budget_exceeded",
        ) from None
    return scanner.counts


def pii_blocked(found: PiiFound, param: str) -> InvalidRequest:
    kinds, paths = found.kinds, found.paths
    return InvalidRequest(
        f"The request contains personal data this org's policy blocks: {', '.join(kinds)} "
        f"(at {', '.join(paths)}).",
        param=paths[0] if paths else param,
        code="pii_blocked",
        extra={"envelope": {"pii_entities": kinds, "pii_paths": paths}},
    )


def _check_token_prompt(param: str, policy: Policy) -> None:
    """Token ids cannot be scanned: refused under redact/block unless opaque parts are allowed."""
    if policy.opaque_parts != "allow":
        what = "A prompt" if param == "prompt" else "An input"
        raise InvalidRequest(
            f"{what} given as token ids cannot be scanned for personal data; this org's "
            f"policy refuses it (opaque_parts). Send the {param} as text.",
            param=param,
            code="opaque_content_refused",
        )


# --- output tokens and users -------------------------------------------------------------------


def cap_output(body: dict[str, Any], api: Api, cap: int | None, choices: int = 1) -> int | None:
    """Cap the output-token fields the client sent (or send the cap); the per-choice limit.

    With a cap, it bounds the whole answer: each of `choices` answers may use
    `cap // choices` tokens, and a request for more answers than the cap has tokens is refused.
    """
    fields = OUTPUT_FIELDS[api]
    if not fields:  # embeddings and moderations generate no tokens
        return 0
    sent = [name for name in fields if body.get(name) is not None]
    for name in sent:
        value = body[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidRequest(f"'{name}' must be a non-negative integer.", param=name)
    if cap is None:
        if sent:
            return min(int(body[name]) for name in sent)
        return LEGACY_DEFAULT_MAX_TOKENS if api == "completions" else None
    each = cap // choices
    if each < 1:
        raise InvalidRequest(
            f"This org caps an answer at {cap} output tokens in all; {choices} choices "
            "(n, best_of and prompts together) cannot fit. Ask for fewer.",
            param="best_of" if api == "completions" and body.get("best_of") else "n",
        )
    for name in sent:
        body[name] = min(body[name], each)
    if not sent:
        body[fields[0]] = each
        return each
    return min(int(body[name]) for name in sent)


def hash_user(user: str, org_id: str, key: bytes) -> str:
    """A stable pseudonym per org and end user; the upstream never sees the real id."""
    digest = hmac.new(key, f"{org_id}\x00{user}".encode(), hashlib.sha256).hexdigest()
    return USER_HASH_PREFIX + digest[:40]


def hash_users(body: dict[str, Any], org_id: str, key: bytes) -> None:
    for name in USER_FIELDS:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidRequest(f"'{name}' must be a string.", param=name)
        body[name] = hash_user(value, org_id, key)
