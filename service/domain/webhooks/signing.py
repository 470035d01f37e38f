"""Webhooks both ways: the job-done callbacks tunegate sends, and the events OpenAI sends it.

Outgoing (to an org's `webhook_url`, when a job reaches a terminal state), a POST whose JSON body
is `{"object": "event", "id", "type", "created_at", "data": <the job>}` with the headers

    tunegate-event-id:   evt_...               the same on every retry: dedupe on it
    tunegate-event-type: fine_tuning.job.succeeded | .failed | .cancelled
    tunegate-signature:  t=<unix seconds>,v1=<hex HMAC-SHA256 of f"{t}.".encode() + body>

The receiver recomputes the HMAC with the org's secret over the raw body and rejects a `t`
outside its tolerance (`verify` here is the reference). During a secret rotation the header may
carry several `v1=` values; any match passes. Failed deliveries are retried on
`delivery_delays` (exponential, jittered, spanning at least a day, as Standard Webhooks
recommends); a 410 Gone stops them.

Incoming (`verify_openai_webhook`): OpenAI signs per Standard Webhooks: `webhook-id`,
`webhook-timestamp`, and `webhook-signature: v1,<base64 HMAC-SHA256 of f"{id}.{ts}.{body}">`
(space-separated when several), keyed with the base64 part of the `whsec_...` secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import random
import re
import secrets
import string
from collections.abc import Mapping
from typing import Any

import orjson

from service.domain.jobs.states import JobState
from service.errors import AuthenticationFailed, InvalidRequest

SIGNATURE_HEADER = "tunegate-signature"
EVENT_ID_HEADER = "tunegate-event-id"
EVENT_TYPE_HEADER = "tunegate-event-type"
TOLERANCE_SECONDS = 300

JOB_EVENT_TYPES = {
    JobState.SUCCEEDED: "fine_tuning.job.succeeded",
    JobState.FAILED: "fine_tuning.job.failed",
    JobState.CANCELLED: "fine_tuning.job.cancelled",
}
FINE_TUNING_EVENT_TYPES = frozenset(JOB_EVENT_TYPES.values())

# Retries after the first attempt: 10 s, 30 s, 90 s, ... tripling up to 4 h apart, each
# scaled by a random factor in [1 - JITTER, 1 + JITTER], for as many as it takes that even
# the shortest draws span a day.
RETRY_FIRST, RETRY_FACTOR, RETRY_CAP = 10.0, 3.0, 4 * 3600.0
RETRY_JITTER = 0.2
RETRY_SPAN = 24 * 3600.0

_ID_ALPHABET = string.ascii_letters + string.digits
_DIGITS = re.compile(r"[0-9]{1,12}")


def new_event_id() -> str:
    return "evt_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def new_secret() -> bytes:
    return secrets.token_bytes(32)


def event_type_for(state: JobState) -> str:
    return JOB_EVENT_TYPES[state]


def event_body(event_id: str, event_type: str, created_at: int, job: Mapping[str, Any]) -> bytes:
    event = {
        "object": "event",
        "id": event_id,
        "type": event_type,
        "created_at": created_at,
        "data": dict(job),
    }
    return orjson.dumps(event)


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 over `f"{timestamp}."` followed by the raw body."""
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: bytes, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def delivery_headers(
    secret: bytes, event_id: str, event_type: str, timestamp: int, body: bytes
) -> dict[str, str]:
    return {
        "content-type": "application/json",
        EVENT_ID_HEADER: event_id,
        EVENT_TYPE_HEADER: event_type,
        SIGNATURE_HEADER: signature_header(secret, timestamp, body),
    }


