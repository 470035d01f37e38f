"""Per-key rate limits: what a call is charged, what the caller is told; pure.

Each key has two token buckets per the org's `rate_limits`: requests and tokens per minute,
refilling continuously (a bucket is full again one minute after it was emptied). A call is
charged one request and its estimated tokens (prompt estimate plus the output it may produce)
before it goes upstream, and the difference to the upstream's reported usage afterwards. The
headers are OpenAI's: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, the reset being
the time until the bucket is full again, written as OpenAI writes it (`20ms`, `1.5s`, `6m0s`).
A refused call waits whole seconds (`Retry-After` has no fractions), and the reset of the bucket
that refused it says the same wait: both tell the client when to come back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from service.domain.tenancy.policy import RateLimits

CHARS_PER_TOKEN = 4  # OpenAI's rule of thumb; usage corrects the estimate after the call
MESSAGE_OVERHEAD_TOKENS = 4
DEFAULT_OUTPUT_ESTIMATE = 256  # a chat call that sets no output limit


@dataclass(frozen=True, slots=True)
class Bucket:
    limit: int
    remaining: int
    reset_seconds: float


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    retry_after: float
    requests: Bucket | None
    tokens: Bucket | None

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, bucket in (("requests", self.requests), ("tokens", self.tokens)):
            if bucket is not None:
                headers[f"x-ratelimit-limit-{name}"] = str(bucket.limit)
                headers[f"x-ratelimit-remaining-{name}"] = str(max(bucket.remaining, 0))
                headers[f"x-ratelimit-reset-{name}"] = format_reset(bucket.reset_seconds)
        return headers

    @property
    def exhausted(self) -> str:
        """Which limit denied the call, for the error message."""
        if self.requests is not None and self.requests.remaining < 1:
            return "requests"
        return "tokens"


def is_limited(limits: RateLimits | None) -> bool:
    return limits is not None and bool(limits.requests_per_minute or limits.tokens_per_minute)


def format_reset(seconds: float) -> str:
    if seconds < 1:
        return f"{max(round(seconds * 1000), 0)}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".")
    return f"{int(minutes)}m{text}s" if minutes else f"{text}s"


def estimate_tokens(texts: Iterable[str], output_limit: int | None, choices: int) -> int:
    """What a call may use: its prompt (by characters) and the output it allows itself."""
    texts = list(texts)
    prompt = sum(len(text) for text in texts) // CHARS_PER_TOKEN
    prompt += MESSAGE_OVERHEAD_TOKENS * len(texts)
    output = DEFAULT_OUTPUT_ESTIMATE if output_limit is None else output_limit
    return prompt + output * max(choices, 1)


def decision(
    limits: RateLimits, allowed: int, values: list[int], retry_after_ms: int
) -> RateDecision:
    """Build the decision from the store's answer: remaining and reset (ms) per bucket."""
    requests = tokens = None
    if limits.requests_per_minute:
        requests = Bucket(limits.requests_per_minute, values[0], values[1] / 1000)
    if limits.tokens_per_minute:
        tokens = Bucket(limits.tokens_per_minute, values[2], values[3] / 1000)
    if allowed:
        return RateDecision(True, retry_after_ms / 1000, requests, tokens)
    return refusal(RateDecision(False, 0, requests, tokens), retry_after_ms)


def refusal(denied: RateDecision, retry_after_ms: int) -> RateDecision:
    """The refused call's wait in whole seconds, also as the reset of the bucket that refused."""
    wait = max(1, math.ceil(retry_after_ms / 1000))
    requests, tokens = denied.requests, denied.tokens
    if denied.exhausted == "requests" and requests is not None:
        requests = replace(requests, reset_seconds=wait)
    elif tokens is not None:
        tokens = replace(tokens, reset_seconds=wait)
    return RateDecision(False, wait, requests, tokens)
