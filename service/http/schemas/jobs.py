"""Response models of the fine-tuning and webhook endpoints: OpenAI's shapes, tunegate's ids.

A job object is built from `jobs.views.job_json` (the same dict the job-done callbacks carry), so
the API and the callbacks can never disagree.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from service.store.webhooks import DeliveryAttempt, DeliveryStatus

JobStatus = Literal[
    "validating_files", "queued", "running", "paused", "succeeded", "failed", "cancelled"
]


class JobError(BaseModel):
    code: str | None = None
    message: str | None = None
    param: str | None = None


class FineTuningJob(BaseModel):
    """OpenAI's `fine_tuning.job`. `status` is `queued` while the job waits at the gateway (for
    its files or a `max_concurrent_jobs` slot) as well as upstream."""

    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    id: str
    model: str
    created_at: int
    finished_at: int | None = None
    fine_tuned_model: str | None = None
    organization_id: str
    result_files: list[str] = []
    status: JobStatus
    training_file: str
    validation_file: str | None = None
    hyperparameters: dict[str, Any]
    trained_tokens: int | None = None
    error: JobError | None = None
    user_provided_suffix: str | None = None
    seed: int
    estimated_finish: int | None = None
    integrations: list[dict[str, Any]] = []
    metadata: dict[str, str] | None = None
    method: dict[str, Any] | None = None
    validation_split: float | None = Field(
        default=None, description="tunegate: the share of the training file held out."
    )
    eval_id: str | None = Field(
        default=None, description="tunegate: the eval run on the tuned model once it succeeds."
    )
    eval_runs: dict[str, str] | None = Field(
        default=None,
        description='tunegate: the eval runs once created, {"model": run id, "base": run id}.',
    )
    eval_error: JobError | None = Field(
        default=None, description="tunegate: why the eval runs could not be created."
    )


class FineTuningJobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJob]
    has_more: bool = False


class FineTuningJobEvent(BaseModel):
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    id: str
    created_at: int
    level: str
    message: str
    data: dict[str, Any] | None = None
    type: str | None = None


class FineTuningJobEventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobEvent]
    has_more: bool = False


class FineTuningJobCheckpoint(BaseModel):
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    id: str
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: dict[str, Any]
    step_number: int


class FineTuningJobCheckpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobCheckpoint]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None


class StepMetrics(BaseModel):
    step: int
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None


class JobMetrics(BaseModel):
    """Step metrics, by step; the same columns as CSV (`Accept: text/csv`)."""

    object: Literal["list"] = "list"
    data: list[StepMetrics]
    total_steps: int | None = None


class WebhookDelivery(BaseModel):
    """One job-done callback and every attempt at it."""

    object: Literal["webhook.delivery"] = "webhook.delivery"
    id: str
    event_id: str = Field(description="The `tunegate-event-id` header: dedupe on it.")
    event_type: str
    job_id: str
    url: str
    created_at: int
    status: DeliveryStatus
    attempts: list[DeliveryAttempt]
    next_attempt_at: float | None = None


class WebhookDeliveryList(BaseModel):
    object: Literal["list"] = "list"
    data: list[WebhookDelivery]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None


class WebhookSecret(BaseModel):
    secret: str = Field(
        description="Signs the org's job-done callbacks; shown only in this response."
    )


class WebhookReceived(BaseModel):
    received: bool = True
