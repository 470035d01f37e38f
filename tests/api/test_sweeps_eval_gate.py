"""A sweep's promote behind the evals promote gate: with `require`, the alias moves to the best
trial's model only when the eval's latest completed runs show it beats the alias's current model
by the margin; refused with the reason (no current model, no runs, too little improvement)
otherwise, and the alias stays where it was."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from service.ids import new_id
from tests.api.conftest import Gateway
from tests.api.jobs_helpers import Tenant, tenant
from tests.api.sweeps_helpers import create, sweep_body, wait_sweep
from tests.api.test_eval_runs import BASE, CRITERIA, completions, finished
from tests.evals_data import SOURCE, held_out_items, training_lines, unrelated_items

pytestmark = pytest.mark.filterwarnings("ignore:The Evals API is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def swept(gateway: Gateway) -> Iterator[tuple[Tenant, dict[str, Any]]]:
    """A finished two-trial sweep over the support-desk training lines."""
    with tenant(gateway, role="admin") as org, gateway.client(org.key) as http:
        train = org.sdk.files.create(file=("t.jsonl", training_lines()), purpose="fine-tune").id
        valid = org.sdk.files.create(file=("v.jsonl", training_lines()), purpose="fine-tune").id
        body = sweep_body(train, valid, space={"n_epochs": [3, 9]}, seed=3)
        sweep = wait_sweep(http, create(http, body)["id"])
        assert sweep["status"] == "succeeded", sweep
        yield org, sweep


def evidence(org: Tenant, model: str, items: list[dict[str, str]]) -> str:
    """An eval with one completed run on the base model and one on `model`."""
    made = org.sdk.evals.create(data_source_config=SOURCE, testing_criteria=CRITERIA)
    for m in (BASE, model):
        run = org.sdk.evals.runs.create(made.id, data_source=completions(m, items))
        assert finished(org.sdk, made.id, run.id).status == "completed"
    return made.id


def test_a_sweep_promotes_its_best_only_on_the_evals_evidence(
    gateway: Gateway, swept: tuple[Tenant, dict[str, Any]]
) -> None:
    org, sweep = swept
    best = sweep["best_trial"]["fine_tuned_model"]
    held, other = evidence(org, best, held_out_items()), evidence(org, best, unrelated_items())
    empty = org.sdk.evals.create(data_source_config=SOURCE, testing_criteria=CRITERIA).id
    with gateway.client(org.key) as http:

        def promote(eval_id: str, min_improvement: float = 0.05) -> Any:
            gate = {"eval_id": eval_id, "min_improvement": min_improvement, "confidence": 0.95}
            body = {"alias": "support", "require": gate}
            return http.post(f"/v1/sweeps/{sweep['id']}/promote", json=body)

        def refused(response: Any, words: str) -> None:
            error = response.json()["error"]
            assert response.status_code == 400 and words in error["message"], response.text
            assert (error["param"], error["code"]) == ("require", "promotion_refused")

        refused(promote(held), "no current model")
        assert http.get("/v1/aliases/support").status_code == 404
        assert http.put("/v1/aliases/support", json={"model": BASE}).status_code == 200
        refused(promote(empty), "no completed run")
        refused(promote(other), "lower bound")
        assert http.get("/v1/aliases/support").json()["model"] == BASE

        unknown = promote(new_id("eval_"))
        assert unknown.status_code == 404, unknown.text
        bad = http.post(
            f"/v1/sweeps/{sweep['id']}/promote",
            json={"alias": "support", "require": {"eval_id": held, "confidence": 2}},
        )
        assert bad.status_code == 400 and "confidence" in bad.json()["error"]["param"], bad.text
        assert http.get("/v1/aliases/support").json()["model"] == BASE

        accepted = promote(held)
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["model"] == best
        assert accepted.json()["job_id"] == sweep["best_trial"]["job_id"]
        assert http.get("/v1/aliases/support").json()["model"] == best
        audited = http.get("/v1/audit", params={"action": "sweeps.promote", "limit": 10}).json()
        details = [entry["details"] for entry in audited["data"] if entry["status"] == 200]
        assert [d["require"]["eval_id"] for d in details] == [held]
