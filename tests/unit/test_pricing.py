import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.domain import pricing

TUNED = "ft:gpt-4o-mini-2024-07-18:acme:support:AbC123"


def test_packaged_table_loads_with_known_list_prices() -> None:
    table = pricing.load_price_table()
    mini = table.models["gpt-4o-mini-2024-07-18"]
    assert mini.training_per_1m == 3.0
    assert (mini.tuned.input_per_1m, mini.tuned.output_per_1m) == (0.3, 1.2)
    assert table.models["gpt-4.1-mini-2025-04-14"].training_per_1m == 5.0
    assert table.models["gpt-3.5-turbo-0125"].max_example_tokens == 16385


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini-2024-07-18"),
        (TUNED, "gpt-4o-mini-2024-07-18"),
        ("ft:gpt-4.1:acme::x", "gpt-4.1-2025-04-14"),
        ("not-a-model", "not-a-model"),
    ],
)
def test_resolve_model(name: str, expected: str) -> None:
    assert pricing.resolve_model(name) == expected


def test_base_model_of_strips_the_tuned_suffix_only() -> None:
    assert pricing.base_model_of(TUNED) == "gpt-4o-mini-2024-07-18"
    assert pricing.base_model_of("gpt-4o-mini") == "gpt-4o-mini"


def test_is_fine_tunable() -> None:
    assert pricing.is_fine_tunable("gpt-4o-mini")
    assert pricing.is_fine_tunable("babbage-002")
    assert pricing.is_fine_tunable(TUNED)
    assert not pricing.is_fine_tunable("gpt-4o-2024-11-20")


def test_training_cost() -> None:
    assert pricing.training_cost("gpt-4o-mini", 1_000_000) == pytest.approx(3.0)
    assert pricing.training_cost("gpt-4.1-2025-04-14", 200_000) == pytest.approx(5.0)
    assert pricing.training_cost("o4-mini", 1_000_000) is None


def test_inference_cost_bills_tuned_models_at_tuned_rates() -> None:
    base = pricing.inference_cost("gpt-4o-mini", 1_000_000, 1_000_000)
    tuned = pricing.inference_cost(TUNED, 1_000_000, 1_000_000)
    assert base == pytest.approx(0.15 + 0.60)
    assert tuned == pytest.approx(0.30 + 1.20)


def test_unknown_model_raises() -> None:
    with pytest.raises(pricing.UnknownModelError):
        pricing.inference_cost("gpt-9", 1, 1)


def test_methods_and_limits() -> None:
    assert pricing.supports_method("gpt-4o-2024-08-06", "dpo")
    assert not pricing.supports_method("gpt-3.5-turbo", "dpo")
    assert pricing.supports_method("o4-mini", "reinforcement")
    assert pricing.max_example_tokens("gpt-4.1-mini") == 65536


def test_override_file(tmp_path: Path) -> None:
    custom = {
        "models": {
            "my-model-1": {
                "aliases": ["my-model"],
                "methods": ["supervised"],
                "context_window": 1000,
                "max_example_tokens": 1000,
                "training_per_1m": 1.0,
                "base": {"input_per_1m": 1.0, "output_per_1m": 2.0},
                "tuned": {"input_per_1m": 3.0, "output_per_1m": 4.0},
            }
        }
    }
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(custom))
    table = pricing.load_price_table(path)
    assert pricing.training_cost("my-model", 2_000_000, table) == pytest.approx(2.0)
    assert not pricing.is_fine_tunable("gpt-4o-mini", table)


def test_override_file_rejects_unknown_fields_and_ambiguous_aliases(tmp_path: Path) -> None:
    entry = {
        "aliases": ["x"],
        "methods": ["supervised"],
        "context_window": 10,
        "max_example_tokens": 10,
        "base": {"input_per_1m": 1, "output_per_1m": 1},
        "tuned": {"input_per_1m": 1, "output_per_1m": 1},
    }
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": {"a": entry, "b": entry}}))
    with pytest.raises(ValidationError):
        pricing.load_price_table(path)
    path.write_text(json.dumps({"models": {"a": {**entry, "colour": "red"}}}))
    with pytest.raises(ValidationError):
        pricing.load_price_table(path)
