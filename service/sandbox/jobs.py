"""A sandbox fine-tuning job and its life, computed lazily from the time it has been active.

Each job carries a schedule of milestones (validated or failed, started, one per reported step,
succeeded) at offsets of *active* seconds; `advance` replays the milestones passed since the last
read, so nothing runs in the background and any number of jobs progress at once. Pausing stops
the job's clock, resuming restarts it, and cancelling ends it where it stands.
"""

from __future__ import annotations

import base64
import math
import time
from dataclasses import dataclass, field
from typing import Any

from service.ids import new_id
from service.sandbox import training
from service.sandbox.errors import invalid
from service.sandbox.objects import JSON, StoredFile, TunedModel
from service.sandbox.training import Hyperparameters, StepMetrics
from service.sandbox.training_data import TrainingData

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
FULL_RECALL_EPOCHS = 3  # OpenAI's default epoch count
CSV_HEADER = "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n"


@dataclass
class Clock:
    """Active seconds: time spent neither paused nor finished."""

    base: float = 0.0
    since: float | None = field(default_factory=time.monotonic)

    def active(self, at: float) -> float:
        return self.base + (at - self.since if self.since is not None else 0.0)

    def stop(self, at: float) -> None:
        self.base, self.since = self.active(at), None

    def start(self, at: float) -> None:
        self.since = at


@dataclass(frozen=True)
class Milestone:
    at: float
    kind: str
    step: int = 0


@dataclass
class Event:
    created_at: int
    message: str
    level: str = "info"
    type: str = "message"
    data: JSON = field(default_factory=dict)
    id: str = field(default_factory=lambda: new_id("ftevent-"))

    def to_json(self) -> JSON:
        return {
            "object": "fine_tuning.job.event",
            "id": self.id,
            "created_at": self.created_at,
            "level": self.level,
            "message": self.message,
            "data": self.data,
            "type": self.type,
        }


@dataclass
class Job:
    request: JSON
    model: str
    model_name: str
    method: JSON
    hp: Hyperparameters
    data: TrainingData | None
    valid_examples: int | None
    schedule: list[Milestone]
    failure: JSON | None = None
    id: str = field(default_factory=lambda: new_id("ftjob-"))
    created_at: int = field(default_factory=lambda: int(time.time()))
    status: str = "validating_files"
    paused: bool = False
    cursor: int = 0
    clock: Clock = field(default_factory=Clock)
    finished_at: int | None = None
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    error: JSON | None = None
    result_files: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    checkpoints: list[JSON] = field(default_factory=list)
    metrics: list[StepMetrics] = field(default_factory=list)
    changes: list[JSON] = field(default_factory=list)  # {"status", "at"}: to the microsecond

    @property
    def seed(self) -> int:
        return int(self.request["seed"])

    @property
    def memory(self) -> tuple[tuple[str, str], ...]:
        """What the tuned model remembers: every training pair from `FULL_RECALL_EPOCHS` epochs
        on, the first share of them (`n_epochs / FULL_RECALL_EPOCHS`) below, so that trials of a
        sweep differ on an eval as they do on the loss."""
        pairs = self.data.pairs if self.data else ()
        share = min(1.0, self.hp.n_epochs / FULL_RECALL_EPOCHS)
        return pairs[: math.ceil(len(pairs) * share)]

    @property
    def examples(self) -> int:
        return self.data.examples if self.data else 1

    def add_event(self, created_at: float, message: str, **fields: Any) -> None:
        last = self.events[-1].created_at if self.events else self.created_at
        self.events.append(Event(max(last, int(created_at)), message, **fields))

    def metrics_at(self, step: int) -> StepMetrics:
        validation = self.valid_examples is not None
        return training.step_metrics(
            step, self.hp, self.examples, self.seed, with_validation=validation
        )


@dataclass
class Outputs:
    """Where a finishing job puts its results file and its models."""

    files: dict[str, StoredFile]
    models: dict[str, TunedModel]
    organization_id: str
    base64_results: bool = False


def advance(job: Job, outputs: Outputs) -> None:
    if job.status in TERMINAL or job.paused:
        return
    mono, wall = time.monotonic(), time.time()
    active = job.clock.active(mono)
    while job.cursor < len(job.schedule) and job.schedule[job.cursor].at <= active:
        milestone = job.schedule[job.cursor]
        job.cursor += 1
        before, at = job.status, wall - (active - milestone.at)
        _ACTIONS[milestone.kind](job, milestone, at, outputs)
        if job.status != before:
            job.changes.append({"status": job.status, "at": at})


def _validated(job: Job, _m: Milestone, at: float, _o: Outputs) -> None:
    job.status = "queued"
    job.add_event(at, "Files validated, moving job to queued state")


def _failed(job: Job, _m: Milestone, at: float, _o: Outputs) -> None:
    job.status, job.error, job.finished_at = "failed", job.failure, int(at)
    message = (job.failure or {}).get("message", "")
    job.add_event(at, f"Training file validation failed: {message}", level="error")
    job.clock.stop(time.monotonic())


def _started(job: Job, _m: Milestone, at: float, _o: Outputs) -> None:
    job.status = "running"
    job.add_event(at, "Fine-tuning job started")


def _step(job: Job, milestone: Milestone, at: float, outputs: Outputs) -> None:
    metrics = job.metrics_at(milestone.step)
    job.metrics.append(metrics)
    total = training.total_steps(job.hp, job.examples)
    message = f"Step {metrics.step}/{total}: training loss={metrics.train_loss:.2f}"
    data: JSON = {"step": metrics.step, "total_steps": total, "train_loss": metrics.train_loss}
    data["train_mean_token_accuracy"] = metrics.train_mean_token_accuracy
    if metrics.valid_loss is not None:
        message += f", validation loss={metrics.valid_loss:.2f}"
        data["valid_loss"] = metrics.valid_loss
        data["valid_mean_token_accuracy"] = metrics.valid_mean_token_accuracy
    job.add_event(at, message, type="metrics", data=data)
    _checkpoint_through(job, milestone.step, at, outputs)


