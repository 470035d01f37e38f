"""What a sandbox run can be tuned with: its key, its org name and how fast jobs move."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SandboxConfig(BaseModel):
    """Settings of one sandbox server.

    A job spends `validating_seconds`, then `queued_seconds`, then `step_seconds` per reported
    training step. It reports metrics at `total_steps` evenly spaced steps of its real schedule
    (`n_epochs * ceil(examples / batch_size)` steps); `None` reports every step. The defaults
    finish a job in about 20 seconds.
    """

    model_config = ConfigDict(frozen=True)

    api_key: str = Field(min_length=1)
    org_name: str = Field(default="tunegate-sandbox", min_length=1, pattern=r"^[a-z0-9-]+$")
    validating_seconds: float = Field(default=4.0, ge=0)
    queued_seconds: float = Field(default=3.0, ge=0)
    step_seconds: float = Field(default=0.5, ge=0)
    total_steps: int | None = Field(default=25, ge=1)
    min_examples: int = Field(default=10, ge=1)
    stream_delay_seconds: float = Field(default=0.0, ge=0)
    background_seconds: float = Field(default=0.5, ge=0)  # a background response's run time
    base64_result_files: bool = False
    max_body_bytes: int = Field(default=600 * 1024 * 1024, gt=0)
    request_log_size: int = Field(default=10_000, ge=0)
    log_body_bytes: int = Field(default=64 * 1024, ge=0)

    @property
    def organization_id(self) -> str:
        return f"org-{self.org_name}"
