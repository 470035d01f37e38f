"""Reading sweeps: each trial with its job and step metrics, the sweep object, the chart.

A trial's state is its job's, read fresh from the store; nothing here calls the upstream. The
sweep object is the one the API returns and the sweep-done callback carries. Another org's sweep
answers exactly like one that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.domain.charts.charts import Curve, render_curves_svg
from service.domain.jobs.metrics import StepRow
from service.domain.jobs.states import JobState, is_terminal, public_status
from service.domain.pricing import PriceTable, UnknownModelError, training_cost
from service.domain.sweeps.request import (
    Metric,
    SweepRequest,
    curve_metric,
    eval_criterion,
    fixed_hyperparameters,
)
from service.domain.sweeps.trials import (
    Score,
    best_score,
    eval_score,
    final_objective,
    objective_curve,
)
from service.domain.tenancy.access import Principal
from service.errors import NotFound
from service.operations.context import Context
from service.operations.jobs.views import stored_metrics
from service.store.evals import RunRecord
from service.store.jobs import JobRecord
from service.store.sweeps import SweepRecord, TrialRecord

ENDED = frozenset({"succeeded", "failed", "cancelled"})
RUN_ENDED = frozenset({"completed", "failed", "canceled"})
OBJECTIVE_LABELS = {
    "valid_loss": "Validation loss",
    "valid_mean_token_accuracy": "Validation token accuracy",
}


@dataclass(frozen=True, slots=True)
class Trial:
    record: TrialRecord
    job: JobRecord | None
    rows: list[StepRow]
    eval_run: RunRecord | None = None  # the eval run on its model, under an eval objective
    ranks_by_eval: bool = False

    @property
    def running(self) -> bool:
        """Its job has not reached a terminal state."""
        return self.job is not None and not is_terminal(self.job.state)

    @property
    def settled(self) -> bool:
        """Nothing will change: its job ended and finished (but for waking this sweep), or it
        could not be created."""
        if self.job is None:
            return self.record.error is not None
        ended = is_terminal(self.job.state) and set(self.job.pending) <= {"sweep"}
        return ended and not self.awaits_eval

    @property
    def awaits_eval(self) -> bool:
        """Under an eval objective, a succeeded trial's eval run has not ended yet."""
        if not self.ranks_by_eval or self.job is None or self.job.state != JobState.SUCCEEDED:
            return False
        return self.eval_run is not None and self.eval_run.status not in RUN_ENDED

    @property
    def early_stopped(self) -> bool:
        return (
            self.record.stopped is not None
            and self.job is not None
            and (self.job.state == JobState.CANCELLED)
        )


def request_of(record: SweepRecord) -> SweepRequest:
    return SweepRequest.model_validate(record.request)


def sweep_not_found(sweep_id: str) -> NotFound:
    return NotFound(f"No such sweep: {sweep_id}", param="sweep_id", code="sweep_not_found")


async def get_sweep(ctx: Context, principal: Principal, sweep_id: str) -> SweepRecord:
    record = await ctx.store.sweeps.get(sweep_id)
    if record is None or record.org_id != principal.org_id:
        raise sweep_not_found(sweep_id)
    return record


async def list_sweeps(
    ctx: Context, principal: Principal, *, after: str | None, limit: int
) -> tuple[list[SweepRecord], bool]:
    """A page of the org's sweeps, newest first."""
    ids, more = await ctx.store.sweeps.page_ids(principal.org_id or "", after, limit)
    return await ctx.store.sweeps.many(ids), more


async def load_trials(ctx: Context, record: SweepRecord) -> list[Trial]:
    job_ids = [trial.job_id for trial in record.trials if trial.job_id]
    jobs = {job.id: job for job in await ctx.store.jobs.many(job_ids)}
    by_eval = eval_criterion(request_of(record).objective) is not None
    trials = []
    for trial in record.trials:
        job = jobs.get(trial.job_id or "")
        rows = (await stored_metrics(ctx, job.id))[0] if job is not None else []
        run_id = job.eval_runs.get("model") if job is not None and by_eval else None
        run = await ctx.store.eval_runs.get(run_id) if run_id else None
        trials.append(Trial(trial, job, rows, run, by_eval))
    return trials


def scores(trials: list[Trial], request: SweepRequest) -> list[Score]:
    """The final objective of every trial that succeeded (under an eval objective, of every
    one whose eval run has completed)."""
    criterion = eval_criterion(request.objective)
    if criterion is None:
        return metric_scores(trials, curve_metric(request.objective))
    found = []
    for trial in trials:
        if trial.job is None or trial.job.state != JobState.SUCCEEDED or trial.eval_run is None:
            continue
        run = trial.eval_run
        score = eval_score(
            trial.record.index, run.status, run.per_testing_criteria_results, criterion
        )
        if score is not None:
            found.append(score)
    return found


def metric_scores(trials: list[Trial], metric: Metric) -> list[Score]:
    """The final validation metric of every trial that succeeded."""
    found = []
    for trial in trials:
        if trial.job is None or trial.job.state != JobState.SUCCEEDED:
            continue
        final = final_objective(trial.rows, metric)
        if final is not None:
            found.append(Score(trial.record.index, final[1]))
    return found


def best_trial(record: SweepRecord, trials: list[Trial]) -> Trial | None:
    """The ended sweep's best, or the best so far while it runs."""
    index = record.best_trial
    if record.status not in ENDED:
        best = best_score(scores(trials, request_of(record)), request_of(record).objective)
        index = best.index if best is not None else None
    return trials[index] if index is not None else None


