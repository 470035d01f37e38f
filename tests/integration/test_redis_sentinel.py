"""Redis Sentinel: `REDIS_URL=redis+sentinel://...` against real `redis-server` processes (one
master, one replica, three sentinels on loopback ports of their own). The master is SIGKILLed
mid-load: clients follow the promoted replica, jobs finish, and nothing acknowledged before the
last replication checkpoint (`WAIT`) is lost."""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from service.queue import TaskQueue, redis_problem
from service.store import Store
from tests.api.datasets import chat_jsonl
from tests.integration.conftest import Deployment
from tests.redis_ha import RedisHA, redis_ha
from tests.support import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture()
def ha(tmp_path: Path) -> Iterator[RedisHA]:
    folder = tmp_path / "redis"
    folder.mkdir()
    with redis_ha(folder) as cluster:
        yield cluster


# the integration `deployment` fixture, on the sentinels instead of the shared test Redis
@pytest.fixture()
def redis_url(ha: RedisHA) -> str:
    return ha.url


@pytest.fixture()
def redis_namespace() -> str:
    return f"t{secrets.token_hex(4)}"  # the cluster is thrown away with the test


def promoted(ha: RedisHA, old_master: int) -> int:
    port = wait_for(
        lambda: (master := ha.current_master()) not in (None, old_master) and master,
        timeout=60,
        what="the sentinels to promote the replica",
    )
    assert port == ha.replica_port
    return int(port)


def test_the_store_and_the_queue_follow_the_promoted_replica(ha: RedisHA) -> None:
    assert redis_problem(ha.url) is None
    queue = TaskQueue(ha.url, "ha")

    async def scenario() -> tuple[list[str], list[str]]:
        store = Store(ha.url)
        try:
            kept = []
            for index in range(50):
                await store.redis.set(f"ha:before:{index}", index)
                kept.append(f"ha:before:{index}")
            assert ha.replicated()  # the checkpoint: all of these reached the replica
            old = ha.kill_master()
            await asyncio.to_thread(promoted, ha, old)
            written = []
            for index in range(20):  # each write retried until the new master takes it
                for _ in range(600):
                    try:
                        await store.redis.set(f"ha:after:{index}", index)
                        break
                    except Exception:
                        await asyncio.sleep(0.1)
                written.append(f"ha:after:{index}")
            values = await store.redis.mget([*kept, *written])
            return [k for k, v in zip([*kept, *written], values, strict=True) if v is None], kept
        finally:
            await store.aclose()

    try:
        lost, kept = asyncio.run(scenario())
        assert lost == [] and len(kept) == 50
        job_id = wait_for(
            lambda: _try_enqueue(queue), timeout=60, what="the queue on the new master"
        )
        assert queue.connection.exists(f"rq:job:{job_id}")
        with ha.client(ha.replica_port) as new_master:
            assert new_master.info("replication")["role"] == "master"
    finally:
        queue.close()


def _try_enqueue(queue: TaskQueue) -> str | None:
    try:
        return queue.enqueue("ping", "ha", job_id=f"ha-{secrets.token_hex(3)}")
    except Exception:
        return None


def test_jobs_finish_when_the_master_dies_mid_load(deployment: Deployment, ha: RedisHA) -> None:
    key = deployment.org_with_key()
    sdk = OpenAI(base_url=f"{deployment.url}/v1", api_key=key, max_retries=0)
    files = []
    for index in range(3):
        data = chat_jsonl(12, salt=f"{secrets.token_hex(3)}-{index}")
        files.append(sdk.files.create(file=(f"t{index}.jsonl", data), purpose="fine-tune").id)
    jobs = [sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=f).id for f in files]
    assert ha.replicated()  # everything acknowledged so far is on the replica
    stop = threading.Event()
    created_after: list[str] = []

    def more_load() -> None:  # requests keep coming while the master dies
        while not stop.is_set():
            try:
                with OpenAI(base_url=f"{deployment.url}/v1", api_key=key, max_retries=0) as c:
                    c.files.list()
            except Exception:
                pass

    load = threading.Thread(target=more_load, daemon=True)
    load.start()
    try:
        old = ha.kill_master()
        promoted(ha, old)

        def one_more_job() -> str | None:
            try:
                data = chat_jsonl(12, salt=secrets.token_hex(4))
                file_id = sdk.files.create(file=("after.jsonl", data), purpose="fine-tune").id
                return sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id).id
            except Exception:
                return None

        created_after.append(wait_for(one_more_job, timeout=120, what="a job after failover"))
    finally:
        stop.set()
        load.join(timeout=30)

    def status(job_id: str) -> str | None:
        try:
            return sdk.fine_tuning.jobs.retrieve(job_id).status
        except Exception:
            return None

    for job_id in [*jobs, *created_after]:
        wait_for(
            lambda j=job_id: status(j) in ("succeeded", "failed", "cancelled"),
            timeout=240,
            what=f"{job_id} to finish",
        )
        assert status(job_id) == "succeeded"
    listed = {f.id for f in sdk.files.list().data}
    assert set(files) <= listed  # acknowledged before the checkpoint: not lost
