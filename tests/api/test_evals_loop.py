"""Evals in the fine-tuning loop through the API: a job naming `eval_id` gets, once it succeeds,
a run on its tuned model and one on its base model (reused by the next job on that base), made
as the job's key and audited; the tuned model beats the base on held-out items. An eval of
another org is a 404 naming `eval_id`, one with no sampling run a 400. A sweep ranking trials by
an eval criterion picks the trial whose model passes most, where the validation loss would have
picked another (a sandbox model trained for fewer epochs remembers less, and twenty epochs on
these eighteen examples overfit)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from service.domain.jobs.metrics import StepRow
from service.domain.sweeps.trials import final_objective
from service.ids import new_id
from tests.api.conftest import Gateway
from tests.api.jobs_helpers import Tenant, tenant, wait_status
from tests.api.sweeps_helpers import create, sweep_body, wait_sweep
from tests.api.test_eval_runs import CRITERIA, completions, finished
from tests.evals_data import SOURCE, held_out_items, training_lines
from tests.support import wait_for

pytestmark = pytest.mark.filterwarnings("ignore:The Evals API is deprecated:DeprecationWarning")
BASE = "gpt-4o-mini"
SNAPSHOT = (
    "gpt-4o-mini-2024-07-18"  # the base model a job on BASE tunes, which its base run samples
)
TEMPLATE_MODEL = "gpt-4.1-nano"  # the eval's first sampling run: its template, not a base run


@pytest.fixture(scope="module")
def org(gateway: Gateway) -> Iterator[tuple[Tenant, str, str]]:
    """An org, its support-desk training file and an eval whose first run samples held-out
    items."""
    with tenant(gateway, role="admin") as org:
        training = org.sdk.files.create(file=("t.jsonl", training_lines()), purpose="fine-tune")
        made = org.sdk.evals.create(data_source_config=SOURCE, testing_criteria=CRITERIA)
        first = org.sdk.evals.runs.create(
            made.id, data_source=completions(TEMPLATE_MODEL, held_out_items())
        )
        assert finished(org.sdk, made.id, first.id).status == "completed"
        yield org, training.id, made.id


def evaluated(http: httpx.Client, job_id: str) -> dict[str, Any]:
    """The job once its eval runs are recorded."""

    def recorded() -> dict[str, Any] | None:
        job: dict[str, Any] = http.get(f"/v1/fine_tuning/jobs/{job_id}").json()
        return job if {"model", "base"} <= set(job.get("eval_runs") or {}) else None

    found: dict[str, Any] = wait_for(recorded, timeout=60, interval=0.2, what="the eval runs")
    return found


def pass_rates(run: Any) -> dict[str, float]:
    rows = run.per_testing_criteria_results
    return {row.testing_criteria: row.passed / (row.passed + row.failed) for row in rows}


def test_a_job_with_an_eval_runs_it_on_its_model_and_its_base_reused_by_the_next(
    gateway: Gateway, org: tuple[Tenant, str, str]
) -> None:
    tenant_, training, eval_id = org
    sdk = tenant_.sdk
    first = sdk.fine_tuning.jobs.create(
        model=BASE, training_file=training, seed=3, extra_body={"eval_id": eval_id}
    )
    assert wait_status(sdk, first.id).status == "succeeded"
    with gateway.client(tenant_.key) as http:
        job = evaluated(http, first.id)
        assert job["eval_id"] == eval_id and job["eval_error"] is None
        listed = http.get("/v1/fine_tuning/jobs", params={"limit": 5}).json()["data"]
        assert next(j for j in listed if j["id"] == first.id)["eval_runs"] == job["eval_runs"]
        runs = {kind: finished(sdk, eval_id, run_id) for kind, run_id in job["eval_runs"].items()}
        assert runs["model"].model == job["fine_tuned_model"] and runs["base"].model == SNAPSHOT
        assert {run.status for run in runs.values()} == {"completed"}
        assert runs["model"].metadata == {"tunegate_job": first.id, "tunegate_eval_of": "model"}
        tuned, base = pass_rates(runs["model"]), pass_rates(runs["base"])
        assert all(tuned[name] > base[name] for name in tuned), (tuned, base)
        compared = http.get(
            f"/v1/evals/{eval_id}/compare",
            params={"runs": f"{runs['base'].id},{runs['model'].id}"},
        ).json()
        assert all(row["interval"][0] > 0 for row in compared["testing_criteria"]), compared

        second = sdk.fine_tuning.jobs.create(
            model=BASE, training_file=training, seed=4, extra_body={"eval_id": eval_id}
        )
        assert wait_status(sdk, second.id).status == "succeeded"
        again = evaluated(http, second.id)
        assert again["eval_runs"]["base"] == job["eval_runs"]["base"]
        assert again["eval_runs"]["model"] not in job["eval_runs"].values()

        all_runs = sdk.evals.runs.list(eval_id, limit=20).data
        assert sorted(run.model for run in all_runs) == sorted(
            [TEMPLATE_MODEL, SNAPSHOT, job["fine_tuned_model"], again["fine_tuned_model"]]
        )
        audited = http.get("/v1/audit", params={"action": "evals.runs.create", "limit": 10}).json()[
            "data"
        ]
        made = {entry["resource_id"]: entry for entry in audited}
        assert set(made) >= {*job["eval_runs"].values(), again["eval_runs"]["model"]}
        assert all(entry["org_id"] == tenant_.org_id for entry in made.values())


def test_an_eval_of_another_org_is_unknown_and_one_without_a_sampling_run_is_refused(
    gateway: Gateway, org: tuple[Tenant, str, str]
) -> None:
    owner, _, eval_id = org
    with tenant(gateway) as other, gateway.client(other.key) as http:
        training = other.sdk.files.create(file=("t.jsonl", training_lines()), purpose="fine-tune")
        body = {"model": BASE, "training_file": training.id}
        for unknown in (eval_id, new_id("eval_")):
            response = http.post("/v1/fine_tuning/jobs", json=body | {"eval_id": unknown})
            error = response.json()["error"]
            assert response.status_code == 404, response.text
            assert (error["param"], error["code"]) == ("eval_id", "not_found")
        empty = other.sdk.evals.create(data_source_config=SOURCE, testing_criteria=CRITERIA)
        response = http.post("/v1/fine_tuning/jobs", json=body | {"eval_id": empty.id})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == "eval_id"
        sweep = sweep_body(training.id, training.id, eval_id=eval_id, objective="eval:exact")
        response = http.post("/v1/sweeps", json=sweep)
        assert response.status_code == 404 and response.json()["error"]["param"] == "eval_id"
        assert http.get("/v1/fine_tuning/jobs").json()["data"] == []
    with gateway.client(owner.key) as http:
        training = owner.sdk.files.list().data[0].id
        sweep = sweep_body(training, training, eval_id=eval_id, objective="eval:nope")
        response = http.post("/v1/sweeps", json=sweep)
        assert response.status_code == 400 and response.json()["error"]["param"] == "objective"


def test_a_sweep_with_an_eval_objective_picks_the_trial_whose_model_passes_most(
    gateway: Gateway, org: tuple[Tenant, str, str]
) -> None:
    tenant_, training, eval_id = org
    with gateway.client(tenant_.key) as http:
        body = sweep_body(
            training,
            training,
            space={"n_epochs": [2, 20]},
            seed=3,
            eval_id=eval_id,
            objective="eval:close",
        )
        sweep = wait_sweep(http, create(http, body)["id"])
        assert sweep["status"] == "succeeded", sweep
        assert (sweep["objective"], sweep["eval_id"]) == ("eval:close", eval_id)
        rates, losses = {}, {}
        for trial in sweep["trials"]:
            job_id = trial["job_id"]
            job = http.get(f"/v1/fine_tuning/jobs/{job_id}").json()
            run = tenant_.sdk.evals.runs.retrieve(job["eval_runs"]["model"], eval_id=eval_id)
            assert run.status == "completed" and run.model == trial["fine_tuned_model"]
            assert trial["eval_run_id"] == run.id
            rates[trial["index"]] = pass_rates(run)["close"]
            assert trial["objective"] == rates[trial["index"]]
            rows = http.get(f"/v1/fine_tuning/jobs/{job_id}/metrics").json()["data"]
            losses[trial["index"]] = final_objective([StepRow(**row) for row in rows], "valid_loss")
        assert rates[1] > rates[0], rates
        assert sweep["best_trial"]["index"] == 1
        assert losses[0] is not None and losses[1] is not None
        assert losses[0][1] < losses[1][1], losses  # the loss would have picked the other
