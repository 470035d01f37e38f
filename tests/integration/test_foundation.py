"""The foundation against a real Redis with real `serve` and `worker` processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from service.queue import TaskQueue, queue_name
from tests.integration.conftest import ADMIN_TOKEN, UPSTREAM_KEY, Deployment, descendants
from tests.support import ROOT, assert_runs_queued_and_delayed_tasks, wait_for

pytestmark = pytest.mark.integration


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = f"/proc/{pid}/stat"
    with contextlib.suppress(OSError):
        return Path(stat).read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def _ready(deployment: Deployment) -> dict[str, object] | None:
    response = httpx.get(f"{deployment.url}/ready", timeout=5)
    return response.json() if response.status_code == 200 else None  # type: ignore[no-any-return]


def test_ready_sees_redis_and_a_worker_process(deployment: Deployment) -> None:
    body = wait_for(lambda: _ready(deployment), timeout=30, what="/ready")
    assert body["redis"] is True
    assert body["workers"] >= 1


def test_worker_process_runs_queued_and_delayed_tasks(deployment: Deployment) -> None:
    assert_runs_queued_and_delayed_tasks(TaskQueue(deployment.redis_url, deployment.namespace))


def test_sigterm_stops_a_worker_and_everything_it_started(deployment: Deployment) -> None:
    """An idle worker asked to stop (SIGTERM, as `docker stop` does) stops, its housekeeping
    process (heartbeat, sweeps, scheduler) with it, and the scheduler lock is given back."""
    [worker] = deployment.workers
    lock = f"rq:scheduler-lock:{queue_name(deployment.namespace)}"
    client = redis.Redis.from_url(deployment.redis_url)
    try:
        wait_for(lambda: client.exists(lock), timeout=30, what="the scheduler lock")
        forked = descendants(worker.pid)
        assert forked, "the housekeeping process"
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        wait_for(lambda: not any(alive(pid) for pid in forked), timeout=15, what="forks to end")
        assert not client.exists(lock)
    finally:
        client.close()


def test_namespaces_keep_deployments_on_one_redis_apart(deployment: Deployment) -> None:
    mine = TaskQueue(deployment.redis_url, deployment.namespace)
    other = TaskQueue(deployment.redis_url, f"{deployment.namespace}-other")
    try:
        theirs = other.enqueue("ping", "theirs", job_id="same-name")
        ours = mine.enqueue("ping", "ours", job_id="same-name")
        assert ours != theirs

        def status(queue: TaskQueue, job_id: str) -> JobStatus:
            job = Job.fetch(job_id, connection=queue.connection, serializer=JSONSerializer)
            return job.get_status()

        wait_for(lambda: status(mine, ours) == JobStatus.FINISHED, timeout=30, what="our task")
        # no worker of this deployment took the other deployment's job
        assert status(other, theirs) == JobStatus.QUEUED
    finally:
        other.queue.empty()
        mine.close()
        other.close()
    with deployment.admin() as admin:
        admin.post("/admin/orgs", json={"name": "ns-check"}).raise_for_status()
    client = redis.Redis.from_url(deployment.redis_url)
    try:
        assert client.exists(f"tg:{deployment.namespace}:orgs")
        assert not client.exists(f"tg:{deployment.namespace}-other:orgs")
    finally:
        client.close()


def test_org_key_audit_and_revocation_across_processes(deployment: Deployment) -> None:
    with deployment.admin() as admin:
        org = admin.post("/admin/orgs", json={"name": "acme"}).json()["id"]
        created = admin.post(f"/admin/orgs/{org}/keys", json={"name": "ops", "role": "admin"})
        key_id, key = created.json()["id"], created.json()["key"]
        with deployment.client(key) as client:
            events = client.get("/v1/audit").json()["data"]
            assert [e["action"] for e in events] == ["keys.create", "orgs.create"]
            assert admin.delete(f"/admin/orgs/{org}/keys/{key_id}").status_code == 200
            assert client.get("/v1/audit").status_code == 401
    logs = deployment.log_text()
    for secret in (key, ADMIN_TOKEN, UPSTREAM_KEY):
        assert secret not in logs


def test_admin_cli_against_real_redis(deployment: Deployment) -> None:
    env = {"PATH": "/usr/bin:/bin", **deployment.env}

    def cli(*args: str) -> dict[str, str]:
        result = subprocess.run(
            [sys.executable, "-m", "service.cli", "admin", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    org = cli("create-org", "from-cli")
    key = cli("create-key", org["id"], "--role", "inference")
    assert key["role"] == "inference"
    with deployment.client(key["key"]) as client:
        assert client.get("/v1/audit").status_code == 403
    with deployment.admin() as admin:
        names = [o["name"] for o in admin.get("/admin/orgs").json()["data"]]
    assert "from-cli" in names
