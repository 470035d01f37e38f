"""Budgets over fine-tuning: a job reserves its dataset's billing tokens times its epochs when it
is created and settles with its real `trained_tokens`; a job or a sweep the budget cannot hold is
a 400 on `training_file` before anything reaches the upstream. A sweep holds one reservation for
all its trials; each trial's job settles its share, and a cancelled sweep gives back the shares
of trials it never launched."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from service.domain.budgets.costs import training_worst_case
from service.domain.pricing import load_price_table, training_cost
from tests.api.conftest import Gateway
from tests.api.jobs_helpers import tenant, upload, wait_status
from tests.api.sweeps_helpers import create, sweep_body, wait_sweep
from tests.support import wait_for

PRICES = load_price_table()
MODEL = "gpt-4o-mini-2024-07-18"


def scopes(gateway: Gateway, org_id: str) -> dict[str, dict[str, Any]]:
    report = gateway.admin.get(f"/admin/orgs/{org_id}/budget").json()
    return {scope["scope"]: scope for scope in report["scopes"]}


def upstream_job_creates(gateway: Gateway) -> int:
    requests = gateway.upstream_requests("/v1/fine_tuning/jobs")
    return sum(
        1 for entry in requests if entry["method"] == "POST" and entry["path"].endswith("jobs")
    )


def billing_tokens(sdk: openai.OpenAI, file_id: str) -> int:
    response = sdk.get(f"/files/{file_id}/report", cast_to=httpx.Response)
    found = [c for c in response.json()["estimated_costs"] if c["model"] == MODEL]
    return int(found[0]["billing_tokens"])


def test_a_job_over_budget_is_refused_before_the_upstream(gateway: Gateway) -> None:
    with tenant(gateway, {"budgets": {"per_kind": {"training": 0.000001}}}) as org:
        file_id = upload(org.sdk)
        before = upstream_job_creates(gateway)
        with pytest.raises(openai.BadRequestError) as refused:
            org.sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)
        assert refused.value.code == "insufficient_quota"
        assert refused.value.param == "training_file"
        assert org.sdk.fine_tuning.jobs.list().data == []
        assert upstream_job_creates(gateway) == before
        assert scopes(gateway, org.org_id)["kind:training"]["reserved_usd"] == 0


def test_a_job_reserves_its_worst_case_and_settles_with_trained_tokens(gateway: Gateway) -> None:
    with tenant(gateway, {"budgets": {"monthly_usd": 5}}) as org:
        file_id = upload(org.sdk)
        tokens = billing_tokens(org.sdk, file_id)
        job = org.sdk.fine_tuning.jobs.create(
            model="gpt-4o-mini", training_file=file_id, hyperparameters={"n_epochs": 3}
        )
        reserved = scopes(gateway, org.org_id)["kind:training"]["reserved_usd"]
        assert reserved == pytest.approx(training_cost(MODEL, tokens * 3, PRICES), abs=1e-9)
        done = wait_status(org.sdk, job.id, ("succeeded",))
        assert done.trained_tokens is not None
        spent = training_cost(MODEL, done.trained_tokens, PRICES) or 0.0

        def settled() -> dict[str, Any] | None:
            found = scopes(gateway, org.org_id)
            return found if found["org"]["reserved_usd"] == 0 else None

        found = wait_for(settled, timeout=60, what="the job's reservation settled")
    assert spent <= reserved
    assert found["kind:training"]["spent_usd"] == pytest.approx(spent, abs=1e-9)
    assert found["org"]["remaining_usd"] == pytest.approx(5 - spent, abs=1e-9)


def test_a_sweep_the_budget_cannot_hold_is_refused_before_the_upstream(
    gateway: Gateway,
) -> None:
    with tenant(gateway) as org:
        file_id = upload(org.sdk)
        one_trial = training_cost(MODEL, billing_tokens(org.sdk, file_id) * 9, PRICES) or 0.0
        gateway.admin.patch(
            f"/admin/orgs/{org.org_id}/policy", json={"budgets": {"monthly_usd": one_trial * 2}}
        )
        before = upstream_job_creates(gateway)
        with gateway.client(org.key) as client:
            refused = client.post("/v1/sweeps", json=sweep_body(file_id, upload(org.sdk)))
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["code"] == "insufficient_quota"
            assert refused.json()["error"]["param"] == "training_file"
            assert client.get("/v1/fine_tuning/jobs").json()["data"] == []
        assert upstream_job_creates(gateway) == before
        assert scopes(gateway, org.org_id)["org"]["reserved_usd"] == 0


def sweep_share(billing: int, epochs: list[int]) -> float:
    """What a sweep of one trial per epoch count reserves: each trial's worst case, summed."""
    return sum(training_worst_case(MODEL, billing * count, PRICES) for count in epochs) / 1e9


