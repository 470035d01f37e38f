"""structlog set-up for the service and the workers, and the secret scrubber.

Every log line passes through `scrub_secrets`, which replaces any registered secret (the upstream
key, the admin token) and anything shaped like a tunegate org key or a webhook secret with
`[REDACTED]`. The request id, org id and job id are bound through contextvars so every line of a
request carries them. `TUNEGATE_LOG_LEVEL=debug` applies to tunegate's own loggers only: other
libraries stay at INFO, since some (fakeredis, redis, the HTTP clients) log every command and
reply at debug, secrets included.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import Any

import structlog

REDACTED = "[REDACTED]"
ORG_KEY_PATTERN = re.compile(r"tgk_[A-Za-z0-9]+_[A-Za-z0-9_\-]{16,}")
_BEARER_PATTERN = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}")
_WEBHOOK_SECRET_PATTERN = re.compile(r"whsec_[A-Za-z0-9+/=_\-]{16,}")
OWN_LOGGERS = ("service", "workers", "tunegate")
_secrets: set[str] = set()


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember values that must never appear in a log line."""
    _secrets.update(value for value in values if value and len(value) >= 8)


def scrub_text(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = ORG_KEY_PATTERN.sub(REDACTED, text)
    text = _WEBHOOK_SECRET_PATTERN.sub(REDACTED, text)
    return _BEARER_PATTERN.sub(lambda m: m.group(1) + REDACTED, text)


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {key: _scrub_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(item) for item in value]
    return value


def scrub_secrets(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return {key: _scrub_value(value) for key, value in event_dict.items()}


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is now (so redirection and capture keep working)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(log_format: str | None = None, level: str = "info") -> None:
    """Configure structlog (and stdlib logging, which uvicorn and rq use) once per process."""
    renderer_name = log_format or ("console" if sys.stderr.isatty() else "json")
    renderer: Any = (
        structlog.dev.ConsoleRenderer()
        if renderer_name == "console"
        else structlog.processors.JSONRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        scrub_secrets,
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(_CurrentStderr())  # type: ignore[arg-type]
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    numeric = logging.getLevelName(level.upper())
    root.setLevel(max(numeric, logging.INFO))
    for own in OWN_LOGGERS:
        logging.getLogger(own).setLevel(numeric)
    for noisy in ("httpx", "httpx2"):  # one INFO line per upstream call costs real CPU
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "rq.worker", "rq.scheduler"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
