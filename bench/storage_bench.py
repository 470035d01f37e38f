"""Upload throughput and the service's peak RSS for one large dataset, stored on local disk
(`file://`) and in an S3-compatible bucket (moto's server, a process of its own, on loopback).

Each mode gets a fresh `tunegate serve` process (one process, no worker: the figure is the
upload path alone) on the Redis at `REDIS_URL` (default the test Redis) under a namespace of
its own; the dataset (valid chat JSONL, generated once to a temp file) is streamed to
`POST /v1/files` from disk, and the service's peak RSS is read from `/proc/<pid>/status`
(`VmHWM`) after the upload. Nothing is asserted: the figures are printed (and optionally
written as JSON).

    python bench/storage_bench.py                # 500 MB
    python bench/storage_bench.py --size-mb 50   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.s3_server import s3_server
from tests.support import free_port, stop_process, tunegate_process, wait_for

ADMIN = "tga_storage-bench-admin-token-0123456789"


def write_dataset(path: Path, size: int) -> int:
    written, index = 0, 0
    with path.open("wb") as out:
        while written < size:
            row = {
                "messages": [
                    {"role": "system", "content": "You answer briefly."},
                    {"role": "user", "content": f"What is {index} plus {index}? " + "pad " * 30},
                    {"role": "assistant", "content": f"It is {index * 2}."},
                ]
            }
            line = orjson.dumps(row) + b"\n"
            out.write(line)
            written, index = written + len(line), index + 1
    return written


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


def measure(mode: str, env: dict[str, str], dataset: Path, folder: Path) -> dict[str, Any]:
    port = free_port()
    env = {**env, "TUNEGATE_PORT": str(port), "TUNEGATE_REDIS_NAMESPACE": secrets.token_hex(4)}
    service = tunegate_process(["serve"], env, folder / f"serve-{mode}.log", folder)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(f"{url}/health"), timeout=60, what="the service")
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"})
        org = admin.post("/admin/orgs", json={"name": "bench", "policy": {"pii": "allow"}})
        key = admin.post(
            f"/admin/orgs/{org.json()['id']}/keys", json={"name": "b", "role": "member"}
        ).json()
        client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key['key']}"}, timeout=3600
        )
        idle = peak_rss_mb(service.pid)
        started = time.perf_counter()
        with dataset.open("rb") as handle:
            response = client.post(
                "/v1/files",
                files={"file": ("big.jsonl", handle)},
                data={"purpose": "fine-tune"},
            )
        seconds = time.perf_counter() - started
        response.raise_for_status()
        peak = peak_rss_mb(service.pid)
        client.delete(f"/v1/files/{response.json()['id']}").raise_for_status()
        size = dataset.stat().st_size
        return {
            "mode": mode,
            "bytes": size,
            "seconds": round(seconds, 2),
            "mb_per_s": round(size / 1e6 / seconds, 2),
            "rss_before_mb": round(idle, 1),
            "peak_rss_mb": round(peak, 1),
        }
    finally:
        stop_process(service)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        dataset = folder / "big.jsonl"
        write_dataset(dataset, args.size_mb * 1_000_000)
        base = {
            "REDIS_URL": redis_url,
            "TUNEGATE_ADMIN_TOKEN": ADMIN,
            "OPENAI_API_KEY": "sk-bench-not-used",
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",  # no worker runs: nothing goes upstream
            "TUNEGATE_LOG_FORMAT": "json",
            "TUNEGATE_MAX_UPLOAD_BYTES": str(2 * args.size_mb * 1_000_000),
        }
        results = [
            measure(
                "file",
                {**base, "TUNEGATE_STORAGE_URL": (folder / "data").as_uri()},
                dataset,
                folder,
            )
        ]
        with s3_server(folder / "moto.log") as s3:
            s3_env = {**base, **s3.env, "TUNEGATE_STORAGE_URL": f"s3://{s3.bucket}/bench"}
            results.append(measure("s3", s3_env, dataset, folder))
    for row in results:
        print(json.dumps(row))
    ratio = results[1]["mb_per_s"] / results[0]["mb_per_s"]
    print(f"s3 / file throughput: {ratio:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "s3_over_file": ratio}, indent=2))


if __name__ == "__main__":
    main()
