"""Fine-tuning jobs from the caller's side: create (checked, idempotent) and control.

`create_job` checks everything before anything is queued — the body (`jobs.request`), the model,
method and files against the org's policy (`jobs.checks`), the files' ownership and a tuned
base model's, and an `eval_id`'s eval (whose sampling template the job keeps, `evals.loop`) —
then stores the job waiting for its files and makes it due, so a worker takes it from there
(`jobs.runner`). With an `Idempotency-Key`, the same key and the same body (compared by
`fingerprint`, so key order and spelled-out defaults do not matter) give back the same job; the
same key with another body is a 409. Keys are per org and kept a day.

`control_job` follows the one transition table: a job still at the gateway is cancelled there
(the upstream never hears of it); otherwise the upstream call is made first and the new state
recorded only once it succeeded. A terminal state is finished by the workers (callbacks, audit).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from service.domain.inference.request import route_model
from service.domain.jobs.checks import CheckedJob, FileFacts, check_job_request
from service.domain.jobs.policy import apply_job_policy
from service.domain.jobs.request import MAX_SEED, JobRequest, fingerprint, parse_job_request
from service.domain.jobs.states import JobEvent, is_terminal, transition, upstream_call
from service.domain.pricing import is_tuned
from service.domain.tenancy.access import Principal
from service.errors import Conflict, InvalidRequest
from service.ids import new_id
from service.operations.budgets import training as budget_training
from service.operations.context import Context
from service.operations.evals import loop as evals_loop
from service.operations.jobs import records as job_records
from service.operations.jobs import schedule as job_schedule
from service.operations.jobs.submit import TUNEGATE_ID_KEY
from service.operations.jobs.views import get_job
from service.operations.tenancy.orgs import get_org
from service.operations.upstream_rate import Priority, within_budget
from service.store.jobs import JobRecord

MAX_IDEMPOTENCY_KEY = 255
GATEWAY_CANCEL = "Fine-tuning job cancelled before it was handed to the upstream"


@dataclass(frozen=True, slots=True)
class Created:
    record: JobRecord
    replayed: bool  # an earlier request with the same Idempotency-Key made it


async def create_job(
    ctx: Context,
    principal: Principal,
    body: bytes,
    idempotency_key: str | None,
    *,
    held: dict[str, Any] | None = None,
) -> Created:
    """`held`: a reservation the job takes over (a sweep trial's share) instead of its own."""
    request = parse_job_request(body)
    check_metadata(request)
    claim = None
    if idempotency_key is not None:
        claim = (check_idempotency_key(idempotency_key), fingerprint(request))
        replayed = await _replay(ctx, principal, claim)
        if replayed is not None:
            return Created(replayed, True)
    checked = await check_request(ctx, principal, request)
    record = new_record(principal, checked)
    if request.eval_id is not None:
        record.eval_template = await evals_loop.template_for(ctx, principal, request.eval_id)
    record.budget = held or await budget_training.reserve_job(
        ctx, principal, checked.request, checked.base_model
    )
    creating = ctx.store.jobs.create(record, claim)
    if not await budget_training.created(ctx, record, creating, owned=held is None):
        assert claim is not None  # only a claimed key can lose a race
        replayed = await _replay(ctx, principal, claim)
        if replayed is None:
            raise Conflict("A request with this Idempotency-Key is in progress; retry it.")
        return Created(replayed, True)
    await job_schedule.queue_due(ctx, record.due_at)
    return Created(record, False)


def audit_details(created: Created) -> dict[str, object]:
    request = created.record.request
    details = {
        "model": request["model"],
        "method": (request.get("method") or {}).get("type"),
        "training_file": request["training_file"],
        "validation_file": request.get("validation_file"),
        "validation_split": request.get("validation_split"),
        "eval_id": request.get("eval_id"),
        "idempotent_replay": created.replayed or None,
    }
    return {name: value for name, value in details.items() if value is not None}


def check_metadata(request: JobRequest) -> None:
    if request.metadata and TUNEGATE_ID_KEY in request.metadata:
        raise InvalidRequest(
            f"The metadata key {TUNEGATE_ID_KEY!r} is reserved by this gateway.", param="metadata"
        )


def check_idempotency_key(key: str) -> str:
    if not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidRequest(
            f"An Idempotency-Key is 1 to {MAX_IDEMPOTENCY_KEY} characters.",
            param="Idempotency-Key",
        )
    return key


async def _replay(ctx: Context, principal: Principal, claim: tuple[str, str]) -> JobRecord | None:
    found = await ctx.store.jobs.idempotent(principal.org_id or "", claim[0])
    if found is None:
        return None
    job_id, known = found
    if known != claim[1]:
        raise Conflict(
            "This Idempotency-Key was used with a different request body.",
            param="Idempotency-Key",
            code="idempotency_key_reused",
        )
    return await get_job(ctx, principal, job_id)


async def check_request(ctx: Context, principal: Principal, request: JobRequest) -> CheckedJob:
    org = await get_org(ctx.store, principal.org_id or "")
    if is_tuned(request.model) and not await ctx.store.models.get_model(org.id, request.model):
        raise InvalidRequest(
            f"Model {request.model} is not available for fine-tuning or does not exist.",
            param="model",
            code="model_not_available",
        )
    training = await file_facts(ctx, org.id, request.training_file, "training_file")
    validation = None
    if request.validation_file is not None:
        validation = await file_facts(ctx, org.id, request.validation_file, "validation_file")
    checked = check_job_request(request, org.policy, ctx.prices, training, validation)
    tuned = {record.id: record for record in await ctx.store.models.list_models(org.id)}
    aliases = await ctx.store.models.list_aliases(org.id)
    route = partial(route_model, policy=org.policy, tuned=tuned, aliases=aliases)
    return replace(checked, request=apply_job_policy(checked.request, org.policy, route))


async def file_facts(ctx: Context, org_id: str, file_id: str, param: str) -> FileFacts:
    """What the checks need of a file; another org's file is as unknown as a missing one."""
    record = await ctx.store.files.get(file_id)
    if record is None or record.org_id != org_id:
        raise InvalidRequest(f"No such File object: {file_id}", param=param, code="file_not_found")
    summary = record.summary
    examples = summary.get("examples")
    return FileFacts(
        id=file_id,
        format=summary.get("format"),  # type: ignore[arg-type]
        status="deleted" if record.bytes_deleted_at is not None else record.status,
        purpose=record.purpose,
        examples=examples if isinstance(examples, int) else None,
    )


def new_record(principal: Principal, checked: CheckedJob) -> JobRecord:
    """A job waiting for its files, due at once. Without a seed, one is drawn here, so the
    job, its `validation_split` and its upstream run share it."""
    request, now = checked.request, time.time()
    seed = request.seed if request.seed is not None else secrets.randbelow(MAX_SEED + 1)
    return JobRecord(
        id=new_id("ftjob-"),
        org_id=principal.org_id or "",
        key_id=principal.key_id,
        created_at=int(now),
        seq=now,
        request=request.model_dump(mode="json", exclude_none=True),
        base_model=checked.base_model,
        seed=seed,
        due_at=now,
        history=[{"state": "waiting_files", "at": now, "poll_delay": None}],
    )


async def control_job(
    ctx: Context, principal: Principal, job_id: str, event: JobEvent
) -> JobRecord:
    """Cancel, pause or resume."""
    record = await get_job(ctx, principal, job_id)
    call = upstream_call(record.state, event)
    if call is not None:
        await _call_upstream(ctx, call, record.upstream_id or "")
    said = [job_records.gateway_event(GATEWAY_CANCEL)] if call is None else []
    change = partial(apply_control, event=event)
    updated = await ctx.store.jobs.update(job_id, change, events=said)
    assert updated is not None
    await job_schedule.queue_due(ctx, updated.due_at)
    return updated


async def _call_upstream(ctx: Context, call: str, upstream_id: str) -> None:
    calls = {
        "cancel": ctx.upstream.cancel_job,
        "pause": ctx.upstream.pause_job,
        "resume": ctx.upstream.resume_job,
    }
    await within_budget(ctx, Priority.URGENT, partial(calls[call], upstream_id))


def apply_control(record: JobRecord, event: JobEvent) -> JobRecord:
    now, before = time.time(), record.state
    record.state = transition(record.state, event)
    record.due_at = now  # a worker fetches the new events (and finishes an ended job)
    # A poll or walk that read the upstream before this must not put the old status back.
    record.controlled_at, record.listed = now, None
    job_records.saw(record, before, now)
    if is_terminal(record.state):
        job_records.ended(record, now, observed=False)
    return record
