"""The promote gate: an alias moves to a new model only when an eval shows the new model beats
the alias's current one by at least `min_improvement` on every criterion, at `confidence`
(the lower bound of the paired-bootstrap interval of the pass-rate difference reaches it).

The evidence is the latest completed run of the eval on each of the two models; without both,
or when the interval falls short, the promotion is refused with the reason."""

from __future__ import annotations

from dataclasses import dataclass

from service.domain.evals import results
from service.domain.tenancy.access import Principal
from service.errors import InvalidRequest
from service.operations.context import Context
from service.operations.evals.evals import get_eval
from service.operations.evals.runs import compare_records
from service.store.evals import RunRecord

MAX_RUNS_READ = 100


@dataclass(frozen=True)
class Gate:
    eval_id: str
    min_improvement: float
    confidence: float


def refused(reason: str) -> InvalidRequest:
    return InvalidRequest(f"Promotion refused: {reason}", param="require", code="promotion_refused")


async def _latest(ctx: Context, eval_id: str, model: str) -> RunRecord | None:
    runs, _ = await ctx.store.eval_runs.page(eval_id, None, MAX_RUNS_READ, newest_first=True)
    return next((r for r in runs if r.model == model and r.status == "completed"), None)


async def check_promotion(
    ctx: Context, principal: Principal, current: str | None, candidate: str, gate: Gate
) -> list[results.Difference]:
    record = await get_eval(ctx, principal, gate.eval_id)
    if current is None:
        raise refused("the alias has no current model to compare the new one with")
    found = {model: await _latest(ctx, gate.eval_id, model) for model in (current, candidate)}
    for model, run in found.items():
        if run is None:
            raise refused(f"eval {gate.eval_id} has no completed run on '{model}'")
    first, second = found[current], found[candidate]
    assert first is not None and second is not None
    rows = await compare_records(ctx, principal, record, first, second, gate.confidence)
    reason = results.gate_refusal(rows, gate.min_improvement, gate.confidence)
    if reason is not None:
        raise refused(f"'{candidate}' over '{current}' on eval {gate.eval_id}: {reason}")
    return rows


async def check_alias(
    ctx: Context, principal: Principal, name: str, candidate: str, gate: Gate
) -> None:
    """`check_promotion` against the model the alias routes to now."""
    aliases = await ctx.store.models.list_aliases(principal.org_id or "")
    await check_promotion(ctx, principal, aliases.get(name), candidate, gate)