def verify(
    secret: bytes, header: str, body: bytes, now: int, tolerance: int = TOLERANCE_SECONDS
) -> int:
    """Check a `tunegate-signature` header; returns its timestamp."""
    timestamp, signatures = _parse_signature_header(header)
    _check_fresh(timestamp, now, tolerance)
    expected = sign(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise AuthenticationFailed("The webhook signature does not match.", code="bad_signature")
    return timestamp


def nominal_delays() -> list[float]:
    """Seconds to wait before each retry, before jitter."""
    delays: list[float] = []
    shortest = 0.0
    while shortest < RETRY_SPAN:
        delay = min(RETRY_FIRST * RETRY_FACTOR ** len(delays), RETRY_CAP)
        delays.append(delay)
        shortest += delay * (1 - RETRY_JITTER)
    return delays


def delivery_delays(rng: random.Random) -> list[float]:
    """The jittered retry schedule of one delivery (spread so that retries do not bunch)."""
    return [delay * rng.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER) for delay in nominal_delays()]


def next_delay(attempt: int, rng: random.Random, retry_after: float | None = None) -> float | None:
    """Wait before retry number `attempt` (1 = the first retry); None once the schedule ends.
    A receiver's `Retry-After` is honoured when it asks for longer."""
    delays = nominal_delays()
    if not 1 <= attempt <= len(delays):
        return None
    delay = delays[attempt - 1] * rng.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)
    return max(delay, retry_after or 0.0)


def should_retry(status: int | None) -> bool:
    """After an attempt answered `status` (None: no answer), whether to try again."""
    if status is None:
        return True
    return not (200 <= status < 300 or status == 410)


def sign_openai_webhook(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value OpenAI would send (for the sandbox and tests)."""
    return _openai_signature(_openai_key(secret), webhook_id, str(timestamp), body)


def verify_openai_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: int,
    tolerance: int = TOLERANCE_SECONDS,
) -> dict[str, Any]:
    """Check an OpenAI webhook and return its event; `webhook-id` is the key to dedupe on."""
    lowered = {name.lower(): value for name, value in headers.items()}
    webhook_id = _required(lowered, "webhook-id")
    raw_timestamp = _required(lowered, "webhook-timestamp")
    signatures = _required(lowered, "webhook-signature").split()
    _check_fresh(_int_header(raw_timestamp, "webhook-timestamp"), now, tolerance)
    # Signed over the headers exactly as sent, as the SDK's `webhooks.unwrap` does.
    expected = _openai_signature(_openai_key(secret), webhook_id, raw_timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise AuthenticationFailed("The webhook signature does not match.", code="bad_signature")
    return _event(body)


def fine_tuning_job_id(event: Mapping[str, Any]) -> str | None:
    """The job a fine-tuning event is about; None for other event types."""
    if event.get("type") not in FINE_TUNING_EVENT_TYPES:
        return None
    job_id = (event.get("data") or {}).get("id")
    return job_id if isinstance(job_id, str) else None


def _openai_signature(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def _openai_key(secret: str) -> bytes:
    if not secret.startswith("whsec_"):
        return secret.encode()
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        raise InvalidRequest("The webhook secret is not valid base64.", code="bad_secret") from None


def _parse_signature_header(header: str) -> tuple[int, list[str]]:
    pairs = [part.strip().partition("=") for part in header.split(",")]
    stamps = [value for key, _, value in pairs if key == "t"]
    signatures = [value for key, _, value in pairs if key == "v1" and value]
    if len(stamps) != 1 or not signatures:
        raise InvalidRequest(f"Malformed {SIGNATURE_HEADER} header.", code="bad_signature_header")
    return _int_header(stamps[0], SIGNATURE_HEADER), signatures


def _required(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise InvalidRequest(f"Missing webhook header {name}.", code="missing_webhook_header")
    return value


def _int_header(value: str, name: str) -> int:
    if not _DIGITS.fullmatch(value):
        raise InvalidRequest(f"Invalid {name} timestamp.", code="bad_webhook_timestamp")
    return int(value)


def _check_fresh(timestamp: int, now: int, tolerance: int) -> None:
    if abs(now - timestamp) > tolerance:
        raise AuthenticationFailed(
            f"The webhook timestamp is more than {tolerance} seconds from now.",
            code="stale_webhook",
        )


def _event(body: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("The webhook body is not JSON.", code="bad_webhook_body") from None
    if not isinstance(event, dict):
        raise InvalidRequest("The webhook body is not a JSON object.", code="bad_webhook_body")
    return event
