"""Webhooks: tunegate's signed callbacks and retry schedule, and OpenAI's incoming signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import time

import openai
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.domain.jobs.states import JobState
from service.domain.webhooks.signing import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    RETRY_JITTER,
    RETRY_SPAN,
    SIGNATURE_HEADER,
    delivery_delays,
    delivery_headers,
    event_body,
    event_type_for,
    fine_tuning_job_id,
    new_event_id,
    new_secret,
    next_delay,
    nominal_delays,
    should_retry,
    sign,
    sign_openai_webhook,
    signature_header,
    verify,
    verify_openai_webhook,
)
from service.errors import AuthenticationFailed, InvalidRequest

NOW = 1_750_000_000
SECRET = b"s3cret-key-for-tests"
OPENAI_SECRET = "whsec_" + base64.b64encode(b"openai-webhook-secret-32-bytes!!").decode()


def test_sign_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"id":"evt_1"}'
    expected = hmac.new(SECRET, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1_700_000_000, body) == expected
    assert signature_header(SECRET, 1_700_000_000, body) == f"t=1700000000,v1={expected}"


def test_delivery_headers_and_body() -> None:
    event_id = new_event_id()
    body = event_body(event_id, event_type_for(JobState.SUCCEEDED), NOW, {"id": "ftjob-1"})
    headers = delivery_headers(SECRET, event_id, "fine_tuning.job.succeeded", NOW, body)
    assert headers[EVENT_ID_HEADER] == event_id
    assert headers[EVENT_TYPE_HEADER] == "fine_tuning.job.succeeded"
    assert verify(SECRET, headers[SIGNATURE_HEADER], body, now=NOW) == NOW
    assert orjson.loads(body) == {
        "object": "event",
        "id": event_id,
        "type": "fine_tuning.job.succeeded",
        "created_at": NOW,
        "data": {"id": "ftjob-1"},
    }


def test_event_ids_and_secrets_are_unique() -> None:
    assert len({new_event_id() for _ in range(100)}) == 100
    assert new_event_id().startswith("evt_")
    assert len(new_secret()) == 32


def test_every_terminal_state_has_an_event_type() -> None:
    assert event_type_for(JobState.FAILED) == "fine_tuning.job.failed"
    assert event_type_for(JobState.CANCELLED) == "fine_tuning.job.cancelled"


@given(st.binary(max_size=200), st.binary(min_size=1, max_size=40), st.integers(0, 2**33))
def test_sign_verify_round_trip(body: bytes, secret: bytes, timestamp: int) -> None:
    header = signature_header(secret, timestamp, body)
    assert verify(secret, header, body, now=timestamp) == timestamp


@given(st.binary(min_size=1, max_size=200), st.data())
def test_any_change_to_the_body_is_detected(body: bytes, data: st.DataObject) -> None:
    header = signature_header(SECRET, NOW, body)
    index = data.draw(st.integers(0, len(body) - 1))
    tampered = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]
    with pytest.raises(AuthenticationFailed):
        verify(SECRET, header, tampered, now=NOW)


def test_wrong_secret_and_forged_timestamp_fail() -> None:
    body = b"{}"
    header = signature_header(SECRET, NOW, body)
    with pytest.raises(AuthenticationFailed):
        verify(b"other", header, body, now=NOW)
    forged = header.replace(f"t={NOW}", f"t={NOW + 1}")
    with pytest.raises(AuthenticationFailed):
        verify(SECRET, forged, body, now=NOW)


def test_stale_and_future_timestamps_fail() -> None:
    body = b"{}"
    with pytest.raises(AuthenticationFailed, match="seconds from now"):
        verify(SECRET, signature_header(SECRET, NOW - 301, body), body, now=NOW)
    with pytest.raises(AuthenticationFailed):
        verify(SECRET, signature_header(SECRET, NOW + 301, body), body, now=NOW)
    assert verify(SECRET, signature_header(SECRET, NOW - 300, body), body, now=NOW)


def test_rotation_accepts_any_listed_signature() -> None:
    body = b"{}"
    header = f"t={NOW},v1={sign(b'old', NOW, body)},v1={sign(SECRET, NOW, body)}"
    assert verify(SECRET, header, body, now=NOW) == NOW


@pytest.mark.parametrize("header", ["", "v1=abc", f"t={NOW}", "t=soon,v1=abc", "t=1,t=2,v1=a"])
def test_malformed_signature_headers_are_invalid(header: str) -> None:
    with pytest.raises(InvalidRequest):
        verify(SECRET, header, b"{}", now=NOW)


def test_retry_schedule_spans_a_day_whatever_the_jitter() -> None:
    nominal = nominal_delays()
    assert nominal[0] == 10
    assert nominal == sorted(nominal)
    assert sum(nominal) * (1 - RETRY_JITTER) >= RETRY_SPAN
    for seed in range(50):
        delays = delivery_delays(random.Random(seed))
        assert sum(delays) >= 24 * 3600
        assert all(
            a * (1 - RETRY_JITTER) <= b <= a * (1 + RETRY_JITTER)
            for a, b in zip(nominal, delays, strict=True)
        )


def test_next_delay_follows_the_schedule_then_stops() -> None:
    rng = random.Random(1)
    count = len(nominal_delays())
    assert next_delay(0, rng) is None
    assert next_delay(count + 1, rng) is None
    first = next_delay(1, rng)
    assert first is not None and 8 <= first <= 12
    assert next_delay(1, rng, retry_after=120) == 120


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        (200, False),
        (204, False),
        (410, False),
        (500, True),
        (429, True),
        (301, True),
        (404, True),
        (None, True),
    ],
)
def test_should_retry(status: int | None, retry: bool) -> None:
    assert should_retry(status) is retry


def openai_headers(body: bytes, timestamp: int = NOW, webhook_id: str = "wh_123") -> dict[str, str]:
    return {
        "Webhook-Id": webhook_id,
        "Webhook-Timestamp": str(timestamp),
        "Webhook-Signature": sign_openai_webhook(OPENAI_SECRET, webhook_id, timestamp, body),
    }


FT_EVENT = orjson.dumps(
    {
        "id": "evt_1",
        "object": "event",
        "created_at": NOW,
        "type": "fine_tuning.job.succeeded",
        "data": {"id": "ftjob-abc"},
    }
)


def test_openai_webhook_verifies_and_parses() -> None:
    event = verify_openai_webhook(OPENAI_SECRET, openai_headers(FT_EVENT), FT_EVENT, now=NOW)
    assert event["type"] == "fine_tuning.job.succeeded"
    assert fine_tuning_job_id(event) == "ftjob-abc"
    assert fine_tuning_job_id({"type": "batch.completed", "data": {"id": "b"}}) is None


def test_openai_signature_matches_the_official_sdk() -> None:
    now = int(time.time())
    headers = openai_headers(FT_EVENT, timestamp=now)
    client = openai.OpenAI(api_key="sk-test", webhook_secret=OPENAI_SECRET)
    client.webhooks.verify_signature(FT_EVENT, headers)  # raises if we signed differently
    assert verify_openai_webhook(OPENAI_SECRET, headers, FT_EVENT, now=now)


def test_openai_rotation_lists_several_signatures() -> None:
    headers = openai_headers(FT_EVENT)
    headers["Webhook-Signature"] = "v1,bm9wZQ== " + headers["Webhook-Signature"]
    assert verify_openai_webhook(OPENAI_SECRET, headers, FT_EVENT, now=NOW)


def test_openai_tampering_and_staleness_fail() -> None:
    headers = openai_headers(FT_EVENT)
    with pytest.raises(AuthenticationFailed):
        verify_openai_webhook(OPENAI_SECRET, headers, FT_EVENT.replace(b"abc", b"abd"), now=NOW)
    with pytest.raises(AuthenticationFailed):
        verify_openai_webhook(OPENAI_SECRET, {**headers, "Webhook-Id": "wh_x"}, FT_EVENT, now=NOW)
    with pytest.raises(AuthenticationFailed, match="seconds from now"):
        verify_openai_webhook(OPENAI_SECRET, headers, FT_EVENT, now=NOW + 301)
    other = "whsec_" + base64.b64encode(b"another").decode()
    with pytest.raises(AuthenticationFailed):
        verify_openai_webhook(other, headers, FT_EVENT, now=NOW)


@pytest.mark.parametrize("missing", ["Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"])
def test_openai_missing_headers_are_invalid(missing: str) -> None:
    headers = openai_headers(FT_EVENT)
    del headers[missing]
    with pytest.raises(InvalidRequest, match="Missing webhook header"):
        verify_openai_webhook(OPENAI_SECRET, headers, FT_EVENT, now=NOW)


def test_openai_bad_timestamp_and_body_are_invalid() -> None:
    headers = {**openai_headers(FT_EVENT), "Webhook-Timestamp": "1_750_000_000"}
    with pytest.raises(InvalidRequest):
        verify_openai_webhook(OPENAI_SECRET, headers, FT_EVENT, now=NOW)
    for body in (b"not json", b"[1, 2]"):
        with pytest.raises(InvalidRequest):
            verify_openai_webhook(OPENAI_SECRET, openai_headers(body), body, now=NOW)


def test_plain_secrets_work_like_the_sdk() -> None:
    body = b"{}"
    headers = {
        "webhook-id": "wh_1",
        "webhook-timestamp": str(NOW),
        "webhook-signature": sign_openai_webhook("plain", "wh_1", NOW, body),
    }
    assert verify_openai_webhook("plain", headers, body, now=NOW) == {}
