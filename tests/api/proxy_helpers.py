"""A gateway whose upstream is one run of the sandbox, for the completion proxy's tests.

Test modules import the fixtures they use from here (`from tests.api.proxy_helpers import
proxy`); the gateway is shared by the session, so each test makes its own org and keys, and
`upstream` empties the run's request log and faults before the test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import httpx2
import orjson
import pytest
from openai import OpenAI

from service.domain.tokens import encoding_for_model
from service.operations.inference.models import register_tuned_model
from service.store import Store
from tests.api.conftest import UPSTREAM_KEY, Gateway, gateway_settings, running_gateway

T = TypeVar("T")
PROXY_RUN = "proxy"
BASE_MODEL = "gpt-4o-mini-2024-07-18"


@dataclass
class Proxy:
    gateway: Gateway
    run: str
    inspector: httpx.Client

    @property
    def url(self) -> str:
        return self.gateway.url

    def sdk(self, key: str, **options: Any) -> OpenAI:
        # Plain-HTTP clients skip loading CA certificates (tens of ms per client).
        http_client = httpx2.Client(verify=False, timeout=30)
        return OpenAI(
            base_url=f"{self.url}/v1",
            api_key=key,
            max_retries=0,
            http_client=http_client,
            **options,
        )

    def http(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, verify=False)

    def org(
        self, policy: dict[str, Any] | None = None, role: str = "member", name: str = "proxy-org"
    ) -> tuple[str, str]:
        """A new org with the policy, and a key of it: (org id, key)."""
        org_id = self.gateway.create_org(name, policy)
        return org_id, self.gateway.create_key(org_id, role)[1]

    def upstream_requests(self, path_prefix: str = "/v1/") -> list[dict[str, Any]]:
        response = self.inspector.get("/requests", params={"path_prefix": path_prefix})
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    def upstream_bodies(self, path: str = "/v1/chat/completions") -> list[dict[str, Any]]:
        return [entry["body"] for entry in self.upstream_requests(path)]

    def add_fault(self, **spec: Any) -> None:
        response = self.inspector.post("/faults", json=spec)
        assert response.status_code == 201, response.text

    def reset_upstream(self) -> None:
        self.inspector.delete("/requests").raise_for_status()
        self.inspector.delete("/faults").raise_for_status()

    def register(self, org_id: str, model_id: str, base_model: str = BASE_MODEL) -> None:
        """Register a tuned model for an org, as the jobs feature does when a job succeeds."""
        redis_url = self.gateway.settings.redis_url or ""

        async def register() -> None:
            store = Store(redis_url)
            try:
                await register_tuned_model(store, org_id, model_id, base_model, "ftjob-test")
            finally:
                await store.aclose()

        asyncio.run(register())

    def tune(self) -> str:
        """A real tuned model in the sandbox run (the SDK straight to the upstream)."""
        base_url = self.gateway.sandbox.base_url_for(self.run)
        with OpenAI(base_url=base_url, api_key=UPSTREAM_KEY) as upstream:
            rows = [
                {
                    "messages": [
                        {"role": "user", "content": f"q{i}"},
                        {"role": "assistant", "content": "a"},
                    ]
                }
                for i in range(12)
            ]
            content = b"\n".join(orjson.dumps(row) for row in rows)
            training = upstream.files.create(file=("t.jsonl", content), purpose="fine-tune")
            job = upstream.fine_tuning.jobs.create(model=BASE_MODEL, training_file=training.id)
            done = eventually(
                lambda: upstream.fine_tuning.jobs.retrieve(job.id).fine_tuned_model, timeout=20
            )
        return str(done)

    def usage(self, key: str, **params: Any) -> list[dict[str, Any]]:
        with self.http(key) as http:
            response = http.get("/v1/usage", params=params)
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()["data"]
        return rows


def eventually(check: Callable[[], T | None], *, timeout: float = 5.0) -> T:
    """The first truthy result of `check`, polled until `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"no result within {timeout}s (last: {result!r})")
        time.sleep(0.02)


@pytest.fixture(scope="session")
def proxy(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    for model in (BASE_MODEL, "davinci-002"):  # loaded before the short upstream timeout applies
        encoding_for_model(model)
    settings = gateway_settings(
        tmp_path_factory.mktemp("proxy-data"),
        gateway.sandbox.base_url_for(PROXY_RUN),
        redis_url=gateway.settings.redis_url,  # a second service process, as in production
        upstream_timeout_seconds=5.0,  # room for a loaded machine; the hang test waits it out
        upstream_max_retries=0,
    )
    inspector = httpx.Client(
        base_url=f"{gateway.sandbox.url}/runs/{PROXY_RUN}/_sandbox",
        headers={"Authorization": f"Bearer {UPSTREAM_KEY}"},
        verify=False,
    )
    with inspector, running_gateway(settings, gateway.sandbox) as running:
        yield Proxy(running, PROXY_RUN, inspector)


@pytest.fixture(scope="session")
def tuned_model(proxy: Proxy) -> str:
    return proxy.tune()


@pytest.fixture()
def upstream(proxy: Proxy) -> Proxy:
    """The proxy with the upstream run's request log and faults emptied."""
    proxy.reset_upstream()
    return proxy
