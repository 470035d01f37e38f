"""An org's policy, and what it lets the org do.

The policy is replaced whole (`PUT /admin/orgs/{id}/policy`) or changed by a JSON merge patch
(RFC 7396, `PATCH`: a null resets a field to its default), the result validated whole either
way. Unknown fields are rejected so a typo never silently weakens privacy, and so is an
`allowed_models` entry that names no known model (see `model_names`) unless
`allow_unknown_models` says the operator means it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.domain.tenancy.model_names import entry_admits, family_of
from service.domain.validation import invalid_request
from service.errors import InvalidRequest

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

    requests_per_minute: int | None = Field(
        default=None, ge=1, description="Calls a key may make per minute; null: no limit."
    )
    tokens_per_minute: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Tokens a key may use per minute (prompt estimate plus the output a call allows "
            "itself, corrected with the upstream's usage); null: no limit."
        ),
    )


class BudgetKinds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inference: float | None = Field(
        default=None, ge=0, description="USD per period for proxied calls; null: no limit."
    )
    training: float | None = Field(
        default=None, ge=0, description="USD per period for fine-tuning; null: no limit."
    )


class Budgets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    monthly_usd: float | None = Field(
        default=None, ge=0, description="USD the whole org may spend per period; null: no limit."
    )
    per_key: dict[str, float] = Field(
        default_factory=dict,
        description="USD per period for single keys, by key id (`key_...`).",
    )
    per_kind: BudgetKinds | None = Field(
        default=None, description="USD per period for `inference` and `training` apart."
    )
    reset_day: int = Field(
        default=1,
        ge=1,
        le=28,
        description="Day of the month (UTC midnight) a period starts; 1: calendar months.",
    )
    alert_thresholds: list[float] = Field(
        default_factory=lambda: [0.5, 0.8, 1.0],
        description=(
            "Fractions of a limit whose crossing sends `budget.threshold_reached` (1.0: "
            "`budget.exhausted`) to `webhook_url`, once per period."
        ),
    )

    @model_validator(mode="after")
    def _amounts_are_valid(self) -> Budgets:
        if any(usd < 0 for usd in self.per_key.values()):
            raise ValueError("per_key limits are USD amounts of 0 or more")
        if any(not 0 < share <= 1 for share in self.alert_thresholds):
            raise ValueError("alert_thresholds are fractions above 0 and at most 1")
        return self


class Policy(BaseModel):
    """Per-org privacy and usage policy; each field says what it does."""

    model_config = ConfigDict(extra="forbid")

    pii: PiiMode = Field(
        default="redact",
        description=(
            "What to do with PII in prompts and uploaded datasets: `allow` (only count it), "
            "`redact` (replace it with `[EMAIL]`, `[PHONE]`, ...), `block` (refuse with 400, "
            "naming the entity kinds and, for datasets, the lines)."
        ),
    )
    pii_entities: list[PiiEntity] = Field(
        default_factory=lambda: list(ALL_PII_ENTITIES),
        description=(
            "The kinds of PII `pii` applies to; `SECRET` covers API keys, access tokens, JWTs, "
            "private keys and passwords. Default: all of them."
        ),
    )
    allowed_models: list[str] = Field(
        default_factory=list,
        description=(
            "Base models the org may tune and call (its tuned models are always allowed); `[]` "
            "allows any. An entry admits itself and its dated snapshots (`gpt-4o-mini` admits "
            "`gpt-4o-mini-2024-07-18`), matched on the name as the client sent it."
        ),
    )
    force_store_false: bool = Field(
        default=True,
        description="Send `store: false` upstream whatever the client asked.",
    )
    log_content: LogContent = Field(
        default="none",
        description=(
            "What the audit keeps of prompts and completions: `none`, `redacted` (PII "
            "replaced), `full`."
        ),
    )
    max_output_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Cap on `max_tokens` / `max_completion_tokens` sent upstream; null: none.",
    )
    rate_limits: RateLimits | None = Field(
        default=None,
        description="Per-key limits, answered with 429 and `Retry-After`; null: none.",
    )
    max_concurrent_jobs: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Fine-tuning jobs running at once; further jobs wait in `queued` at the gateway. "
            "null: no limit."
        ),
    )
    dataset_retention_days: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Delete a dataset's bytes (here and upstream) this many days after its last use; "
            "null: keep them."
        ),
    )
    webhook_url: AnyHttpUrl | None = Field(
        default=None,
        description=(
            "POSTed, HMAC-signed, when a job or sweep ends; public destinations only unless "
            "the operator allows a network. null: no callbacks."
        ),
    )
    budgets: Budgets | None = Field(
        default=None,
        description=(
            "Spending limits per period: a call or job that could take a limit over is "
            "refused before it reaches the upstream (429 `insufficient_quota`); null: none."
        ),
    )
    opaque_parts: OpaqueParts = Field(
        default="refuse",
        description=(
            "Images, audio and files in requests, which cannot be scanned for PII, under "
            "`pii` `redact` or `block`: `refuse` (400) or `allow` (sent as they are)."
        ),
    )
    hosted_tools: list[HostedTool] = Field(
        default_factory=list,
        description="Responses API hosted tools the org may use, by type; `[]`: none.",
    )
    integrations: list[Integration] = Field(
        default_factory=list,
        description="Fine-tuning job integrations the org may use, by type; `[]`: none.",
    )
    allow_unknown_models: bool = Field(
        default=False,
        description=(
            "Accept `allowed_models` entries that name no known model family (otherwise such "
            "an entry is a 400, so a typo never silently admits nothing)."
        ),
    )

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


def merge_patch(target: Any, patch: Any) -> Any:
    """`target` with the JSON merge patch `patch` applied (RFC 7396): an object merges member by
    member, a null removes the member, anything else replaces what was there."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = merge_patch(merged.get(name), value)
    return merged


def apply_policy_patch(policy: Policy, patch: Any) -> Policy:
    """The policy after a merge patch, validated whole: a field the patch removes (null) takes
    its default."""
    if not isinstance(patch, dict):
        raise InvalidRequest("A policy merge patch must be a JSON object.")
    try:
        return Policy.model_validate(merge_patch(policy.model_dump(mode="json"), patch))
    except ValidationError as error:
        failure = error.errors()[0]
        raise invalid_request(failure, ".".join(map(str, failure["loc"])) or None) from None


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
