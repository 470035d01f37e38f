"""Policy validation and start-up configuration."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from service.config import MIN_ADMIN_TOKEN_CHARS, Settings
from service.domain.tenancy.policy import Policy, cap_output_tokens, model_allowed
from tests.support import ROOT


def test_policy_defaults_follow_design() -> None:
    policy = Policy()
    assert policy.pii == "redact"
    assert set(policy.pii_entities) == {
        "EMAIL",
        "PHONE",
        "CREDIT_CARD",
        "US_SSN",
        "IP_ADDRESS",
        "SECRET",
    }
    assert policy.allowed_models == []
    assert policy.force_store_false is True
    assert policy.log_content == "none"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"pii": "maybe"}, "pii"),
        ({"pii_entities": ["EMAIL", "DNA"]}, "pii_entities"),
        ({"rate_limits": {"requests_per_minute": 0}}, "rate_limits"),
        ({"rate_limits": {"rpm": 5}}, "rate_limits"),
        ({"webhook_url": "not a url"}, "webhook_url"),
        ({"unknown": True}, "unknown"),
    ],
)
def test_policy_rejects_bad_fields(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Policy.model_validate(body)
    assert caught.value.errors()[0]["loc"][0] == field


def test_model_allow_list_and_output_cap() -> None:
    assert model_allowed(Policy(), "anything")
    policy = Policy(allowed_models=["gpt-4o-mini-2024-07-18"], max_output_tokens=100)
    assert model_allowed(policy, "gpt-4o-mini-2024-07-18")
    assert not model_allowed(policy, "gpt-4.1-2025-04-14")
    assert cap_output_tokens(policy, None) == 100
    assert cap_output_tokens(policy, 500) == 100
    assert cap_output_tokens(policy, 20) == 20
    assert cap_output_tokens(Policy(), 20) == 20


def test_settings_read_design_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://example:6379/2")
    monkeypatch.setenv("TUNEGATE_PORT", "9000")
    monkeypatch.setenv("TUNEGATE_DATA_DIR", "/tmp/somewhere")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1234/v1/")
    settings = Settings()
    assert settings.redis_url == "redis://example:6379/2"
    assert settings.port == 9000
    assert str(settings.data_dir) == "/tmp/somewhere"
    assert settings.openai_base_url == "http://127.0.0.1:1234/v1"
    assert not settings.embedded


def test_bad_setting_fails_start_with_one_clear_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve"],
        cwd=ROOT,
        env={"TUNEGATE_PORT": "eighty", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("tunegate: configuration error: TUNEGATE_PORT")
    assert "Traceback" not in result.stderr


def test_short_admin_token_fails_start_naming_the_variable() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "worker"],
        cwd=ROOT,
        env={"TUNEGATE_ADMIN_TOKEN": "tga_short-token", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("tunegate: configuration error: TUNEGATE_ADMIN_TOKEN")
    assert "tga_short-token" not in result.stderr


def test_embedded_mode_generates_a_token_long_enough(capsys: pytest.CaptureFixture[str]) -> None:
    from service.runtime import ensure_admin_token

    generated = ensure_admin_token(Settings(redis_url=None, admin_token=None)).admin_token
    assert generated is not None
    token = generated.get_secret_value()
    assert len(token) >= MIN_ADMIN_TOKEN_CHARS
    assert Settings(admin_token=token).admin_token == generated
    assert token in capsys.readouterr().err  # shown once, on the banner
