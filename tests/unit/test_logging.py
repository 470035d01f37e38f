"""The scrubber removes registered secrets and anything shaped like an org key."""

from __future__ import annotations

import json
import logging
import secrets

import pytest

from service.domain.tenancy.access import issue_key
from service.logging import configure_logging, get_logger, register_secrets, scrub_text


def test_scrub_text_removes_registered_secret_and_org_keys() -> None:
    register_secrets(["sk-upstream-SECRET-abcdef123456"])
    key = issue_key().plaintext
    text = f"calling with sk-upstream-SECRET-abcdef123456 and {key} and Bearer abcdefghijkl"
    scrubbed = scrub_text(text)
    assert "sk-upstream-SECRET" not in scrubbed
    assert key not in scrubbed
    assert "abcdefghijkl" not in scrubbed
    assert scrubbed.count("[REDACTED]") == 3


def test_log_lines_are_scrubbed_in_nested_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "info")
    register_secrets(["tga_admin-token-under-test-123"])
    key = issue_key().plaintext
    get_logger("t").info(
        "event", headers={"authorization": f"Bearer {key}"}, note=["tga_admin-token-under-test-123"]
    )
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert key not in line
    assert "tga_admin-token-under-test-123" not in line
    assert record["note"] == ["[REDACTED]"]


def test_short_values_are_not_registered() -> None:
    register_secrets(["abc", None, ""])
    assert scrub_text("abc") == "abc"


def test_debug_level_keeps_library_loggers_from_logging_replies(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """At debug, fakeredis's server logs every command and reply, and the openai SDK every
    request body: an org's webhook secret or a prompt would land in the log. Only tunegate's own
    loggers go to debug."""
    configure_logging("json", "debug")
    secret = "org-webhook-signing-value-0123456789"
    for library in ("fakeredis", "redis", "openai._base_client", "httpcore", "rq.worker"):
        logging.getLogger(library).debug("reply %s", secret)
    logging.getLogger("service.store").debug("own_stdlib_debug_line")
    get_logger("service.test").debug("own_debug_line")
    err = capsys.readouterr().err
    assert secret not in err
    assert "own_stdlib_debug_line" in err
    assert "own_debug_line" in err


def test_webhook_secrets_are_scrubbed_by_shape() -> None:
    assert scrub_text("secret whsec_0123456789abcdef0123 here") == "secret [REDACTED] here"


def test_worker_command_registers_the_configured_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from service import cli

    token = "tga_worker-admin-token-" + secrets.token_hex(12)
    upstream = "sk-worker-upstream-" + secrets.token_hex(12)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("TUNEGATE_ADMIN_TOKEN", token)
    monkeypatch.setenv("OPENAI_API_KEY", upstream)
    assert cli.main(["worker"]) == 2  # stops at once without REDIS_URL, settings loaded
    get_logger("t").info("event", token=token, note=f"key {upstream}")
    err = capsys.readouterr().err
    assert token not in err
    assert upstream not in err
