"""A bad setting stops a command before it starts, with one line on stderr naming the variable
and what to do, and no traceback: a price table that cannot be read, a Redis that does not
answer, a data folder that cannot be written, an org that does not exist."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

TOKEN = "tga_startup-checks-admin-token-0123456789"
UNREACHABLE = "redis://:hunter2@127.0.0.1:1/0"  # nothing listens on port 1


def tunegate(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TUNEGATE_", "OPENAI_"))}
    clean.pop("REDIS_URL", None)
    clean.update({"TUNEGATE_DATA_DIR": str(tmp_path / "data"), "TUNEGATE_PORT": "0", **env})
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line_naming(result: subprocess.CompletedProcess[str], variable: str, code: int) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert result.returncode == code
    return lines[0]


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    example = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    }
    path.write_text(json.dumps(example) + "\n")
    return path


@pytest.mark.parametrize("command", [["serve"], ["validate", "DATASET"]])
@pytest.mark.parametrize("content", [None, "{}", "not json"], ids=["missing", "wrong", "garbled"])
def test_a_prices_file_that_cannot_be_used(
    command: list[str], content: str | None, tmp_path: Path, dataset: Path
) -> None:
    prices = tmp_path / "prices.json"
    if content is not None:
        prices.write_text(content)
    args = [str(dataset) if part == "DATASET" else part for part in command]
    result = tunegate(args, {"TUNEGATE_PRICES_FILE": str(prices)}, tmp_path)
    one_line_naming(result, "TUNEGATE_PRICES_FILE", 2)


@pytest.mark.parametrize(
    "command", [["serve"], ["worker"], ["admin", "create-org", "search"]], ids=lambda c: c[0]
)
def test_an_unreachable_redis(command: list[str], tmp_path: Path) -> None:
    env = {"REDIS_URL": UNREACHABLE, "TUNEGATE_ADMIN_TOKEN": TOKEN}
    line = one_line_naming(tunegate(command, env, tmp_path), "REDIS_URL", 2)
    assert "hunter2" not in line


@pytest.mark.parametrize("command", [["serve"], ["worker"]])
def test_a_data_dir_that_cannot_be_written(command: list[str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a folder inside a file cannot be made, whoever runs the test
    env = {"TUNEGATE_DATA_DIR": str(blocker / "data"), "REDIS_URL": "redis://127.0.0.1:1/0"}
    one_line_naming(tunegate(command, env, tmp_path), "TUNEGATE_DATA_DIR", 2)


@pytest.mark.integration
def test_a_key_for_an_org_that_does_not_exist(
    redis_url: str, redis_namespace: str, tmp_path: Path
) -> None:
    env = {"REDIS_URL": redis_url, "TUNEGATE_REDIS_NAMESPACE": redis_namespace}
    result = tunegate(["admin", "create-key", "org_doesnotexist", "--role", "admin"], env, tmp_path)
    one_line_naming(result, "org_doesnotexist", 1)
