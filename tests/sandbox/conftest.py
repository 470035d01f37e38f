"""One fast sandbox for the whole folder; each test works in its own run."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import httpx2
import pytest
from openai import OpenAI
from sandbox_helpers import API_KEY, FAST

from service.sandbox import SandboxHandle, start_in_thread


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxHandle]:
    handle = start_in_thread(FAST)
    yield handle
    handle.stop()


@pytest.fixture
def run(request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:40]
    return f"{name}-{secrets.token_hex(4)}"


@pytest.fixture
def client(sandbox: SandboxHandle, run: str) -> Iterator[OpenAI]:
    with OpenAI(api_key=API_KEY, base_url=sandbox.base_url_for(run), max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def inspect(sandbox: SandboxHandle, run: str) -> Iterator[httpx2.Client]:
    """Plain HTTP to the run's `/_sandbox/` endpoints."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    base = f"{sandbox.url}/runs/{run}/_sandbox"
    with httpx2.Client(base_url=base, headers=headers) as http:
        yield http
