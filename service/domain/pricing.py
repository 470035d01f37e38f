"""List prices and limits of the fine-tunable models, the other models the proxy serves, and the
costs computed from them.

Owns `service/data/prices.json` (overridable with a JSON file of the same shape): per dated
snapshot of a fine-tunable model (`models`), its aliases, the fine-tuning methods it supports,
its context and training-example token limits, the training price per 1M tokens, and inference
prices per 1M input/output tokens for the base model and for models tuned from it, which OpenAI
bills at different rates. Models that are only served (`serving`: embeddings, moderations,
models tunegate cannot tune) have their inference prices alone. Cached input tokens are billed
at `cached_input_per_1m` where the table has it (else as any input token); reasoning tokens are
output tokens. Moderation is free at OpenAI.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_PRICES_FILE = Path(__file__).resolve().parent.parent / "data" / "prices.json"

Method = Literal["supervised", "dpo", "reinforcement"]
Api = Literal["chat", "completions"]
ServedApi = Literal["chat", "responses", "embeddings", "moderations"]

_PER_MILLION = 1_000_000
MAX_REMEMBERED_NAMES = 4096
# per price table (by identity, the table kept with it): model name -> (rates, context window)
_TERMS: dict[int, tuple[PriceTable, dict[str, tuple[InferencePrice, int | None]]]] = {}


class UnknownModelError(KeyError):
    """The model is neither a priced snapshot, an alias of one, nor tuned from one."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InferencePrice(_Strict):
    input_per_1m: float = Field(ge=0)
    output_per_1m: float = Field(ge=0)
    cached_input_per_1m: float | None = Field(default=None, ge=0)


class ServingPrice(_Strict):
    """A model the proxy serves but tunegate cannot tune: its inference prices only."""

    aliases: list[str] = []
    api: ServedApi = "chat"
    input_per_1m: float = Field(ge=0)
    output_per_1m: float = Field(default=0, ge=0)
    cached_input_per_1m: float | None = Field(default=None, ge=0)
    # Input and output together: what bounds an answer that sets no output cap. Required where
    # output tokens are priced, so a budget's worst case for such a call is never 0.
    context_window: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _bounded_when_output_is_priced(self) -> ServingPrice:
        if self.output_per_1m > 0 and self.context_window is None:
            raise ValueError("a served model with priced output needs its context_window")
        return self

    @property
    def rates(self) -> InferencePrice:
        return InferencePrice(
            input_per_1m=self.input_per_1m,
            output_per_1m=self.output_per_1m,
            cached_input_per_1m=self.cached_input_per_1m,
        )


class ModelPrice(_Strict):
    aliases: list[str] = []
    api: Api = "chat"
    methods: list[Method]
    context_window: int = Field(gt=0)
    max_example_tokens: int = Field(gt=0)
    # None where training is billed by the hour (reinforcement fine-tuning).
    training_per_1m: float | None = Field(default=None, ge=0)
    training_per_hour: float | None = Field(default=None, ge=0)
    base: InferencePrice
    tuned: InferencePrice


