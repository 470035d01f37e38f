"""The command line a new user meets: `validate`'s summary, `--version`, and `--help`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service import __version__
from service.cli import main
from service.config import Settings
from tests.api.datasets import chat_jsonl


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, capsys.readouterr().out


def test_validate_summarises_errors_first_with_their_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(chat_jsonl(12) + b"{not json\n\n")
    code, out = run(capsys, "validate", str(path))
    lines = out.splitlines()
    assert code == 1
    assert lines[0].startswith("train.jsonl: invalid, 2 errors")
    assert lines[1:3] == [
        "  line 13: invalid_json: the line is not valid JSON",
        "  line 14: blank_line: blank line",
    ]
    assert len(lines) < 10
    assert "{" not in out


def test_validate_prices_the_chosen_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(chat_jsonl(12))
    code, out = run(capsys, "validate", str(path), "--model", "gpt-4o-mini")
    assert code == 0
    assert out.splitlines()[0] == "train.jsonl: valid (chat format, 12 examples, 12 lines)"
    assert "tokens: " in out
    [cost] = [line for line in out.splitlines() if line.startswith("cost: ")]
    assert "gpt-4o-mini-2024-07-18" in cost
    full = json.loads(run(capsys, "validate", str(path), "--model", "gpt-4o-mini", "--json")[1])
    estimate = next(e for e in full["estimated_costs"] if e["model"] == "gpt-4o-mini-2024-07-18")
    assert f"${estimate['cost']:,.4f}" in cost


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--version") == (0, f"tunegate {__version__}\n")


def test_help_lists_the_environment_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    _, top = run(capsys, "--help")
    for field in Settings.model_fields.values():
        variable = field.validation_alias.choices[0]  # type: ignore[union-attr]
        assert variable in top
    _, serve = run(capsys, "serve", "--help")
    assert "TUNEGATE_PORT" in serve and "default: 8080" in serve
    _, admin = run(capsys, "admin", "--help")
    assert "REDIS_URL" in admin and "TUNEGATE_PORT" not in admin
