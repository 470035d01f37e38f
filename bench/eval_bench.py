"""Eval runs: how fast a run samples and grades its items through the proxy.

Starts the sandbox upstream, `tunegate serve` and `tunegate worker` as real processes against a
Redis (`--redis`, default 127.0.0.1:6379/14, under a namespace of its own), creates an eval
(string_check and rouge_l), then times `--runs` runs of `--items` items each, sampling
gpt-4o-mini, from create to `completed`. Prints items per second per run and overall; the run's
own bound is 4 items at once (8 per org).
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support import free_port, stop_process, tunegate_process, wait_for

ADMIN = "tga_eval-bench-admin-token-0123456789"
UPSTREAM_KEY = "sk-eval-bench-0123456789"
CHECKS: Any = [
    {
        "type": "string_check",
        "name": "exact",
        "input": "{{sample.output_text}}",
        "reference": "{{item.answer}}",
        "operation": "eq",
    },
    {
        "type": "text_similarity",
        "name": "close",
        "input": "{{sample.output_text}}",
        "reference": "{{item.answer}}",
        "evaluation_metric": "rouge_l",
        "pass_threshold": 0.5,
    },
]


def data_source(items: int) -> dict[str, Any]:
    rows = [{"item": {"question": f"question {i}?", "answer": f"answer {i}"}} for i in range(items)]
    return {
        "type": "completions",
        "model": "gpt-4o-mini",
        "source": {"type": "file_content", "content": rows},
        "input_messages": {
            "type": "template",
            "template": [{"role": "user", "content": "{{item.question}}"}],
        },
    }


def timed_run(client: httpx.Client, eval_id: str, items: int) -> float:
    started = time.perf_counter()
    run = client.post(f"/v1/evals/{eval_id}/runs", json={"data_source": data_source(items)})
    run.raise_for_status()
    url = f"/v1/evals/{eval_id}/runs/{run.json()['id']}"
    wait_for(
        lambda: client.get(url).json()["status"] == "completed",
        timeout=600,
        interval=0.05,
        what="run completed",
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    sandbox_port, port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        env = {
            "REDIS_URL": args.redis,
            "TUNEGATE_REDIS_NAMESPACE": f"evalbench{secrets.token_hex(3)}",
            "TUNEGATE_ADMIN_TOKEN": ADMIN,
            "OPENAI_API_KEY": UPSTREAM_KEY,
            "OPENAI_BASE_URL": f"http://127.0.0.1:{sandbox_port}/v1",
            "TUNEGATE_DATA_DIR": tmp,
            "TUNEGATE_PORT": str(port),
            "TUNEGATE_LOG_LEVEL": "warning",
        }
        upstream = ["sandbox-upstream", "--port", str(sandbox_port), "--api-key", UPSTREAM_KEY]
        processes = [
            tunegate_process(upstream, env, logs / "sandbox.log"),
            tunegate_process(["worker"], env, logs / "worker.log"),
            tunegate_process(["serve"], env, logs / "serve.log"),
        ]
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(lambda: _up(f"{url}/health"), timeout=60, what="serve")
            admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"})
            org = admin.post("/admin/orgs", json={"name": "bench", "policy": {"pii": "allow"}})
            made = admin.post(
                f"/admin/orgs/{org.json()['id']}/keys", json={"name": "b", "role": "member"}
            )
            headers = {"Authorization": f"Bearer {made.json()['key']}"}
            with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
                body = {"data_source_config": {"type": "custom", "item_schema": {}}}
                created = client.post("/v1/evals", json={**body, "testing_criteria": CHECKS})
                eval_id = created.json()["id"]
                timed_run(client, eval_id, 10)  # warm-up
                seconds = [timed_run(client, eval_id, args.items) for _ in range(args.runs)]
            rates = [args.items / s for s in seconds]
            print(f"items per run: {args.items}, runs: {args.runs}, one worker")
            for s, r in zip(seconds, rates, strict=True):
                print(f"  run: {s:.2f} s, {r:.1f} items/s")
            print(f"median: {statistics.median(rates):.1f} items/s")
        finally:
            for process in reversed(processes):
                stop_process(process)


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
