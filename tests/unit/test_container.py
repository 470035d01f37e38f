"""The image and compose file, checked by reading them (no Docker engine here): a small build
context, dependencies installed before the code is copied, a health check that fits each role,
the sandbox as a compose service of its own, and no Redis key spelled out by hand."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.probe import container_command, detect_role, option
from tests.support import ROOT

ROLES = {"service": "serve", "worker": "worker", "sandbox": "sandbox-upstream"}


def dockerfile() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_the_build_context_leaves_out_the_venv_datasets_and_git() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "**/*.jsonl", "tests", "**/__pycache__", ".tunegate"} <= ignored


def test_dependencies_are_installed_before_the_code_is_copied() -> None:
    lines = dockerfile()
    first_code = next(
        i for i, line in enumerate(lines) if re.match(r"COPY (service|workers)", line)
    )
    installs = [i for i, line in enumerate(lines) if "pip install" in line]
    assert installs[0] < first_code  # the dependency layer survives a code change
    assert all("COPY" not in line or "pyproject.toml" in line for line in lines[: installs[0]])
    assert "--no-deps" in lines[installs[-1]]  # the code's own layer installs nothing else


def test_the_image_health_check_fits_whichever_role_runs() -> None:
    check = next(line for line in dockerfile() if line.startswith("HEALTHCHECK"))
    assert '"tunegate", "health"]' in check and ":8080" not in check


@pytest.mark.parametrize("service", sorted(ROLES))
def test_each_compose_service_checks_its_own_role(service: str) -> None:
    test = compose()["services"][service]["healthcheck"]["test"]
    assert test[1:4] == ["tunegate", "health", "--role"] and test[4] == ROLES[service]


def test_the_sandbox_is_a_compose_service_of_its_own() -> None:
    sandbox = compose()["services"]["sandbox"]
    assert sandbox["profiles"] == ["sandbox"]
    assert sandbox["command"][0] == "sandbox-upstream" and "0.0.0.0" in sandbox["command"]
    text = (ROOT / "compose.yaml").read_text()
    assert "OPENAI_BASE_URL=http://sandbox:8090/v1" in text  # how service and worker reach it


def test_no_redis_key_is_spelled_out() -> None:
    assert "tg:" not in (ROOT / "compose.yaml").read_text()
    assert "tg:" not in (ROOT / "Dockerfile").read_text()
    assert "TUNEGATE_REDIS_NAMESPACE" in compose()["x-tunegate-env"]


def test_the_worker_gets_time_to_hand_back_its_task() -> None:
    grace = compose()["services"]["worker"]["stop_grace_period"]
    assert int(grace.rstrip("s")) > 25  # the worker's default --shutdown-timeout


@pytest.mark.parametrize(
    ("cmdline", "role", "port"),
    [
        (b"/usr/local/bin/python\0/usr/local/bin/tunegate\0worker\0", "worker", None),
        (
            b"/usr/local/bin/tunegate\0sandbox-upstream\0--port\x009000\0",
            "sandbox-upstream",
            "9000",
        ),
        (b"/usr/local/bin/tunegate\0serve\0", "serve", None),
        (b"/bin/sh\0-c\0sleep 1\0", "serve", None),
    ],
)
def test_the_health_check_finds_the_role_of_process_1(
    cmdline: bytes, role: str, port: str | None, tmp_path: Path
) -> None:
    (tmp_path / "cmdline").write_bytes(cmdline)
    command = container_command(tmp_path / "cmdline")
    assert detect_role(command) == role
    assert option(command, "--port") == port


def test_object_storage_is_an_optional_minio_wired_through_the_storage_url() -> None:
    services = compose()["services"]
    assert services["minio"]["profiles"] == ["s3"]
    assert services["minio-bucket"]["profiles"] == ["s3"]
    for name in ("service", "worker"):
        env = services[name]["environment"]
        assert env["TUNEGATE_STORAGE_URL"] == "${TUNEGATE_STORAGE_URL:-}"
        assert env["AWS_ENDPOINT_URL"].endswith("http://minio:9000}")
        assert all(env[k] for k in ("AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))
