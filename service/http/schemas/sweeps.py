"""Response models of the sweep endpoints. A sweep object is built from
`sweeps.views.sweep_json` (the same dict the sweep-done callback carries)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.http.schemas.common import PromoteRequirement
from service.http.schemas.jobs import JobError
from service.store.sweeps import SweepStatus

TrialStatus = Literal[
    "pending",
    "skipped",
    "validating_files",
    "queued",
    "running",
    "paused",
    "succeeded",
    "failed",
    "cancelled",
]


class TrialStop(BaseModel):
    step: int
    value: float
    reference: float = Field(description="The reference trial's value at the same step.")
    reference_trial: int


class SweepTrial(BaseModel):
    index: int
    job_id: str | None = Field(description="The trial's fine-tuning job, once created.")
    hyperparameters: dict[str, Any]
    status: TrialStatus
    early_stopped: bool
    stopped: TrialStop | None = None
    objective: float | None = Field(
        description="The final score of a succeeded trial; the latest validation value of others."
        " Under an eval objective, the pass rate once the trial's eval run has completed."
    )
    objective_step: int | None = None
    eval_run_id: str | None = Field(
        default=None, description="The eval run on the trial's model, with the sweep's eval_id."
    )
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    estimated_trained_tokens: int | None = None
    estimated_cost: float | None = None
    error: JobError | None = None


class Sweep(BaseModel):
    object: Literal["fine_tuning.sweep"] = "fine_tuning.sweep"
    id: str
    status: SweepStatus
    created_at: int
    finished_at: int | None = None
    model: str
    training_file: str
    validation_file: str | None = None
    validation_split: float | None = None
    method: dict[str, Any]
    search: dict[str, Any]
    space: dict[str, Any]
    max_trials: int
    max_parallel: int
    objective: str = Field(description="valid_loss, valid_mean_token_accuracy or eval:<criterion>")
    eval_id: str | None = Field(default=None, description="The eval every trial's model gets.")
    early_stop: dict[str, Any] | None = None
    training_token_budget: int | None = None
    seed: int
    suffix: str | None = None
    metadata: dict[str, str] | None = None
    trained_tokens: int
    estimated_trained_tokens: int | None = None
    estimated_cost: float | None = None
    trials: list[SweepTrial]
    best_trial: SweepTrial | None = None


class SweepList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Sweep]
    has_more: bool = False


class SweepPromote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alias: str = Field(min_length=1, max_length=64)
    require: PromoteRequirement | None = None


class SweepPromoted(BaseModel):
    object: Literal["alias"] = "alias"
    name: str
    model: str
    sweep_id: str
    trial: int
    job_id: str | None
