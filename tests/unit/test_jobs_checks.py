"""Checking a parsed job against the price table, the org's policy and the files' reports."""

from __future__ import annotations

from typing import Any

import pytest

from service.domain.jobs.checks import FileFacts, check_job_request, required_format
from service.domain.jobs.request import parse_job_request
from service.domain.pricing import load_price_table
from service.domain.tenancy.policy import Policy
from service.errors import InvalidRequest

PRICES = load_price_table()
CHAT = FileFacts(id="file-train", format="chat", examples=50)
DPO = {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}}


def check(
    policy: Policy | None = None,
    training: FileFacts = CHAT,
    validation: FileFacts | None = None,
    **overrides: Any,
) -> Any:
    request = parse_job_request({"model": "gpt-4o-mini", "training_file": training.id, **overrides})
    return check_job_request(request, policy or Policy(), PRICES, training, validation)


def refused_param(**kwargs: Any) -> str | None:
    with pytest.raises(InvalidRequest) as raised:
        check(**kwargs)
    return raised.value.param


def test_a_good_request_resolves_the_snapshot() -> None:
    checked = check()
    assert checked.base_model == "gpt-4o-mini-2024-07-18"
    assert checked.method == "supervised"


def test_unknown_or_untunable_models_are_refused() -> None:
    assert refused_param(model="gpt-5-imaginary") == "model"
    assert refused_param(model="gpt-4o-2024-11-20") == "model"


def test_tuned_models_resolve_to_their_base() -> None:
    checked = check(model="ft:gpt-4o-mini-2024-07-18:acme:support:abc123")
    assert checked.base_model == "gpt-4o-mini-2024-07-18"


def test_policy_entry_admits_itself_and_its_dated_snapshots() -> None:
    by_family = Policy(allowed_models=["gpt-4o-mini"])
    by_snapshot = Policy(allowed_models=["gpt-4o-mini-2024-07-18"])
    assert check(policy=by_family, model="gpt-4o-mini-2024-07-18").base_model
    assert check(policy=by_family, model="gpt-4o-mini").base_model
    assert check(policy=by_snapshot, model="gpt-4o-mini-2024-07-18").base_model
    # The undated name may move to a newer snapshot upstream: a dated entry does not admit it,
    # exactly as the completion proxy decides.
    with pytest.raises(InvalidRequest, match="allowed_models"):
        check(policy=by_snapshot, model="gpt-4o-mini")
    with pytest.raises(InvalidRequest, match="not allowed") as raised:
        check(policy=Policy(allowed_models=["gpt-4.1"]))
    assert (raised.value.param, raised.value.code) == ("model", "model_not_allowed")


def test_method_must_be_supported_by_the_model() -> None:
    assert refused_param(model="gpt-3.5-turbo", method=DPO) == "method.type"
    assert refused_param(model="o4-mini") == "method.type"


def test_dpo_needs_preference_data() -> None:
    preference = FileFacts(id="file-pref", format="preference")
    assert check(training=preference, method=DPO).method == "dpo"
    assert refused_param(method=DPO) == "training_file"


def test_legacy_completion_models_need_prompt_completion_data() -> None:
    completion = FileFacts(id="file-pc", format="completion")
    assert check(model="babbage-002", training=completion).base_model == "babbage-002"
    assert refused_param(model="davinci-002") == "training_file"
    assert refused_param(training=completion) == "training_file"


def test_validation_file_must_fit_too() -> None:
    wrong = FileFacts(id="file-valid", format="preference")
    assert refused_param(validation=wrong, validation_file="file-valid") == "validation_file"
    right = FileFacts(id="file-valid", format="chat")
    assert check(validation=right, validation_file="file-valid").method == "supervised"


@pytest.mark.parametrize(
    "facts",
    [
        FileFacts(id="file-x", format="chat", status="error"),
        FileFacts(id="file-x", format="chat", status="deleted"),
        FileFacts(id="file-x", format="chat", purpose="assistants"),
        FileFacts(id="file-x", format=None),
    ],
)
def test_unusable_training_files_are_refused(facts: FileFacts) -> None:
    assert refused_param(training=facts) == "training_file"


def test_validation_split_needs_eleven_examples() -> None:
    small = FileFacts(id="file-small", format="chat", examples=10)
    assert refused_param(training=small, validation_split=0.2) == "validation_split"
    enough = FileFacts(id="file-ok", format="chat", examples=11)
    assert check(training=enough, validation_split=0.2).request.validation_split == 0.2


def test_reinforcement_formats_are_left_to_the_upstream() -> None:
    assert required_format("o4-mini-2025-04-16", "reinforcement", PRICES) is None
    method = {"type": "reinforcement", "reinforcement": {"grader": {"type": "string_check"}}}
    assert check(model="o4-mini", method=method).method == "reinforcement"
