"""A budget that holds across processes: two `tunegate serve` processes share one $0.50 budget
in a real Redis, with the sandbox upstream as a process of its own. Sixteen clients call both
processes in turn until each is refused. The budget is never exceeded (watched while they run),
the spending recorded is exactly what the upstream billed, and as many calls succeed as the
arithmetic of the reservation and the real cost allows: no more (overspending), no fewer (a
refusal that was not needed)."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.domain.budgets.costs import inference_worst_case
from service.domain.budgets.limits import NANOS
from service.domain.inference.request import model_texts
from service.domain.pricing import inference_cost, load_price_table, resolve_model
from tests.integration.conftest import ADMIN_TOKEN
from tests.integration.test_replicas import answers
from tests.support import free_port, stop_process, tunegate_process, wait_for

pytestmark = pytest.mark.integration
SANDBOX_KEY = "sk-budgets-" + secrets.token_hex(6)
RUN = "budgets-" + secrets.token_hex(3)
PRICES = load_price_table()
LIMIT_USD = 0.50
CLIENTS = 16
MODEL = "gpt-4o"
# Five tokens for each of 100 answers: the sandbox's echo is longer, so it is cut at exactly the
# cap and the real cost is the worst case but for the prompt's estimate (a call costs ~$0.005).
BODY = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 5,
    "n": 100,
}


@dataclass
class Fleet:
    urls: list[str]
    sandbox: httpx.Client

    def client(self, url: str, key: str) -> httpx.Client:
        return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)

    def upstream_calls(self) -> list[dict[str, Any]]:
        listed = self.sandbox.get("/requests", params={"path_prefix": "/v1/chat/completions"})
        listed.raise_for_status()
        return list(listed.json()["data"])


@pytest.fixture()
def fleet(redis_url: str, redis_namespace: str, tmp_path: Path) -> Iterator[Fleet]:
    sandbox_port = free_port()
    args = ["sandbox-upstream", "--port", str(sandbox_port), "--api-key", SANDBOX_KEY]
    processes = [tunegate_process(args, {}, tmp_path / "sandbox.log")]
    base = f"http://127.0.0.1:{sandbox_port}"
    env = {
        "REDIS_URL": redis_url,
        "TUNEGATE_REDIS_NAMESPACE": redis_namespace,
        "TUNEGATE_ADMIN_TOKEN": ADMIN_TOKEN,
        "OPENAI_API_KEY": SANDBOX_KEY,
        "OPENAI_BASE_URL": f"{base}/runs/{RUN}/v1",
        "TUNEGATE_DATA_DIR": str(tmp_path / "data"),
        "TUNEGATE_LOG_FORMAT": "json",
    }
    ports = [free_port(), free_port()]
    processes += [
        tunegate_process(
            ["serve"], {**env, "TUNEGATE_PORT": str(port)}, tmp_path / f"serve-{port}.log"
        )
        for port in ports
    ]
    sandbox = httpx.Client(
        base_url=f"{base}/runs/{RUN}/_sandbox",
        headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
        timeout=30,
    )
    try:
        wait_for(lambda: answers(f"{base}/v1/models"), timeout=60, what="the sandbox")
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for url in urls:
            wait_for(lambda u=url: answers(f"{u}/health"), timeout=60, what="a serve process")
        yield Fleet(urls, sandbox)
    finally:
        sandbox.close()
        for process in reversed(processes):
            stop_process(process)


def org_key(url: str, policy: dict[str, Any]) -> str:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        created = admin.post("/admin/orgs", json={"name": "budgets", "policy": policy})
        assert created.status_code == 201, created.text
        org = created.json()["id"]
        key = admin.post(f"/admin/orgs/{org}/keys", json={"name": "it", "role": "admin"})
    assert key.status_code == 201, key.text
    return str(key.json()["key"])


def billed_nanos(reply: dict[str, Any]) -> int:
    usage = reply["usage"]
    cost = inference_cost(reply["model"], usage["prompt_tokens"], usage["completion_tokens"])
    return round(cost * NANOS)


def org_scope(http: httpx.Client) -> dict[str, Any]:
    report = http.get("/v1/budget")
    assert report.status_code == 200, report.text
    return next(scope for scope in report.json()["scopes"] if scope["scope"] == "org")


def test_two_processes_hold_one_budget_exactly_under_sixteen_clients(fleet: Fleet) -> None:
    key = org_key(fleet.urls[0], {"budgets": {"monthly_usd": LIMIT_USD}})
    limit = round(LIMIT_USD * NANOS)
    reservation = inference_worst_case(
        resolve_model(MODEL), model_texts(BODY), BODY["max_tokens"], BODY["n"], PRICES
    )
    stop, seen = threading.Event(), []

    def watch() -> None:  # the budget as both processes see it, while the clients spend
        with fleet.client(fleet.urls[1], key) as http:
            while not stop.is_set():
                seen.append(org_scope(http))

    def until_refused(client: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        replies: list[dict[str, Any]] = []
        https = [fleet.client(url, key) for url in fleet.urls]
        try:
            while True:
                response = https[(client + len(replies)) % 2].post(
                    "/v1/chat/completions", json=BODY
                )
                if response.status_code != 200:
                    return replies, {"status": response.status_code, **response.json()}
                replies.append(response.json())
        finally:
            for http in https:
                http.close()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            outcomes = list(pool.map(until_refused, range(CLIENTS)))
    finally:
        stop.set()
        watcher.join(timeout=60)
    assert seen, "the watcher read the budget at least once"
    held = [round((s["spent_usd"] + s["reserved_usd"]) * NANOS) for s in seen]
    assert max(held) <= limit

    answered = [reply for replies, _ in outcomes for reply in replies]
    refusals = [refusal for _, refusal in outcomes]
    costs = {billed_nanos(reply) for reply in answered}
    assert len(costs) == 1, "the sandbox bills every such call the same"
    cost = costs.pop()
    assert 0 < cost <= reservation
    # The k-th call is admitted only while (k - 1) calls' spending or reservations plus this
    # one's reservation fit: at least limit // reservation calls fit whatever the timing, at
    # most 1 + (limit - reservation) // cost. The request is chosen so the two agree.
    fewest, most = limit // reservation, 1 + (limit - reservation) // cost
    assert fewest == most
    assert len(answered) == fewest
    assert len(refusals) == CLIENTS  # every client stopped at its first refusal
    for refusal in refusals:
        assert refusal["status"] == 429
        assert refusal["error"]["code"] == "insufficient_quota"
        assert refusal["error"]["type"] == "insufficient_quota"

    spent = len(answered) * cost
    assert spent <= limit
    assert len(fleet.upstream_calls()) == len(answered)  # no refused call reached the upstream
    with fleet.client(fleet.urls[0], key) as http:
        settled = wait_for(
            lambda: (scope := org_scope(http))["reserved_usd"] == 0 and scope,
            timeout=60,
            what="every reservation settled",
        )
    assert round(settled["spent_usd"] * NANOS) == spent
    assert settled["remaining_usd"] == pytest.approx((limit - spent) / NANOS, abs=1e-9)
