"""A completion request under the org's policy: routing, checks and rewrites, all pure.

The proxy never builds a model of the whole request: it takes the client's JSON object as a
plain dict, checks only what it needs (`model`, `messages` or `prompt`, the output-token fields,
`n`/`best_of`, `user`), and rewrites it in place for the upstream. `prepare` applies everything
but the PII policy; `scan_pii` applies that, separately, because it is the one step whose cost
grows with the body (the proxy runs it after rate admission, off the event loop when large).
Everything the model reads passes the PII policy as `pii.body` defines it: `allow` leaves it,
`redact` replaces each finding with its typed placeholder, `block` refuses the request naming
the kinds and JSON paths found (never the values). `force_store_false` sends `store: false`;
`max_output_tokens` bounds the whole answer (see `cap_output`); `user` and `safety_identifier`
leave only as a keyed hash; a stream always asks the upstream for its usage chunk, which
reaches the client only if the client asked for it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from service.domain.pii import detect as pii
from service.domain.pii.body import STRUCTURAL_KEYS, BodyScanner, OpaquePart, PiiFound
from service.domain.pricing import is_tuned
from service.domain.tenancy.policy import Policy, model_allowed
from service.errors import InvalidRequest, PayloadTooLarge

Api = Literal["chat", "completions"]
USER_FIELDS = ("user", "safety_identifier")
USER_HASH_PREFIX = "tg-"
# The output-token fields each API reads, the one we fill in first.
OUTPUT_FIELDS: dict[Api, tuple[str, ...]] = {
    "chat": ("max_completion_tokens", "max_tokens"),
    "completions": ("max_tokens",),
}
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
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _missing("model", "a string")
    if api == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _missing("messages", "a non-empty array")
        if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
            raise InvalidRequest("Each message must be an object with a 'role'.", param="messages")
    elif not isinstance(body.get("prompt"), str | list):
        raise _missing("prompt", "a string or an array")
    return body


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
    body["model"] = model
    if policy.force_store_false and (api == "chat" or "store" in body):
        body["store"] = False
    choices = _choices(body, api)
    limit = cap_output(body, api, policy.max_output_tokens, choices)
    hash_users(body, org_id, user_key)
    stream = body.get("stream") is True
    wants_usage = stream and _asks_usage(body.get("stream_options"))
    if stream:
        options = body.get("stream_options")
        body["stream_options"] = {**(options if isinstance(options, dict) else {})}
        body["stream_options"]["include_usage"] = True
    return Prepared(api, body, model, stream, wants_usage, limit, choices)


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
    if api == "completions":
        prompt = body.get("prompt")
        if isinstance(prompt, str):
            yield body, "prompt"
        elif isinstance(prompt, list):
            yield from ((prompt, i) for i, item in enumerate(prompt) if isinstance(item, str))
        return
    for message in body["messages"]:
        content = message.get("content")
        if isinstance(content, str):
            yield message, "content"
        elif isinstance(content, list):
            for part in content:
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
    if prepared.api == "completions":
        _check_token_prompt(prepared.body.get("prompt"), policy)
    param = "messages" if prepared.api == "chat" else "prompt"
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


def _check_token_prompt(prompt: object, policy: Policy) -> None:
    """Token ids cannot be scanned: refused under redact/block unless opaque parts are allowed."""
    items = prompt if isinstance(prompt, list) else [prompt]
    tokens = any(
        isinstance(item, int) or (isinstance(item, list) and any(isinstance(i, int) for i in item))
        for item in items
    )
    if tokens and policy.opaque_parts != "allow":
        raise InvalidRequest(
            "A prompt given as token ids cannot be scanned for personal data; this org's "
            "policy refuses it (opaque_parts). Send the prompt as text.",
            param="prompt",
            code="opaque_content_refused",
        )


# --- output tokens and users -------------------------------------------------------------------


def cap_output(body: dict[str, Any], api: Api, cap: int | None, choices: int = 1) -> int | None:
    """Cap the output-token fields the client sent (or send the cap); the per-choice limit.

    With a cap, it bounds the whole answer: each of `choices` answers may use
    `cap // choices` tokens, and a request for more answers than the cap has tokens is refused.
    """
    fields = OUTPUT_FIELDS[api]
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
