"""A completion request under the org's policy: routing, checks and rewrites, all pure.

The proxy never builds a model of the whole request: it takes the client's JSON object as a
plain dict, checks only what it needs (`model`, `messages` or `prompt`, the output-token fields,
`user`), and rewrites it in place for the upstream. Every text the model would read (message
strings, text content parts, legacy prompts) passes the PII policy: `allow` leaves it, `redact`
replaces each finding with its typed placeholder, `block` refuses the request naming the kinds
found (never the values). `force_store_false` sends `store: false`; `max_output_tokens` caps
what the client asked for and fills it in when it asked for nothing; `user` and
`safety_identifier` leave only as a keyed hash; a stream always asks the upstream for its usage
chunk, which reaches the client only if the client asked for it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from service.domain import pii
from service.domain.policy import Policy, model_allowed
from service.domain.pricing import is_tuned
from service.errors import InvalidRequest

Api = Literal["chat", "completions"]
USER_FIELDS = ("user", "safety_identifier")
USER_HASH_PREFIX = "tg-"
# The output-token fields each API reads, the one we fill in first.
OUTPUT_FIELDS: dict[Api, tuple[str, ...]] = {
    "chat": ("max_completion_tokens", "max_tokens"),
    "completions": ("max_tokens",),
}
LEGACY_DEFAULT_MAX_TOKENS = 16  # what the legacy endpoint generates when not told


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


def prepare(
    body: dict[str, Any], api: Api, policy: Policy, *, model: str, org_id: str, user_key: bytes
) -> Prepared:
    """Apply the policy to a checked body, in place, for the routed `model`."""
    body["model"] = model
    found = apply_pii(body, api, policy)
    if policy.force_store_false and (api == "chat" or "store" in body):
        body["store"] = False
    limit = cap_output(body, api, policy.max_output_tokens)
    hash_users(body, org_id, user_key)
    stream = body.get("stream") is True
    wants_usage = stream and _asks_usage(body.get("stream_options"))
    if stream:
        options = body.get("stream_options")
        body["stream_options"] = {**(options if isinstance(options, dict) else {})}
        body["stream_options"]["include_usage"] = True
    return Prepared(api, body, model, stream, wants_usage, limit, _choices(body, api), found)


def _asks_usage(options: object) -> bool:
    return isinstance(options, dict) and options.get("include_usage") is True


def _choices(body: dict[str, Any], api: Api) -> int:
    n = body.get("n")
    count = n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
    prompt = body.get("prompt")
    if api == "completions" and isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
        count *= len(prompt)
    return count


# --- texts -------------------------------------------------------------------------------------


def text_slots(body: dict[str, Any], api: Api) -> Iterator[tuple[Any, Any]]:
    """(container, key) for every text the model reads: `container[key]` is a string."""
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


def apply_pii(body: dict[str, Any], api: Api, policy: Policy) -> Counter[str]:
    """Redact or detect per the policy; raises InvalidRequest when it blocks."""
    found: Counter[str] = Counter()
    if policy.pii == "allow":
        return found
    entities = tuple(policy.pii_entities)
    for container, key in text_slots(body, api):
        if policy.pii == "redact":
            container[key], counts = pii.redact(container[key], entities)
            found.update(counts)
        else:
            found.update(finding.kind for finding in pii.detect(container[key], entities))
    if policy.pii == "block" and found:
        kinds = ", ".join(sorted(found))
        raise InvalidRequest(
            f"The request contains personal data this org's policy blocks: {kinds}.",
            param="messages" if api == "chat" else "prompt",
            code="pii_blocked",
            extra={"envelope": {"pii_entities": sorted(found)}},
        )
    return found


# --- output tokens and users -------------------------------------------------------------------


def cap_output(body: dict[str, Any], api: Api, cap: int | None) -> int | None:
    """Cap the output-token fields the client sent (or send the cap); the effective limit."""
    fields = OUTPUT_FIELDS[api]
    sent = [name for name in fields if body.get(name) is not None]
    for name in sent:
        value = body[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidRequest(f"'{name}' must be a non-negative integer.", param=name)
        if cap is not None and value > cap:
            body[name] = cap
    if cap is not None and not sent:
        body[fields[0]] = cap
        return cap
    if sent:
        return min(int(body[name]) for name in sent)
    return LEGACY_DEFAULT_MAX_TOKENS if api == "completions" else None


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
