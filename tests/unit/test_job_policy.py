"""Grader routing and integrations, pure: `apply_job_policy` with a route function."""

from __future__ import annotations

from functools import partial

import pytest

from service.domain.inference.request import route_model
from service.domain.jobs.policy import apply_job_policy
from service.domain.jobs.request import parse_job_request
from service.domain.tenancy.policy import Policy
from service.errors import InvalidRequest

TUNED = "ft:gpt-4o-mini-2024-07-18:acme::abc123"


def request(grader: dict) -> object:
    method = {"type": "reinforcement", "reinforcement": {"grader": grader}}
    return parse_job_request({"model": "o4-mini", "training_file": "file-x", "method": method})


def test_an_alias_grader_is_sent_as_the_model_it_routes_to() -> None:
    policy = Policy(pii="allow", allowed_models=["o4-mini"])
    route = partial(route_model, policy=policy, tuned={TUNED: 1}, aliases={"judge": TUNED})
    grader = {"type": "label_model", "model": "judge", "input": [], "labels": ["a"]}
    applied = apply_job_policy(request(grader), policy, route)  # type: ignore[arg-type]
    assert applied.method.reinforcement["grader"]["model"] == TUNED
    assert grader["model"] == "judge"  # the caller's body is not touched


def test_a_grader_without_a_routable_model_is_refused() -> None:
    policy = Policy(pii="allow", allowed_models=["o4-mini"])
    route = partial(route_model, policy=policy, tuned={}, aliases={})
    with pytest.raises(InvalidRequest) as caught:
        apply_job_policy(request({"type": "score_model", "model": ""}), policy, route)  # type: ignore[arg-type]
    assert caught.value.param == "method.reinforcement.grader.model"
