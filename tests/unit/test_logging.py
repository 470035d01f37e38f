"""The scrubber removes registered secrets and anything shaped like an org key."""

from __future__ import annotations

import json

import pytest

from service.domain.access import issue_key
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
