"""A reinforcement job's grader and a job's integrations under the org's policy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.conftest import Gateway
from tests.api.jobs_helpers import Tenant, tenant, upload

RFT = "o4-mini"


@pytest.fixture(scope="module")
def org(gateway: Gateway) -> Iterator[Tenant]:
    policy = {"allowed_models": [RFT, "gpt-4o-mini"], "pii": "block"}
    with tenant(gateway, policy=policy) as found:
        yield found


@pytest.fixture(scope="module")
def training(org: Tenant) -> str:
    return upload(org.sdk)


def rft(training: str, grader: dict[str, Any], **fields: Any) -> dict[str, Any]:
    method = {"type": "reinforcement", "reinforcement": {"grader": grader}}
    return {"model": RFT, "training_file": training, "method": method, **fields}


def score_grader(model: str, text: str = "Score the answer from 0 to 1.") -> dict[str, Any]:
    return {
        "type": "score_model",
        "name": "judge",
        "model": model,
        "input": [{"role": "system", "content": text}],
    }


def create(gateway: Gateway, org: Tenant, body: dict[str, Any]) -> Any:
    with gateway.client(org.key) as client:
        return client.post("/v1/fine_tuning/jobs", json=body)


@pytest.mark.parametrize(
    ("grader", "param"),
    [
        (score_grader("gpt-4.1"), "method.reinforcement.grader.model"),
        (
            score_grader("ft:gpt-4o-mini-2024-07-18:other-org::abc123"),
            "method.reinforcement.grader.model",
        ),
        (
            {"type": "multi", "graders": {"a": score_grader("gpt-4o")}, "calculate_output": "a"},
            "method.reinforcement.grader.graders.a.model",
        ),
    ],
    ids=["base model outside allowed_models", "another org's tuned model", "inside a multi grader"],
)
def test_a_grader_model_must_route_for_the_org(
    gateway: Gateway, org: Tenant, training: str, grader: dict[str, Any], param: str
) -> None:
    response = create(gateway, org, rft(training, grader))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_grader_text_passes_the_pii_policy(gateway: Gateway, org: Tenant, training: str) -> None:
    grader = score_grader(
        "gpt-4o-mini", "Reward answers that mail bob@example.com, SSN 321-54-9876"
    )
    response = create(gateway, org, rft(training, grader))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "pii_blocked"
    assert error["pii_paths"] == ["method.reinforcement.grader.input[0].content"]
    assert set(error["pii_entities"]) == {"EMAIL", "US_SSN"}
    assert "bob@" not in response.text and "321-54" not in response.text


def test_grader_text_is_redacted_under_redact(gateway: Gateway) -> None:
    with tenant(gateway, policy={"pii": "redact", "allowed_models": [RFT, "gpt-4o-mini"]}) as org:
        training = upload(org.sdk)
        grader = score_grader("gpt-4o-mini", "Prefer answers for bob@example.com")
        response = create(gateway, org, rft(training, grader))
        assert response.status_code == 200, response.text
        sent = response.json()["method"]["reinforcement"]["grader"]
        assert sent["input"][0]["content"] == "Prefer answers for [EMAIL]"


def test_integrations_are_off_unless_the_policy_allows_them(gateway: Gateway) -> None:
    wandb = [{"type": "wandb", "wandb": {"project": "tuning"}}]
    with tenant(gateway) as org:
        training = upload(org.sdk)
        body = {"model": "gpt-4o-mini", "training_file": training, "integrations": wandb}
        refused = create(gateway, org, body)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == "integrations[0].type"
    with tenant(gateway, policy={"integrations": ["wandb"]}) as allowed:
        training = upload(allowed.sdk)
        body = {"model": "gpt-4o-mini", "training_file": training, "integrations": wandb}
        assert create(gateway, allowed, body).status_code == 200
