"""An unreliable upstream: one request in five, on every upstream path, meets a fault.

The sandbox run answers a seeded 4% each of requests with 429 (`Retry-After: 1`), 500, 503, a
30 s hang (past the gateways' upstream timeouts: 5 s for jobs, 10 s for completions), or a
dropped connection. Two in-process gateways
share one embedded Redis: the first runs the worker threads with the SDK's default 2 retries
for polls (creates and uploads are never retried blindly: the worker looks upstream before it
tries again, since a create that timed out may still have been made), the second proxies
completions with no retries,
so each completion meets exactly one upstream attempt and the answer it must get is known.

- 20 fine-tuning jobs (10 datasets; 50 and 25 with `TUNEGATE_LONG_TESTS=1`) all succeed, each
  with exactly one upstream job, and each dataset is stored upstream exactly once.
- 400 completions (1,000 with `TUNEGATE_LONG_TESTS=1`; a quarter streamed), each marked so its
  upstream attempt can be found in the request log: success when the upstream answered, else 429
  passed through with `Retry-After`, 502 for a 5xx or a dropped connection, 504 for a timeout.
- Usage per org equals what the upstream billed: the usage the sandbox computes for each
  request it answered, recomputed from the logged request bodies.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from service.domain.tokens import encoding_for_model
from service.logging import configure_logging
from service.sandbox import SandboxConfig, SandboxHandle, start_in_thread
from service.sandbox.inference import chat_completion
from service.sandbox.objects import resolve_base
from tests.api.conftest import UPSTREAM_KEY, Gateway, gateway_settings, running_gateway
from tests.api.datasets import chat_jsonl
from tests.support import sized, wait_for

MODEL = "gpt-4o-mini"
KINDS = ("429", "500", "503", "hang", "drop")
SHARE = 0.04  # of all upstream requests, per kind: 20% in all
JOBS, DATASETS, ORGS = sized(20, 50), sized(10, 25), 5
COMPLETIONS, THREADS = sized(400, 1_000), 8
CHAT = "/v1/chat/completions"
EXPECTED = {  # upstream fault -> (status, error code) the client must get
    None: (200, None),
    "429": (429, "rate_limit_exceeded"),
    "500": (502, "upstream_unavailable"),
    "503": (502, "upstream_unavailable"),
    "drop": (502, "upstream_unavailable"),
    "hang": (504, "upstream_timeout"),
}


@dataclass
class Faulty:
    jobs: Gateway
    proxy: Gateway
    sandbox: SandboxHandle
    run: str

    def inspect(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.sandbox.url}/runs/{self.run}/_sandbox",
            headers={"Authorization": f"Bearer {UPSTREAM_KEY}"},
            timeout=30,
        )

    def upstream_requests(self, path_prefix: str) -> list[dict[str, Any]]:
        with self.inspect() as inspect:
            response = inspect.get("/requests", params={"path_prefix": path_prefix})
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    def org_key(self, role: str = "admin") -> tuple[str, str]:
        org = self.jobs.create_org(f"faulty-{secrets.token_hex(3)}", {"pii": "allow"})
        return org, self.jobs.create_key(org, role)[1]


def add_faults(faulty: Faulty) -> None:
    """Faults are tried in order, so each kind's chance is conditioned on the earlier ones
    missing: each kind then meets `SHARE` of all requests."""
    with faulty.inspect() as inspect:
        for index, kind in enumerate(KINDS):
            spec = {
                "kind": kind,
                "probability": SHARE / (1 - SHARE * index),
                "count": None,
                "seed": 1000 + index,
                "seconds": 30,
            }
            inspect.post("/faults", json=spec).raise_for_status()


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faulty]:
    configure_logging("json", "warning")
    encoding_for_model(MODEL)  # loaded before the short upstream timeout applies
    sandbox = start_in_thread(
        SandboxConfig(
            api_key=UPSTREAM_KEY,
            org_name="faulty",
            validating_seconds=0.05,
            queued_seconds=0.05,
            step_seconds=0.01,
            total_steps=10,
        )
    )
    run = f"faulty-{secrets.token_hex(3)}"
    url = sandbox.base_url_for(run)
    folder = tmp_path_factory.mktemp("faulty")
    common: dict[str, Any] = {"upstream_timeout_seconds": 5.0, "sweep_seconds": 2.0}
    try:
        with running_gateway(
            gateway_settings(folder / "jobs", url, upstream_max_retries=2, **common), sandbox
        ) as jobs:
            redis_url = jobs.settings.redis_url
            proxy_settings = gateway_settings(  # 10 s: a slow answer on a loaded machine is no hang
                folder / "proxy",
                url,
                redis_url=redis_url,
                upstream_max_retries=0,
                **{**common, "upstream_timeout_seconds": 10.0},
            )
            with running_gateway(proxy_settings, sandbox) as proxy:
                faulty = Faulty(jobs, proxy, sandbox, run)
                add_faults(faulty)
                yield faulty
    finally:
        sandbox.stop()


def test_every_job_ends_right_under_upstream_faults(faulty: Faulty) -> None:
    keys = [faulty.org_key()[1] for _ in range(ORGS)]
    files: list[tuple[str, str]] = []
    for index in range(DATASETS):
        key = keys[index % ORGS]
        with faulty.jobs.client(key) as client:
            upload = {"file": ("train.jsonl", chat_jsonl(12, salt=f"dataset-{index}"))}
            answer = client.post("/v1/files", files=upload, data={"purpose": "fine-tune"})
        assert answer.status_code == 200, answer.text
        files.append((key, answer.json()["id"]))
    jobs: dict[str, str] = {}
    for index in range(JOBS):
        key, file_id = files[index % DATASETS]
        with faulty.jobs.client(key) as client:
            body = {"model": MODEL, "training_file": file_id}
            answer = client.post("/v1/fine_tuning/jobs", json=body)
        assert answer.status_code == 200, answer.text
        jobs[answer.json()["id"]] = key

    def ended() -> dict[str, dict[str, Any]] | None:
        seen = {}
        for job_id, key in jobs.items():
            with faulty.jobs.client(key) as client:
                seen[job_id] = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
        terminal = ("succeeded", "failed", "cancelled")
        return seen if all(job["status"] in terminal for job in seen.values()) else None

    final = wait_for(ended, timeout=240, interval=2, what="every job to end")
    errors = {job["id"]: job["error"] for job in final.values() if job["status"] != "succeeded"}
    assert Counter(job["status"] for job in final.values()) == {"succeeded": JOBS}, errors
    assert all(job["fine_tuned_model"] for job in final.values())

    created = [
        entry["body"]["metadata"]["tunegate_job_id"]
        for entry in faulty.upstream_requests("/v1/fine_tuning/jobs")
        if entry["method"] == "POST" and entry["status"] == 200 and entry["path"].count("/") == 3
    ]
    assert sorted(created) == sorted(jobs), "one upstream job per tunegate job"
    stored = [
        entry["multipart"]["files"][0]["filename"]
        for entry in faulty.upstream_requests("/v1/files")
        if entry["method"] == "POST" and entry["status"] == 200
    ]
    assert sorted(stored) == sorted(f"{file_id}.jsonl" for _, file_id in files)
    faults = Counter(entry["fault"] for entry in faulty.upstream_requests("/v1/"))
    print(f"\njobs under faults: {JOBS} jobs, {DATASETS} datasets, upstream requests {faults}")
    assert all(faults[kind] for kind in KINDS)


def complete(faulty: Faulty, key: str, index: int) -> tuple[int, httpx.Response, str]:
    marker = f"completion-{index}-{secrets.token_hex(4)}"
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": marker}]}
    if index % 4 == 0:
        body["stream"] = True
    with faulty.proxy.client(key) as client:
        client.timeout = httpx.Timeout(30)
        return index, client.post(CHAT, json=body), marker


def billed(entries: list[dict[str, Any]]) -> tuple[int, int]:
    """What the upstream charged for the requests it answered: its usage, recomputed."""
    prompt = completion = 0
    for entry in entries:
        model = resolve_base(entry["body"]["model"]) or entry["body"]["model"]
        usage = chat_completion(entry["body"], model)["usage"]
        prompt += usage["prompt_tokens"]
        completion += usage["completion_tokens"]
    return prompt, completion


def test_every_completion_succeeds_or_fails_as_its_upstream_did(faulty: Faulty) -> None:
    orgs = [faulty.org_key() for _ in range(4)]
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(lambda i: complete(faulty, orgs[i % 4][1], i), range(COMPLETIONS)))
    log = faulty.upstream_requests(CHAT)
    attempts: dict[str, list[dict[str, Any]]] = {}
    for entry in log:
        content = entry["body"]["messages"][0]["content"]
        attempts.setdefault(content, []).append(entry)
    outcomes: Counter[str] = Counter()
    answered: dict[str, list[dict[str, Any]]] = {}
    for index, response, marker in results:
        [attempt] = attempts[marker]  # exactly one upstream attempt each
        status, code = EXPECTED[attempt["fault"]]
        assert response.status_code == status, (attempt["fault"], response.text)
        outcomes[str(attempt["fault"] or "ok")] += 1
        if status == 200:
            assert attempt["status"] == 200
            if index % 4 == 0:
                assert response.text.rstrip().endswith("data: [DONE]")
            answered.setdefault(orgs[index % 4][0], []).append(attempt)
            continue
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["code"] == code
        if status == 429:
            assert response.headers["retry-after"] == "1"
        assert UPSTREAM_KEY not in response.text
    assert all(outcomes[kind] for kind in KINDS)

    for org, key in orgs:
        prompt, completion = billed(answered.get(org, []))
        with faulty.proxy.client(key) as client:

            def usage(c: httpx.Client = client, n: int = len(answered.get(org, []))) -> Any:
                row: dict[str, Any] = c.get("/v1/usage").json()["data"][0]
                return row if row["requests"] == n else None

            row = wait_for(usage, timeout=30, what=f"usage of {org}")
        assert (row["prompt_tokens"], row["completion_tokens"]) == (prompt, completion)
    print(f"\ncompletions under faults: {COMPLETIONS}, outcomes {dict(outcomes)}")