class PriceTable(_Strict):
    currency: str = "USD"
    as_of: str | None = None
    models: dict[str, ModelPrice]
    serving: dict[str, ServingPrice] = {}

    @model_validator(mode="after")
    def _aliases_are_unambiguous(self) -> PriceTable:
        seen: set[str] = set(self.models)
        for name in self.serving:
            if name in seen:
                raise ValueError(f"{name!r} is both a fine-tunable and a served model")
            seen.add(name)
        for price in [*self.models.values(), *self.serving.values()]:
            for alias in price.aliases:
                if alias in seen:
                    raise ValueError(f"alias {alias!r} names more than one model")
                seen.add(alias)
        return self

    def snapshot_of(self, name: str) -> str | None:
        """The dated snapshot a name or alias refers to, if the table knows it."""
        if name in self.models:
            return name
        for snapshot, price in self.models.items():
            if name in price.aliases:
                return snapshot
        return None

    def price_of(self, model: str) -> ModelPrice:
        snapshot = self.snapshot_of(base_model_of(model))
        if snapshot is None:
            raise UnknownModelError(model)
        return self.models[snapshot]

    def served_of(self, name: str) -> str | None:
        """The served (not fine-tunable) model a name or alias refers to, if the table has it."""
        if name in self.serving:
            return name
        for model, price in self.serving.items():
            if name in price.aliases:
                return model
        return None

    def rates_of(self, model: str) -> InferencePrice:
        """The inference prices of any priced model: fine-tunable (its base or tuned rates)
        or served."""
        return self.terms_of(model)[0]

    def context_window_of(self, model: str) -> int | None:
        """The context window of any priced model (None: a served model that generates nothing,
        or an unknown one)."""
        try:
            return self.terms_of(model)[1]
        except UnknownModelError:
            return None

    def terms_of(self, model: str) -> tuple[InferencePrice, int | None]:
        """`rates_of` and `context_window_of` together, remembered per name."""
        table, remembered = _TERMS.get(id(self), (None, {}))
        if table is not self:  # (a pydantic private attribute costs more than the lookup)
            remembered = {}
            if len(_TERMS) >= 64:
                _TERMS.clear()
            _TERMS[id(self)] = (self, remembered)
        found = remembered.get(model)
        if found is None:
            found = self._find_terms(model)
            if len(remembered) >= MAX_REMEMBERED_NAMES:
                remembered.clear()
            remembered[model] = found
        return found

    def _find_terms(self, model: str) -> tuple[InferencePrice, int | None]:
        try:
            price = self.price_of(model)
        except UnknownModelError:
            served = None if is_tuned(model) else self.served_of(model)
            if served is None:
                raise
            return self.serving[served].rates, self.serving[served].context_window
        return (price.tuned if is_tuned(model) else price.base), price.context_window

    def served_names(self) -> list[str]:
        """Every served model's name and aliases."""
        return [name for model, p in self.serving.items() for name in (model, *p.aliases)]


def is_tuned(model: str) -> bool:
    return model.startswith("ft:")


def base_model_of(name: str) -> str:
    """`ft:gpt-4o-mini-2024-07-18:org:suffix:id` -> `gpt-4o-mini-2024-07-18`; others unchanged."""
    if is_tuned(name):
        return name.split(":", 2)[1]
    return name


def load_price_table(path: Path | str | None = None) -> PriceTable:
    """The packaged table, or the one in `path` (same JSON shape) when given."""
    if path is None:
        return _packaged_table()
    return PriceTable.model_validate_json(Path(path).read_bytes())


@cache
def _packaged_table() -> PriceTable:
    return PriceTable.model_validate_json(DEFAULT_PRICES_FILE.read_bytes())


def _table(table: PriceTable | None) -> PriceTable:
    return table if table is not None else _packaged_table()


def resolve_model(name: str, table: PriceTable | None = None) -> str:
    """The dated snapshot behind a name, alias or tuned-model name; unknown names unchanged."""
    base = base_model_of(name)
    return _table(table).snapshot_of(base) or base


def is_fine_tunable(model: str, table: PriceTable | None = None) -> bool:
    """True for a priced snapshot or an alias of one (tuned models are tunable further too)."""
    return _table(table).snapshot_of(base_model_of(model)) is not None


def supports_method(model: str, method: Method, table: PriceTable | None = None) -> bool:
    try:
        return method in _table(table).price_of(model).methods
    except UnknownModelError:
        return False


def max_example_tokens(model: str, table: PriceTable | None = None) -> int:
    return _table(table).price_of(model).max_example_tokens


def training_cost(model: str, tokens: int, table: PriceTable | None = None) -> float | None:
    """Cost of training on `tokens` billed tokens (already times epochs); None if billed hourly."""
    per_1m = _table(table).price_of(model).training_per_1m
    if per_1m is None:
        return None
    return tokens * per_1m / _PER_MILLION


def inference_cost(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    table: PriceTable | None = None,
    cached_tokens: int = 0,
) -> float:
    """Cost of one call; `ft:` models are billed at their base model's tuned-model rates, the
    `cached_tokens` of the prompt at the cached-input rate where there is one."""
    rates = _table(table).rates_of(model)
    cached = min(max(cached_tokens, 0), prompt_tokens)
    cached_rate = rates.cached_input_per_1m
    if cached_rate is None:
        cached_rate = rates.input_per_1m
    return (
        (prompt_tokens - cached) * rates.input_per_1m
        + cached * cached_rate
        + completion_tokens * rates.output_per_1m
    ) / _PER_MILLION
