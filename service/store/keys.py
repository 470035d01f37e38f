"""The one place that builds Redis key names. Everything lives under `tg:`.

`TUNEGATE_REDIS_NAMESPACE` puts a deployment's keys under `tg:<namespace>:` so that several
tunegates (staging and production, or parallel test runs) can share one Redis without seeing
each other's data, queue or workers.
"""

from __future__ import annotations

ROOT = "tg:"
PREFIX = ROOT


def use_namespace(namespace: str) -> None:
    """Set once per process, from settings, before any key is built."""
    global PREFIX
    PREFIX = f"{ROOT}{namespace}:" if namespace else ROOT


def org(org_id: str) -> str:
    return f"{PREFIX}org:{org_id}"


def orgs() -> str:
    return f"{PREFIX}orgs"


def org_keys(org_id: str) -> str:
    return f"{PREFIX}org:{org_id}:keys"


def api_key(key_id: str) -> str:
    return f"{PREFIX}key:{key_id}"


def audit(org_id: str | None) -> str:
    return f"{PREFIX}audit:{org_id or '_gateway'}"


def workers() -> str:
    return f"{PREFIX}workers"


def file(file_id: str) -> str:
    return f"{PREFIX}file:{file_id}"


def file_report(file_id: str) -> str:
    return f"{PREFIX}file:{file_id}:report"


def org_files(org_id: str) -> str:
    return f"{PREFIX}org:{org_id}:files"


def upstream_copy(org_id: str, sha256: str) -> str:
    """The one upstream file holding these bytes for this org, and the tunegate files using it."""
    return f"{PREFIX}org:{org_id}:upstream:{sha256}"


def upstream_copy_users(org_id: str, sha256: str) -> str:
    return f"{PREFIX}org:{org_id}:upstream:{sha256}:users"


def upstream_copies() -> str:
    """Every upstream copy tunegate keeps: upstream file id -> `org_id|sha256`."""
    return f"{PREFIX}upstream:copies"


def upstream_uploading() -> str:
    """Uploads recorded before their call and not yet settled: file id -> org id."""
    return f"{PREFIX}upstream:uploading"


def upstream_doomed() -> str:
    """Upstream files tunegate no longer uses and has yet to delete."""
    return f"{PREFIX}upstream:doomed"


def invalidations() -> str:
    """The pub/sub channel naming an org whose keys, policy, models or aliases changed."""
    return f"{PREFIX}invalidate"


def lock(name: str) -> str:
    return f"{PREFIX}lock:{name}"


def sandbox() -> str:
    return f"{PREFIX}sandbox"


def pending_uploads() -> str:
    """Files stored but not yet handed upstream (scored by creation time), for the sweeper."""
    return f"{PREFIX}files:pending"


def org_models(org_id: str) -> str:
    """The org's tuned models: model id -> record."""
    return f"{PREFIX}org:{org_id}:models"


def org_aliases(org_id: str) -> str:
    """The org's model aliases: name -> model id."""
    return f"{PREFIX}org:{org_id}:aliases"


def usage_day(org_id: str, day: str) -> str:
    """One org's token usage on one UTC day (YYYY-MM-DD): `key|model|metric` -> count."""
    return f"{PREFIX}usage:{org_id}:{day}"


def response(response_id: str) -> str:
    """A stored Responses API response's owner: org, key, model, and `open` while it runs."""
    return f"{PREFIX}response:{response_id}"


def rate_bucket(key_id: str, dimension: str) -> str:
    """One key's rate-limit bucket: `requests` or `tokens`."""
    return f"{PREFIX}rate:{key_id}:{dimension}"


def job(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}"


def job_steps_done(job_id: str) -> str:
    """The finishing steps of an ended job done so far (those that must not run twice), until
    the record crosses them all off."""
    return f"{PREFIX}job:{job_id}:done"


def job_events(job_id: str) -> str:
    """The job's events, oldest first: the upstream's and the gateway's own."""
    return f"{PREFIX}job:{job_id}:events"


def job_checkpoints(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}:checkpoints"


def job_metrics(job_id: str) -> str:
    """Step metrics read from the finished job's result file."""
    return f"{PREFIX}job:{job_id}:metrics"


def org_jobs(org_id: str) -> str:
    """The org's jobs, scored by creation time."""
    return f"{PREFIX}org:{org_id}:jobs"


def org_jobs_waiting(org_id: str) -> str:
    """Jobs waiting at the gateway for one of the org's `max_concurrent_jobs` slots (FIFO)."""
    return f"{PREFIX}org:{org_id}:jobs:waiting"


