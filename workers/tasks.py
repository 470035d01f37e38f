"""RQ entry points. Each is a plain function taking ids, running one operation."""

from __future__ import annotations

from service.operations import maintenance
from service.operations.context import Context
from service.operations.datasets import uploads
from service.operations.evals import runner as eval_runner
from service.operations.jobs import cycle as job_cycle
from service.operations.jobs import runner as job_runner
from service.operations.sweeps import runner as sweep_runner
from service.operations.webhooks import events as webhooks
from workers.runtime import run_operation


def ping(message: str) -> str:
    """A no-op task: proves a worker is consuming the queue."""

    async def echo(ctx: Context) -> str:
        await ctx.store.ping()
        return message

    return run_operation(echo)


def upload_file(file_id: str) -> str:
    return run_operation(lambda ctx: uploads.upload_to_upstream(ctx, file_id))


def delete_upstream_file(upstream_id: str) -> None:
    run_operation(lambda ctx: uploads.delete_upstream_file(ctx, upstream_id))


def sweep() -> dict[str, int]:
    return run_operation(maintenance.sweep)


def advance_due_jobs() -> int:
    return run_operation(job_runner.advance_due_jobs)


def poll_jobs() -> int:
    return run_operation(job_cycle.run_poll_cycle)


def deliver_webhook(delivery_id: str) -> str:
    return run_operation(lambda ctx: webhooks.deliver(ctx, delivery_id))


def advance_due_sweeps() -> int:
    return run_operation(sweep_runner.advance_due_sweeps)


def run_eval(run_id: str) -> str:
    return run_operation(lambda ctx: eval_runner.execute_run(ctx, run_id))
