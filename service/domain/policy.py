"""An org's policy, and what it lets the org do.

The policy is replaced whole (`PUT /admin/orgs/{id}/policy`); unknown fields are rejected so a
typo never silently weakens privacy, and so is an `allowed_models` entry that names no known
model (see `model_names`) unless `allow_unknown_models` says the operator means it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from service.domain.model_names import entry_admits, family_of

PiiMode = Literal["allow", "redact", "block"]
PiiEntity = Literal["EMAIL", "PHONE", "CREDIT_CARD", "US_SSN", "IP_ADDRESS", "SECRET"]
ALL_PII_ENTITIES: tuple[PiiEntity, ...] = (
    "EMAIL",
    "PHONE",
    "CREDIT_CARD",
    "US_SSN",
    "IP_ADDRESS",
    "SECRET",
)
LogContent = Literal["none", "redacted", "full"]
OpaqueParts = Literal["refuse", "allow"]
HostedTool = Literal["web_search", "file_search", "code_interpreter", "mcp"]
Integration = Literal["wandb"]


class RateLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)


class Policy(BaseModel):
    """Per-org privacy and usage policy (see DESIGN.md for each field)."""

    model_config = ConfigDict(extra="forbid")

    pii: PiiMode = "redact"
    pii_entities: list[PiiEntity] = Field(default_factory=lambda: list(ALL_PII_ENTITIES))
    allowed_models: list[str] = Field(default_factory=list)
    force_store_false: bool = True
    log_content: LogContent = "none"
    max_output_tokens: int | None = Field(default=None, ge=1)
    rate_limits: RateLimits | None = None
    max_concurrent_jobs: int | None = Field(default=None, ge=1)
    dataset_retention_days: int | None = Field(default=None, ge=1)
    webhook_url: AnyHttpUrl | None = None
    opaque_parts: OpaqueParts = "refuse"
    hosted_tools: list[HostedTool] = Field(default_factory=list)
    integrations: list[Integration] = Field(default_factory=list)
    allow_unknown_models: bool = False

    @model_validator(mode="after")
    def _models_are_known(self) -> Policy:
        if self.allow_unknown_models:
            return self
        unknown = [name for name in self.allowed_models if family_of(name) is None]
        if unknown:
            raise ValueError(
                f"allowed_models names no known model: {', '.join(unknown)} "
                "(set allow_unknown_models to allow it anyway)"
            )
        return self


def model_allowed(policy: Policy, model: str) -> bool:
    """Whether a base model may be tuned and called, as the client named it; `[]` means any.

    An entry admits itself and its dated snapshots (see `model_names.entry_admits`).
    """
    return not policy.allowed_models or any(
        entry_admits(entry, model) for entry in policy.allowed_models
    )


def cap_output_tokens(policy: Policy, requested: int | None) -> int | None:
    """The output-token limit to send upstream under the policy's cap."""
    cap = policy.max_output_tokens
    if cap is None:
        return requested
    return cap if requested is None else min(requested, cap)
