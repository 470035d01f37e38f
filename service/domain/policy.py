"""An org's policy, and what it lets the org do.

The policy is replaced whole (`PUT /admin/orgs/{id}/policy`); unknown fields are rejected so a
typo never silently weakens privacy.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

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


def model_allowed(policy: Policy, base_model: str) -> bool:
    """Whether a base model may be tuned and called; `[]` means any."""
    return not policy.allowed_models or base_model in policy.allowed_models


def cap_output_tokens(policy: Policy, requested: int | None) -> int | None:
    """The output-token limit to send upstream under the policy's cap."""
    cap = policy.max_output_tokens
    if cap is None:
        return requested
    return cap if requested is None else min(requested, cap)