def _checkpoint_through(job: Job, step: int, at: float, outputs: Outputs) -> None:
    per_epoch = training.steps_per_epoch(job.hp, job.examples)
    while (len(job.checkpoints) + 1) * per_epoch <= step:
        epoch = len(job.checkpoints) + 1
        ckpt_step = epoch * per_epoch
        name = job.model_name
        if epoch < job.hp.n_epochs:
            name = f"{job.model_name}:ckpt-step-{ckpt_step}"
            outputs.models[name] = TunedModel(
                name, outputs.organization_id, job.id, listed=False, memory=job.memory
            )
        job.checkpoints.append(_checkpoint_json(job, ckpt_step, name, int(at)))
        job.add_event(at, f"Checkpoint created at step {ckpt_step}")


def _checkpoint_json(job: Job, step: int, name: str, created_at: int) -> JSON:
    metrics = job.metrics_at(step)
    values: JSON = {
        "step": float(step),
        "train_loss": metrics.train_loss,
        "train_mean_token_accuracy": metrics.train_mean_token_accuracy,
        "valid_loss": metrics.valid_loss,
        "valid_mean_token_accuracy": metrics.valid_mean_token_accuracy,
        "full_valid_loss": metrics.valid_loss,
        "full_valid_mean_token_accuracy": metrics.valid_mean_token_accuracy,
    }
    return {
        "object": "fine_tuning.job.checkpoint",
        "id": new_id("ftckpt-"),
        "created_at": created_at,
        "fine_tuned_model_checkpoint": name,
        "fine_tuning_job_id": job.id,
        "metrics": values,
        "step_number": step,
    }


def _succeeded(job: Job, _m: Milestone, at: float, outputs: Outputs) -> None:
    results = StoredFile("step_metrics.csv", "fine-tune-results", _results_csv(job, outputs))
    outputs.files[results.id] = results
    outputs.models[job.model_name] = TunedModel(
        job.model_name, outputs.organization_id, job.id, memory=job.memory
    )
    job.status, job.finished_at, job.fine_tuned_model = "succeeded", int(at), job.model_name
    job.trained_tokens = (job.data.tokens if job.data else 0) * job.hp.n_epochs
    job.result_files = [results.id]
    job.add_event(at, "New fine-tuned model created")
    job.add_event(at, "The job has successfully completed")
    job.clock.stop(time.monotonic())


def _results_csv(job: Job, outputs: Outputs) -> bytes:
    rows = [CSV_HEADER]
    for m in job.metrics:
        valid = "" if m.valid_loss is None else f"{m.valid_loss},{m.valid_mean_token_accuracy}"
        rows.append(f"{m.step},{m.train_loss},{m.train_mean_token_accuracy},{valid or ','}\n")
    content = "".join(rows).encode()
    return base64.b64encode(content) if outputs.base64_results else content


_ACTIONS = {
    "validated": _validated,
    "failed": _failed,
    "started": _started,
    "step": _step,
    "succeeded": _succeeded,
}


def cancel(job: Job, outputs: Outputs) -> None:
    advance(job, outputs)
    if job.status in TERMINAL:
        raise invalid(f"Job {job.id} has already {job.status} and cannot be cancelled.")
    now = time.time()
    job.status, job.paused, job.finished_at = "cancelled", False, int(now)
    job.clock.stop(time.monotonic())
    job.add_event(now, "Fine-tuning job cancelled")
    job.changes.append({"status": job.status, "at": now})


def pause(job: Job, outputs: Outputs) -> None:
    advance(job, outputs)
    if job.status in TERMINAL or job.paused:
        raise invalid(f"Job {job.id} is {job_status(job)} and cannot be paused.")
    job.paused = True
    job.clock.stop(time.monotonic())
    job.add_event(time.time(), "Fine-tuning job paused")


def resume(job: Job, outputs: Outputs) -> None:
    advance(job, outputs)
    if not job.paused:
        raise invalid(f"Job {job.id} is {job_status(job)} and cannot be resumed.")
    job.paused = False
    job.clock.start(time.monotonic())
    job.add_event(time.time(), "Fine-tuning job resumed")


def job_status(job: Job) -> str:
    return "paused" if job.paused else job.status


def _estimated_finish(job: Job) -> int | None:
    if job.status in TERMINAL or job.paused or not job.schedule:
        return None
    remaining = job.schedule[-1].at - job.clock.active(time.monotonic())
    return int(time.time() + max(0.0, remaining))


def job_json(job: Job, organization_id: str) -> JSON:
    request = job.request
    return {
        "object": "fine_tuning.job",
        "id": job.id,
        "model": job.model,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "fine_tuned_model": job.fine_tuned_model,
        "organization_id": organization_id,
        "result_files": job.result_files,
        "status": job_status(job),
        "validation_file": request.get("validation_file"),
        "training_file": request["training_file"],
        "hyperparameters": job.method[job.method["type"]]["hyperparameters"],
        "trained_tokens": job.trained_tokens,
        "error": job.error,
        "user_provided_suffix": request.get("suffix"),
        "seed": job.seed,
        "estimated_finish": _estimated_finish(job),
        "integrations": request.get("integrations") or [],
        "metadata": request.get("metadata"),
        "method": job.method,
        "usage_metrics": None,
        "shared_with_openai": False,
    }
