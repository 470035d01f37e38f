"""The domain error tree: what can go wrong, independent of HTTP.

    TunegateError                 message, param, code
    ├── InvalidRequest            the caller sent something we will not accept
    │   └── DatasetInvalid        a dataset failed validation (carries line-numbered issues)
    ├── AuthenticationFailed      no key, unknown key, revoked key
    ├── PermissionDenied          the key's role may not do this
    ├── NotFound                  absent, or belongs to another org (never tell which)
    ├── Conflict                  state or idempotency conflict
    ├── PayloadTooLarge           body over a configured limit
    ├── RateLimited               a per-key limit was hit (retry_after seconds)
    ├── QuotaExceeded             a budget of the org would go over (not worth retrying)
    ├── Unavailable               a dependency of ours (Redis) is down
    └── UpstreamError             the upstream (OpenAI or the sandbox) failed
        ├── UpstreamRejected      upstream answered 4xx: passed back with its status
        ├── UpstreamUnavailable   upstream 5xx or connection failure
        └── UpstreamTimeout       upstream did not answer in time

The HTTP layer maps each class to a status and OpenAI's error envelope in one table
(`service.http.errors`); nothing here knows about HTTP.
"""

from __future__ import annotations

from typing import Any


class TunegateError(Exception):
    default_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.extra = extra or {}


class InvalidRequest(TunegateError):
    default_code = "invalid_value"


class DatasetInvalid(InvalidRequest):
    default_code = "invalid_dataset"


class AuthenticationFailed(TunegateError):
    default_code = "invalid_api_key"


class PermissionDenied(TunegateError):
    default_code = "insufficient_permissions"


class NotFound(TunegateError):
    default_code = "not_found"


class Conflict(TunegateError):
    default_code = "conflict"


class PayloadTooLarge(TunegateError):
    default_code = "payload_too_large"


class RateLimited(TunegateError):
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class QuotaExceeded(TunegateError):
    default_code = "insufficient_quota"


class Unavailable(TunegateError):
    default_code = "service_unavailable"


class UpstreamError(TunegateError):
    default_code = "upstream_error"

    @property
    def retry_after(self) -> float:
        """Seconds the upstream asked us to wait (its Retry-After); 0 when it did not say."""
        return float(self.extra.get("retry_after") or 0.0)


class UpstreamRejected(UpstreamError):
    PASSING_STATUSES = frozenset({408, 409, 429})

    def __init__(self, message: str, *, status: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.status = status

    @property
    def passing(self) -> bool:
        """A refusal that says "not now" (timeout, conflict, rate limit), not "never"."""
        return self.status in self.PASSING_STATUSES


class UpstreamUnavailable(UpstreamError):
    default_code = "upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    default_code = "upstream_timeout"