def settled_sweep(gateway: Gateway, org_id: str, ended: dict[str, Any]) -> tuple[float, Any]:
    """What the sweep's trials cost, and the org's scopes once nothing is reserved."""
    trained = [trial["trained_tokens"] or 0 for trial in ended["trials"]]
    spent = sum(training_cost(MODEL, count, PRICES) or 0.0 for count in trained)
    found = wait_for(
        lambda: (s := scopes(gateway, org_id))["org"]["reserved_usd"] == 0 and s,
        timeout=60,
        what="every share of the sweep's reservation settled or given back",
    )
    return spent, found


def test_a_sweep_holds_one_reservation_for_all_its_trials_until_each_settles(
    gateway: Gateway,
) -> None:
    with tenant(gateway) as org:
        file_id = upload(org.sdk)
        billing = billing_tokens(org.sdk, file_id)
        held = sweep_share(billing, [1, 2])
        gateway.admin.patch(
            f"/admin/orgs/{org.org_id}/policy", json={"budgets": {"monthly_usd": held * 1.5}}
        )
        body = sweep_body(file_id, upload(org.sdk), space={"n_epochs": [1, 2]})
        with gateway.client(org.key) as client:
            sweep = create(client, body)
            assert scopes(gateway, org.org_id)["kind:training"]["reserved_usd"] == pytest.approx(
                held, abs=1e-9
            )
            # the sweep's trials hold the rest of the budget whether they started or not
            with pytest.raises(openai.BadRequestError) as refused:
                org.sdk.fine_tuning.jobs.create(
                    model="gpt-4o-mini", training_file=file_id, hyperparameters={"n_epochs": 2}
                )
            assert refused.value.code == "insufficient_quota"
            ended = wait_sweep(client, sweep["id"])
        assert ended["status"] == "succeeded"
        spent, found = settled_sweep(gateway, org.org_id, ended)
    assert found["kind:training"]["spent_usd"] == pytest.approx(spent, abs=1e-8)
    assert found["org"]["remaining_usd"] == pytest.approx(held * 1.5 - spent, abs=1e-8)


def test_a_cancelled_sweep_gives_back_the_shares_of_trials_it_never_launched(
    gateway: Gateway,
) -> None:
    with tenant(gateway, {"budgets": {"monthly_usd": 5}}) as org:
        file_id = upload(org.sdk)
        body = sweep_body(file_id, upload(org.sdk), space={"n_epochs": [1, 2, 3]}, max_parallel=1)
        with gateway.client(org.key) as client:
            sweep = create(client, body)
            assert scopes(gateway, org.org_id)["org"]["reserved_usd"] > 0
            assert client.post(f"/v1/sweeps/{sweep['id']}/cancel").status_code == 200
            ended = wait_sweep(client, sweep["id"])
        assert ended["status"] == "cancelled"
        assert len([trial for trial in ended["trials"] if trial.get("job_id")]) < 3
        spent, found = settled_sweep(gateway, org.org_id, ended)
    assert found["org"]["spent_usd"] == pytest.approx(spent, abs=1e-8)
