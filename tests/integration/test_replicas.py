"""Replicas that share nothing but Redis and a bucket: two `tunegate serve` processes in working
directories of their own, two `tunegate worker` processes, moto's S3 server and the sandbox
upstream, each a process of its own. Files are uploaded through one replica and jobs created
through the other; a worker is SIGKILLed while it hands a file to the upstream. Every job
succeeds, every dataset reaches the upstream once, and DELETE leaves no object behind."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path
from subprocess import Popen

import httpx
import orjson
import pytest
from openai import OpenAI

from tests.api.datasets import chat_jsonl
from tests.integration.conftest import ADMIN_TOKEN, descendants, stop_tree
from tests.s3_server import S3Server, s3_server
from tests.support import free_port, stop_process, tunegate_process, wait_for

pytestmark = pytest.mark.integration
SANDBOX_KEY = "sk-replicas-" + secrets.token_hex(6)
RUN = "replicas"
FILES = 4


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


@pytest.fixture()
def s3(tmp_path: Path) -> Iterator[S3Server]:
    with s3_server(tmp_path / "moto.log") as server:
        yield server


@pytest.fixture()
def sandbox_port(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    args = ["sandbox-upstream", "--port", str(port), "--api-key", SANDBOX_KEY]
    process = tunegate_process(args, {}, tmp_path / "sandbox.log")
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/v1/models"), timeout=60, what="sandbox")
        yield port
    finally:
        stop_process(process)


def kill_tree(process: Popen[bytes]) -> None:
    for pid in [*descendants(process.pid), process.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)


def test_replicas_share_nothing_but_redis_and_the_bucket(
    redis_url: str, redis_namespace: str, s3: S3Server, sandbox_port: int, tmp_path: Path
) -> None:
    sandbox = f"http://127.0.0.1:{sandbox_port}/runs/{RUN}"
    inspect = httpx.Client(
        base_url=f"{sandbox}/_sandbox", headers={"Authorization": f"Bearer {SANDBOX_KEY}"}
    )
    env = {
        "REDIS_URL": redis_url,
        "TUNEGATE_REDIS_NAMESPACE": redis_namespace,
        "TUNEGATE_ADMIN_TOKEN": ADMIN_TOKEN,
        "OPENAI_API_KEY": SANDBOX_KEY,
        "OPENAI_BASE_URL": f"{sandbox}/v1",
        "TUNEGATE_STORAGE_URL": f"s3://{s3.bucket}/tunegate",
        "TUNEGATE_LOG_FORMAT": "json",
        "TUNEGATE_SWEEP_SECONDS": "2",
        **s3.env,
    }
    homes = [tmp_path / name for name in ("a", "b", "w1", "w2", "w3")]
    for home in homes:
        home.mkdir()
    ports = [free_port(), free_port()]
    services = [
        tunegate_process(
            ["serve"], {**env, "TUNEGATE_PORT": str(port)}, tmp_path / f"serve-{i}.log", home
        )
        for i, (port, home) in enumerate(zip(ports, homes[:2], strict=True))
    ]
    workers: list[Popen[bytes]] = []
    try:
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for url in urls:
            wait_for(lambda u=url: answers(f"{u}/health"), timeout=60, what="a replica")
        admin = httpx.Client(base_url=urls[0], headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        with admin:
            org = admin.post("/admin/orgs", json={"name": "replicas"}).json()["id"]
            key = admin.post(f"/admin/orgs/{org}/keys", json={"name": "it", "role": "admin"})
            key = key.json()["key"]
        one = OpenAI(base_url=f"{urls[0]}/v1", api_key=key, max_retries=0)
        other = OpenAI(base_url=f"{urls[1]}/v1", api_key=key, max_retries=0)

        # the first hand-off to the upstream hangs: its worker is killed while it waits
        hang = {"kind": "hang", "method": "POST", "path_prefix": "/v1/files"}
        assert inspect.post("/faults", json=hang).status_code == 201
        doomed = tunegate_process(["worker"], env, tmp_path / "worker-doomed.log", homes[2])
        workers.append(doomed)
        datasets = [chat_jsonl(12, salt=f"{secrets.token_hex(3)}-{i}") for i in range(FILES)]
        files = [
            one.files.create(file=(f"t{i}.jsonl", data), purpose="fine-tune").id
            for i, data in enumerate(datasets)
        ]
        wait_for(
            lambda: all(f["fired"] for f in inspect.get("/faults").json()["data"]),
            timeout=60,
            what="a worker to be mid-upload",
        )
        kill_tree(doomed)
        for home in homes[3:]:
            workers.append(tunegate_process(["worker"], env, tmp_path / f"{home.name}.log", home))

        jobs = [
            other.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id).id
            for file_id in files
        ]

        def status(job_id: str) -> str:
            return other.fine_tuning.jobs.retrieve(job_id).status

        for job_id in jobs:
            wait_for(
                lambda j=job_id: status(j) in ("succeeded", "failed", "cancelled"),
                timeout=300,
                what=f"{job_id} to end",
            )
            assert status(job_id) == "succeeded"
        posts = [
            r
            for r in inspect.get("/requests", params={"path_prefix": "/v1/files"}).json()["data"]
            if r["method"] == "POST" and r.get("status") == 200
        ]
        for data in datasets:
            sha = hashlib.sha256(data).hexdigest()
            assert sum(sha in orjson.dumps(r).decode() for r in posts) == 1

        assert len(s3.object_keys(f"tunegate/{org}/")) == FILES
        for file_id in files:
            other.files.delete(file_id)
        assert s3.object_keys("tunegate/") == []
        assert s3.open_multipart_uploads() == []
        for home in homes:  # no dataset byte on any process's disk
            assert not any(home.rglob("*.jsonl")), home
    finally:
        inspect.close()
        for service in services:
            stop_process(service)
        for worker in workers:
            if worker.poll() is None:
                stop_tree(worker)
