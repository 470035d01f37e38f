"""Fine-tuning against the budgets: a job reserves the most it can cost when it is created (its
training file's billing tokens for the model times its epochs, from the dataset report) and
settles with its real `trained_tokens` once it ends (`jobs.finish`); a job that trains nothing
gives it all back. A sweep holds one reservation for the sum of its trials from when it is
created: a sweep that does not fit whole is refused; each trial's job takes over its share when
the sweep launches it and settles it as any job does; the shares of trials never launched are
given back once when the sweep ends (`release_unlaunched`)."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

from service.domain.budgets.costs import training_worst_case
from service.domain.budgets.limits import NANOS
from service.domain.datasets.report import DatasetReport
from service.domain.jobs.request import JobRequest, method_hyperparameters
from service.domain.pricing import UnknownModelError, training_cost
from service.domain.sweeps.trials import trial_tokens
from service.domain.tenancy.access import Principal
from service.errors import InvalidRequest, QuotaExceeded
from service.operations.budgets.charges import Reservation, reserve, settle
from service.operations.context import Context
from service.operations.tenancy.orgs import get_org
from service.store.jobs import JobRecord
from service.store.sweeps import SweepRecord


async def billing_tokens(ctx: Context, file_id: str, base_model: str) -> tuple[int, int] | None:
    """The training file's billing tokens for the model and its default epochs, if known."""
    raw = await ctx.store.files.report(file_id)
    if raw is None:
        return None
    report = DatasetReport.model_validate_json(raw)
    found = [item for item in report.estimated_costs if item.model == base_model]
    return (found[0].billing_tokens, found[0].epochs) if found else None


async def reserve_training(
    ctx: Context, principal: Principal, base_model: str, tokens: int
) -> Reservation | None:
    """Reserve training on `tokens` (epochs included); over budget is a 400 on the file."""
    org = await get_org(ctx.store, principal.org_id or "")
    cost = training_worst_case(base_model, tokens, ctx.prices)
    try:
        return await reserve(ctx, org.id, org.policy.budgets, principal.key_id, "training", cost)
    except QuotaExceeded as error:
        raise InvalidRequest(error.message, param="training_file", code=error.code) from None


async def reserve_job(
    ctx: Context, principal: Principal, request: JobRequest, base_model: str
) -> dict[str, Any] | None:
    """A new job's reservation, as the job record keeps it."""
    known = await billing_tokens(ctx, request.training_file, base_model)
    tokens = 0
    if known is not None:
        epochs = method_hyperparameters(request).get("n_epochs")
        tokens = trial_tokens(known[0], epochs, known[1])
    reservation = await reserve_training(ctx, principal, base_model, tokens)
    return None if reservation is None else reservation.to_json()


def trial_shares(ctx: Context, base_model: str, tokens: list[int | None]) -> list[int]:
    """Each trial's worst case in nano-dollars; the sweep reserves their sum."""
    return [training_worst_case(base_model, count or 0, ctx.prices) for count in tokens]


async def reserve_sweep(
    ctx: Context, principal: Principal, base_model: str, shares: list[int]
) -> dict[str, Any] | None:
    """One reservation for every trial, as the sweep record keeps it; over budget is a 400."""
    org = await get_org(ctx.store, principal.org_id or "")
    budgets, key_id = org.policy.budgets, principal.key_id
    try:
        reservation = await reserve(ctx, org.id, budgets, key_id, "training", sum(shares))
    except QuotaExceeded as error:
        raise InvalidRequest(error.message, param="training_file", code=error.code) from None
    return None if reservation is None else reservation.to_json()


def share_of(kept: dict[str, Any] | None, amount: int) -> dict[str, Any] | None:
    """A trial's part of its sweep's reservation, as its job record keeps it."""
    if kept is None:
        return None
    return replace(Reservation.from_json(kept), amount=amount).to_json()


async def release_share(ctx: Context, kept: dict[str, Any] | None, amount: int) -> None:
    """Give back `amount` of a sweep's reservation (its trials never launched)."""
    if kept is not None and amount > 0:
        await settle(ctx, Reservation.from_json({**kept, "amount": amount}), 0)


async def settle_job(
    ctx: Context, kept: dict[str, Any] | None, base_model: str, trained: int
) -> None:
    """The job's reservation, replaced by what its trained tokens cost."""
    if kept is None:
        return
    try:
        cost = training_cost(base_model, trained, ctx.prices) or 0.0
    except UnknownModelError:
        cost = 0.0
    await settle(ctx, Reservation.from_json(kept), round(cost * NANOS) if trained else 0)


async def created(
    ctx: Context, record: JobRecord, create: Awaitable[bool], *, owned: bool = True
) -> bool:
    """Await the job's creation; a job that was not created gives back a reservation it
    `owned` (a sweep trial's share stays with the sweep, which releases it if never used)."""
    try:
        made = await create
    except BaseException:
        if owned:
            await settle_job(ctx, record.budget, record.base_model, 0)
        raise
    if not made and owned:
        await settle_job(ctx, record.budget, record.base_model, 0)
    return made


async def release_unlaunched(ctx: Context, record: SweepRecord, trial_keys: list[str]) -> None:
    """Give back, once, the shares of a sweep's trials that never got a job (`trial_keys`: each
    trial's job Idempotency-Key). The flag is set first: a worker that dies in between leaves
    the shares reserved rather than give them back twice."""
    if record.budget is None or record.budget_released:
        return
    claimed: list[bool] = []

    def claim(current: SweepRecord) -> SweepRecord | None:
        claimed.clear()
        if current.budget_released:
            return None
        current.budget_released = True
        claimed.append(True)
        return current

    await ctx.store.sweeps.update(record.id, claim)
    if not claimed:
        return
    unlaunched = 0
    for trial, key in zip(record.trials, trial_keys, strict=True):
        if trial.job_id is None and await ctx.store.jobs.idempotent(record.org_id, key) is None:
            unlaunched += trial.budget_share
    await release_share(ctx, record.budget, unlaunched)
