"""The `evals` finishing step against a real (embedded) Redis: run again after its worker died,
it makes no second run and queues again a run that never left the queue; jobs on one base model
finishing at once share one base run; a failed base run is replaced by the next job; a refusal
(the job's key revoked) is kept on the job instead of a run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from service.domain.jobs.states import JobState
from service.domain.tenancy.access import Principal
from service.embedded import EmbeddedRedis
from service.operations.context import Context
from service.operations.evals import loop
from service.operations.evals.evals import create_eval
from service.operations.evals.runs import create_run
from service.operations.inference.models import register_tuned_model
from service.operations.tenancy.orgs import create_key, create_org, revoke_key
from service.store import Store
from service.store.jobs import JobRecord
from tests.api.conftest import gateway_settings
from tests.api.test_eval_runs import CRITERIA, completions
from tests.evals_data import SOURCE, held_out_items

BASE = "gpt-4o-mini-2024-07-18"


@dataclass
class RecordingQueue:
    tasks: list[str] = field(default_factory=list)

    async def submit(self, task: str, *args: Any, **options: Any) -> str:
        self.tasks.append(str(options.get("job_id")))
        return str(options.get("job_id"))


@dataclass
class World:
    ctx: Context
    queue: RecordingQueue
    principal: Principal
    eval_id: str
    template: dict[str, Any]


@pytest.fixture()
def redis_url() -> Iterator[str]:
    server = EmbeddedRedis().start()
    yield server.url
    server.stop()


async def world(url: str, data: Path) -> World:
    queue = RecordingQueue()
    ctx = Context(gateway_settings(data, "http://127.0.0.1:9"), Store(url), queue)
    org = await create_org(ctx.store, "acme", None)
    key, _ = await create_key(ctx.store, org.id, "ci", "member")
    principal = Principal(org_id=org.id, key_id=key.id, role="member")
    made = await create_eval(
        ctx, principal, {"data_source_config": SOURCE, "testing_criteria": CRITERIA}
    )
    body = {"data_source": completions("gpt-4.1-nano", held_out_items())}
    await create_run(ctx, principal, made.id, body)
    template = await loop.template_for(ctx, principal, made.id)
    return World(ctx, queue, principal, made.id, template)


async def succeeded(w: World, name: str) -> JobRecord:
    model = f"ft:{BASE}:acme::{name}"
    await register_tuned_model(w.ctx.store, w.principal.org_id or "", model, BASE, name)
    record = JobRecord(
        id=f"ftjob-{name}",
        org_id=w.principal.org_id or "",
        key_id=w.principal.key_id,
        created_at=int(time.time()),
        seq=time.time(),
        request={"model": "gpt-4o-mini", "training_file": "file-t", "eval_id": w.eval_id},
        base_model=BASE,
        seed=1,
        state=JobState.SUCCEEDED,
        fine_tuned_model=model,
        eval_template=w.template,
    )
    await w.ctx.store.jobs.create(record, None)
    return record


async def runs_of(w: World) -> list[Any]:
    runs, _ = await w.ctx.store.eval_runs.page(w.eval_id, None, 100, newest_first=False)
    return runs


async def stored(w: World, job_id: str) -> JobRecord:
    record = await w.ctx.store.jobs.get(job_id)
    assert record is not None
    return record


def test_the_step_run_again_makes_no_second_run_and_requeues_what_never_left(
    redis_url: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        w = await world(redis_url, tmp_path)
        job = await succeeded(w, "a1")
        await loop.evaluate_job(w.ctx, job)
        after = await stored(w, job.id)
        assert set(after.eval_runs) == {"model", "base"} and after.eval_error is None
        assert len(await runs_of(w)) == 3  # the template run, the tuned model's, the base's
        w.queue.tasks.clear()
        # the worker died before its record kept the runs: the step runs on the old record
        await loop.evaluate_job(w.ctx, job)
        assert (await stored(w, job.id)).eval_runs == after.eval_runs
        assert len(await runs_of(w)) == 3
        # nothing took the runs from the queue meanwhile: they are queued again, by their ids
        assert sorted(w.queue.tasks) == sorted(f"tg-evalrun-{r}" for r in after.eval_runs.values())
        models = {run.id: run.model for run in await runs_of(w)}
        assert models[after.eval_runs["model"]] == job.fine_tuned_model
        assert models[after.eval_runs["base"]] == BASE
        await w.ctx.store.aclose()

    asyncio.run(scenario())


def test_jobs_on_one_base_share_its_run_until_it_fails(redis_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        w = await world(redis_url, tmp_path)
        jobs = [await succeeded(w, name) for name in ("b1", "b2", "b3")]
        await asyncio.gather(*(loop.evaluate_job(w.ctx, job) for job in jobs))
        done = [await stored(w, job.id) for job in jobs]
        assert len({record.eval_runs["base"] for record in done}) == 1
        assert len({record.eval_runs["model"] for record in done}) == 3
        assert len(await runs_of(w)) == 1 + 3 + 1
        base = done[0].eval_runs["base"]
        assert await w.ctx.store.eval_runs.set_status(base, "failed", ())
        later = await succeeded(w, "b4")
        await loop.evaluate_job(w.ctx, later)
        replaced = (await stored(w, later.id)).eval_runs["base"]
        assert replaced != base
        assert [run.model for run in await runs_of(w)].count(BASE) == 2
        await w.ctx.store.aclose()

    asyncio.run(scenario())


def test_a_refusal_is_kept_on_the_job_instead_of_a_run(redis_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        w = await world(redis_url, tmp_path)
        job = await succeeded(w, "c1")
        await revoke_key(w.ctx.store, w.principal.org_id or "", w.principal.key_id or "")
        await loop.evaluate_job(w.ctx, job)
        after = await stored(w, job.id)
        assert after.eval_runs == {}
        assert after.eval_error is not None and "key" in after.eval_error["message"]
        assert len(await runs_of(w)) == 1
        await w.ctx.store.aclose()

    asyncio.run(scenario())