def org_jobs_active(org_id: str) -> str:
    """Jobs holding one of the org's slots."""
    return f"{PREFIX}org:{org_id}:jobs:active"


def job_idempotency(org_id: str, key_digest: str) -> str:
    """An `Idempotency-Key` of `POST /v1/fine_tuning/jobs`: the job it made and its body's hash."""
    return f"{PREFIX}org:{org_id}:jobs:idempotency:{key_digest}"


def jobs_due() -> str:
    """Jobs a worker should advance, scored by when."""
    return f"{PREFIX}jobs:due"


def jobs_by_upstream() -> str:
    """Upstream job id -> tunegate job id, for OpenAI's webhooks."""
    return f"{PREFIX}jobs:upstream"


def jobs_watched() -> str:
    """Jobs the upstream holds, by upstream id: what the poll cycle last knew of each."""
    return f"{PREFIX}jobs:watched"


def jobs_poll_cycle() -> str:
    """The poll cycle's lease: one worker walks the upstream's list at a time."""
    return f"{PREFIX}jobs:poll_cycle"


def jobs_cycle_tick(interval: float, tick: int) -> str:
    """Claimed by the worker process that walks for this tick of the poll cycle's clock."""
    return f"{PREFIX}jobs:poll_cycle:tick:{interval:g}:{tick}"


def upstream_bucket() -> str:
    """The token bucket every worker's fine-tuning calls to the upstream draw from."""
    return f"{PREFIX}upstream:bucket"


def openai_webhook(webhook_id: str) -> str:
    """An OpenAI webhook already acted on (they are retried)."""
    return f"{PREFIX}webhooks:openai:{webhook_id}"


def webhook_delivery(delivery_id: str) -> str:
    return f"{PREFIX}webhook:{delivery_id}"


def org_webhook_deliveries(org_id: str) -> str:
    """The org's job-done callbacks, scored by creation time."""
    return f"{PREFIX}org:{org_id}:webhooks"


def webhooks_due() -> str:
    """Callbacks with an attempt to make, scored by when (for the sweeper)."""
    return f"{PREFIX}webhooks:due"


def jobs_drainers() -> str:
    """Running `advance_due_jobs` tasks, scored by when each stops taking due jobs."""
    return f"{PREFIX}jobs:drainers"


def sweep(sweep_id: str) -> str:
    """A hyperparameter sweep: its request, plan and trials' job ids."""
    return f"{PREFIX}sweep:{sweep_id}"


def org_sweeps(org_id: str) -> str:
    """The org's sweeps, scored by creation time."""
    return f"{PREFIX}org:{org_id}:sweeps"


def eval_record(eval_id: str) -> str:
    """An eval: its data source config, testing criteria, name and metadata."""
    return f"{PREFIX}eval:{eval_id}"


def org_evals(org_id: str) -> str:
    """The org's evals, scored by creation time."""
    return f"{PREFIX}org:{org_id}:evals"


def eval_run(run_id: str) -> str:
    """An eval run: its data source, status and totals."""
    return f"{PREFIX}evalrun:{run_id}"


def eval_runs(eval_id: str) -> str:
    """An eval's runs, scored by creation time."""
    return f"{PREFIX}eval:{eval_id}:runs"


def eval_runs_active() -> str:
    """Runs a worker is taking forward, scored by its last heartbeat (for the sweeper)."""
    return f"{PREFIX}evalruns:active"


def org_eval_slots(org_id: str) -> str:
    """The org's eval items being sampled or graded now, scored by when each started."""
    return f"{PREFIX}org:{org_id}:evalslots"


def eval_run_samples(run_id: str) -> str:
    """A run's samples by item index, each written once, as soon as the model answered."""
    return f"{PREFIX}evalrun:{run_id}:samples"


def eval_run_items(run_id: str) -> str:
    """A run's output items (sample and grades) by item index."""
    return f"{PREFIX}evalrun:{run_id}:items"


def sweeps_due() -> str:
    """Sweeps a worker should advance, scored by when."""
    return f"{PREFIX}sweeps:due"


def budget(org_id: str, period: str) -> str:
    """An org's spending in one budget period (named by its first day): spent and reserved
    nano-dollars per scope, and the alerts already sent."""
    return f"{PREFIX}org:{org_id}:budget:{period}"


def budget_leases(org_id: str, period: str) -> str:
    """The leases gateway processes hold on an org's budget in one period (`store.budgets`)."""
    return f"{PREFIX}org:{org_id}:budget-leases:{period}"


def console_session(session_id: str) -> str:
    return f"{PREFIX}console:session:{session_id}"