def sweep_json(record: SweepRecord, trials: list[Trial], prices: PriceTable) -> dict[str, Any]:
    request = request_of(record)
    shown = [trial_json(record, trial, request, prices) for trial in trials]
    best = best_trial(record, trials)
    kind = request.method_type
    return {
        "object": "fine_tuning.sweep",
        "id": record.id,
        "status": record.status,
        "created_at": record.created_at,
        "finished_at": record.finished_at,
        "model": request.model,
        "training_file": request.training_file,
        "validation_file": request.validation_file,
        "validation_split": request.validation_split,
        "method": {"type": kind, kind: {"hyperparameters": fixed_hyperparameters(request)}},
        "search": {"type": request.search.type, "seed": record.search_seed},
        "space": request.space.model_dump(mode="json", exclude_none=True),
        "max_trials": request.max_trials or len(record.trials),
        "max_parallel": request.max_parallel,
        "objective": request.objective,
        "eval_id": request.eval_id,
        "early_stop": request.early_stop.model_dump() if request.early_stop else None,
        "training_token_budget": request.training_token_budget,
        "seed": record.seed,
        "suffix": request.suffix,
        "metadata": request.metadata,
        "trained_tokens": sum(trial["trained_tokens"] or 0 for trial in shown),
        "estimated_trained_tokens": _total(trial.estimated_tokens for trial in record.trials),
        "estimated_cost": _total(trial["estimated_cost"] for trial in shown),
        "trials": shown,
        "best_trial": shown[best.record.index] if best is not None else None,
    }


def trial_json(
    record: SweepRecord, trial: Trial, request: SweepRequest, prices: PriceTable
) -> dict[str, Any]:
    job = trial.job
    tokens = job.trained_tokens if job is not None else None
    objective = _objective(trial, request)
    return {
        "index": trial.record.index,
        "job_id": trial.record.job_id,
        "hyperparameters": trial.record.hyperparameters,
        "status": _status(record, trial),
        "early_stopped": trial.early_stopped,
        "stopped": trial.record.stopped if trial.early_stopped else None,
        "objective": objective[1] if objective else None,
        "objective_step": objective[0] if objective else None,
        "eval_run_id": (job.eval_runs.get("model") if job is not None else None),
        "fine_tuned_model": job.fine_tuned_model if job is not None else None,
        "trained_tokens": tokens,
        "estimated_trained_tokens": trial.record.estimated_tokens,
        "estimated_cost": _cost(record.base_model, tokens or trial.record.estimated_tokens, prices),
        "error": trial.record.error or (job.error if job is not None else None),
    }


def _status(record: SweepRecord, trial: Trial) -> str:
    if trial.job is not None:
        return public_status(trial.job.state)
    if trial.record.error is not None:
        return "failed"
    return "skipped" if record.status in ("cancelling", "cancelled") else "pending"


def _objective(trial: Trial, request: SweepRequest) -> tuple[int | None, float] | None:
    """The final score of a trial that succeeded; the latest validation value of any other.
    Under an eval objective, the pass rate once its eval run has completed, else nothing."""
    if eval_criterion(request.objective) is not None:
        found = scores([trial], request)
        return (None, found[0].value) if found else None
    metric = curve_metric(request.objective)
    if trial.job is not None and trial.job.state == JobState.SUCCEEDED:
        return final_objective(trial.rows, metric)
    curve = objective_curve(trial.rows, metric)
    return curve[-1] if curve else None


def _cost(base_model: str, tokens: int | None, prices: PriceTable) -> float | None:
    if tokens is None:
        return None
    try:
        cost = training_cost(base_model, tokens, prices)
    except UnknownModelError:
        return None
    return round(cost, 6) if cost is not None else None


def _total(values: Any) -> Any:
    known = [value for value in values if value is not None]
    return round(sum(known), 6) if known else None


def sweep_chart(record: SweepRecord, trials: list[Trial]) -> str:
    request = request_of(record)
    best = best_trial(record, trials)
    curves = [
        Curve(
            id=str(trial.record.index),
            label=f"#{trial.record.index} {_label(trial.record.hyperparameters)}",
            points=objective_curve(trial.rows, curve_metric(request.objective)),
            stopped=trial.record.stopped is not None,
        )
        for trial in trials
        if trial.job is not None
    ]
    label = OBJECTIVE_LABELS[curve_metric(request.objective)]
    highlight = str(best.record.index) if best is not None else None
    name = f"{record.base_model} · {request.suffix}" if request.suffix else record.base_model
    stopped = sum(curve.stopped for curve in curves)
    subtitle = (
        f"{request.search.type} search · {len(record.trials)} trials"
        + (f" · {stopped} stopped early" if stopped else "")
        + (f" · best #{best.record.index}" if best is not None else "")
    )
    return render_curves_svg(
        curves,
        highlight,
        title=f"Sweep of {name} — {record.status}",
        y_label=label,
        subtitle=subtitle,
        empty=_empty_reason(record, trials),
    )


def _empty_reason(record: SweepRecord, trials: list[Trial]) -> str:
    if not any(trial.job is not None for trial in trials):
        return f"No trial has started: the sweep is {record.status}"
    return "No trial has reported a validation value yet"


def _label(hyperparameters: dict[str, Any]) -> str:
    short = {"n_epochs": "ep", "batch_size": "bs", "learning_rate_multiplier": "lr", "beta": "β"}
    return " ".join(f"{short.get(name, name)}={value}" for name, value in hyperparameters.items())
