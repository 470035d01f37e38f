"""`<NAME>_FILE` variants of the four secrets: the value is read from the file (a trailing
newline dropped), and a file that cannot be read, or both forms at once, is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import SECRET_FILE_VARIABLES, load_settings

TOKEN = "tga_" + "s" * 40


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRET_FILE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)


@pytest.mark.parametrize(
    ("variable", "field"),
    [
        ("OPENAI_API_KEY", "openai_api_key"),
        ("TUNEGATE_ADMIN_TOKEN", "admin_token"),
        ("TUNEGATE_SECRET_KEY", "secret_key"),
        ("OPENAI_WEBHOOK_SECRET", "openai_webhook_secret"),
    ],
)
def test_a_secret_is_read_from_its_file(
    variable: str, field: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secret").write_text(TOKEN + "\n")
    monkeypatch.setenv(f"{variable}_FILE", str(tmp_path / "secret"))
    assert getattr(load_settings(), field).get_secret_value() == TOKEN


def test_a_missing_file_is_one_line_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TUNEGATE_ADMIN_TOKEN_FILE", str(tmp_path / "nope"))
    with pytest.raises(SystemExit) as stopped:
        load_settings()
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "TUNEGATE_ADMIN_TOKEN_FILE" in lines[0]


def test_both_forms_at_once_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "secret").write_text(TOKEN)
    monkeypatch.setenv("OPENAI_API_KEY_FILE", str(tmp_path / "secret"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-other")
    with pytest.raises(SystemExit):
        load_settings()
    assert "OPENAI_API_KEY_FILE" in capsys.readouterr().err
