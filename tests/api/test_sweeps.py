"""Hyperparameter sweeps against the sandbox upstream, whose loss curves depend on the
hyperparameters with a known best: a grid and a random search find it, early stopping cancels the
trials it should and no others, promote routes an alias to the best model, trials are ordinary
jobs, and a trial created by a worker that died before recording it is not created twice."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from service.domain.charts.charts import HIGHLIGHT
from service.domain.sweeps.request import SWEEP_KEY, TRIAL_KEY, parse_sweep_request, trial_body
from service.domain.sweeps.trials import plan_trials
from service.domain.tenancy.access import Principal
from service.operations.jobs import create as jobs
from service.operations.sweeps.runner import trial_idempotency_key
from service.sandbox import start_in_thread, training
from tests.api.conftest import GATEWAY_RUN, Gateway, gateway_settings, running_gateway
from tests.api.jobs_helpers import tenant, upload, upstream_creates, wait_status
from tests.api.sweeps_helpers import (
    STEADY_SANDBOX,
    create,
    hooks,
    hyperparameters,
    predicted_curve,
    sweep_body,
    sweep_jobs,
    wait_sweep,
)
from tests.support import wait_for
from workers.runtime import build_context

TRAINING_EXAMPLES = 20
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def steady(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    sandbox = start_in_thread(STEADY_SANDBOX)
    settings = gateway_settings(
        tmp_path_factory.mktemp("steady"), sandbox.base_url_for(GATEWAY_RUN)
    )
    try:
        with running_gateway(settings, sandbox) as running:
            yield running
    finally:
        sandbox.stop()


def test_a_grid_finds_the_known_best_and_promotes_it(gateway: Gateway) -> None:
    with (
        hooks() as receiver,
        tenant(gateway, policy={"webhook_url": receiver.url}, role="admin") as org,
        gateway.client(org.key) as http,
    ):
        assert gateway.admin.post(f"/admin/orgs/{org.org_id}/webhook-secret").status_code == 200
        train, valid = upload(org.sdk, TRAINING_EXAMPLES), upload(org.sdk, 10, "valid.jsonl")
        created = create(http, sweep_body(train, valid, max_parallel=3))
        assert created["status"] == "running" and len(created["trials"]) == 6
        assert created["estimated_trained_tokens"] > 0 and created["estimated_cost"] > 0
        sweep = wait_sweep(http, created["id"])
        assert sweep["status"] == "succeeded"
        assert [trial["status"] for trial in sweep["trials"]] == ["succeeded"] * 6
        best = sweep["best_trial"]
        assert hyperparameters(best) == training.best_hyperparameters(TRAINING_EXAMPLES)
        assert best["objective"] == training.best_valid_loss(TRAINING_EXAMPLES)
        assert best["objective"] == min(trial["objective"] for trial in sweep["trials"])
        assert all(trial["trained_tokens"] > 0 for trial in sweep["trials"])
        assert all(trial["estimated_cost"] > 0 for trial in sweep["trials"])
        assert sweep["trained_tokens"] == sum(t["trained_tokens"] for t in sweep["trials"])

        listed = sweep_jobs(http, sweep["id"])
        assert sorted(job["id"] for job in listed) == sorted(t["job_id"] for t in sweep["trials"])
        assert {job["metadata"][TRIAL_KEY] for job in listed} == {str(i) for i in range(6)}

        promoted = http.post(f"/v1/sweeps/{sweep['id']}/promote", json={"alias": "best-bot"})
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["model"] == best["fine_tuned_model"]
        answer = org.sdk.chat.completions.create(
            model="best-bot", messages=[{"role": "user", "content": "hi"}]
        )
        assert answer.model == best["fine_tuned_model"]

        chart = http.get(f"/v1/sweeps/{sweep['id']}/chart.svg")
        assert chart.headers["content-type"].startswith("image/svg+xml")
        root = ET.fromstring(chart.text)
        labels = ["".join(node.itertext()) for node in root.iter(f"{SVG}text")]
        assert "Best" in labels and "#4 ep=9 lr=1.0" in labels
        drawn = list(root.iter(f"{SVG}polyline"))
        assert len(drawn) == 6 and drawn[-1].get("stroke") == HIGHLIGHT  # the best, on top

        [event] = wait_for(
            lambda: receiver.of_type("fine_tuning.sweep.succeeded"), timeout=30, what="callback"
        )
        assert event["data"]["id"] == sweep["id"]
        assert event["data"]["best_trial"]["job_id"] == best["job_id"]
        actions = [e["action"] for e in http.get("/v1/audit", params={"limit": 100}).json()["data"]]
        for action in ("sweeps.create", "sweeps.succeeded", "sweeps.promote"):
            assert actions.count(action) == 1
        assert actions.count("sweeps.trial_created") == 6
        assert actions.count("jobs.succeeded") == 6


def test_a_random_search_finds_the_known_best(gateway: Gateway) -> None:
    best = training.best_hyperparameters(TRAINING_EXAMPLES)
    space = {"n_epochs": [3, 9, 14], "learning_rate_multiplier": [0.3, 1.0, 3.0]}
    parsed = parse_sweep_request(sweep_body("f", "v", space=space, search={"type": "grid"}))
    planned = {
        seed: plan_trials(parsed.space, "random", seed, 5)
        for seed in range(50)  # a seed whose five draws of the nine include the best
    }
    seed = next(
        s
        for s, plan in planned.items()
        if hyperparameters({"hyperparameters": plan[0]}) != best
        and any(hyperparameters({"hyperparameters": p}) == best for p in plan)
    )
    with tenant(gateway) as org, gateway.client(org.key) as http:
        train, valid = upload(org.sdk, TRAINING_EXAMPLES), upload(org.sdk, 10, "valid.jsonl")
        body = sweep_body(
            train, valid, space=space, search={"type": "random", "seed": seed}, max_trials=5
        )
        created: Any = org.sdk.post("/sweeps", cast_to=object, body=body)  # as the README shows
        sweep = wait_sweep(http, created["id"])
    assert sweep["status"] == "succeeded"
    assert sweep["search"] == {"type": "random", "seed": seed}
    assert [trial["hyperparameters"] for trial in sweep["trials"]] == planned[seed]
    assert hyperparameters(sweep["best_trial"]) == best
    assert sweep["best_trial"]["index"] != 0


def test_early_stopping_cancels_the_trials_it_should_and_no_others(steady: Gateway) -> None:
    """One trial at a time, so the reference is known: the best (learning rate 1.0) runs first;
    2.0 stays within the margin of it at every step and runs to the end; 0.3 falls behind."""
    rule = {"min_steps": 1, "margin": 0.2}
    space = {"n_epochs": [9], "learning_rate_multiplier": [1.0, 2.0, 0.3]}
    with tenant(steady) as org, steady.client(org.key) as http:
        train, valid = upload(org.sdk, TRAINING_EXAMPLES), upload(org.sdk, 10, "valid.jsonl")
        body = sweep_body(train, valid, space=space, max_parallel=1, early_stop=rule)
        sweep = wait_sweep(http, create(http, body)["id"], timeout=180)
        reference = predicted_curve(hyperparameters(sweep["trials"][0]), TRAINING_EXAMPLES, 7)
        expected = []
        for trial in sweep["trials"]:
            curve = predicted_curve(hyperparameters(trial), TRAINING_EXAMPLES, 7)
            gaps = [value - dict(reference)[step] for step, value in curve]
            expected.append(max(gaps) > rule["margin"])
        assert expected == [False, False, True]  # the sandbox's curves, independently of tunegate
        assert [trial["early_stopped"] for trial in sweep["trials"]] == expected
        assert [trial["status"] for trial in sweep["trials"]] == [
            "succeeded",
            "succeeded",
            "cancelled",
        ]
        stop = sweep["trials"][2]["stopped"]
        assert stop["reference_trial"] == 0 and stop["step"] == reference[0][0]
        assert stop["value"] - stop["reference"] > rule["margin"]
        assert sweep["status"] == "succeeded" and sweep["best_trial"]["index"] == 0
        assert wait_status(org.sdk, sweep["trials"][2]["job_id"]).status == "cancelled"
        chart = ET.fromstring(http.get(f"/v1/sweeps/{sweep['id']}/chart.svg").text)
        labels = ["".join(node.itertext()) for node in chart.iter(f"{SVG}text")]
        assert sum(label.endswith("(stopped)") for label in labels) == 1
        assert labels[0].startswith("Sweep of ") and labels[0].endswith("— succeeded")
        assert "1 stopped early" in labels[1] and "best #0" in labels[1]
        dashed = [node for node in chart.iter(f"{SVG}polyline") if node.get("stroke-dasharray")]
        assert len(dashed) >= 1


def test_cancel_stops_every_running_trial_and_launches_no_more(steady: Gateway) -> None:
    space = {"n_epochs": [3], "learning_rate_multiplier": [0.5, 1.0, 2.0, 3.0]}
    with tenant(steady) as org, steady.client(org.key) as http:
        train, valid = upload(org.sdk, TRAINING_EXAMPLES), upload(org.sdk, 10, "valid.jsonl")
        created = create(http, sweep_body(train, valid, space=space, max_parallel=2))
        running = wait_for(
            lambda: [
                t
                for t in http.get(f"/v1/sweeps/{created['id']}").json()["trials"]
                if t["status"] == "running"
            ],
            timeout=60,
            what="trials running",
        )
        assert len(running) <= 2
        cancelled = http.post(f"/v1/sweeps/{created['id']}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelling"
        sweep = wait_sweep(http, created["id"])
        assert sweep["status"] == "cancelled"
        statuses = [trial["status"] for trial in sweep["trials"]]
        assert statuses[:2] == ["cancelled", "cancelled"] and statuses[2:] == ["skipped"] * 2
        assert len(sweep_jobs(http, created["id"])) == 2
        again = http.post(f"/v1/sweeps/{created['id']}/cancel")
        assert again.status_code == 200 and again.json()["status"] == "cancelled"
        no_best = http.post(f"/v1/sweeps/{created['id']}/promote", json={"alias": "x"})
        assert no_best.status_code == 409


def test_a_trial_created_before_a_worker_died_is_adopted_not_repeated(steady: Gateway) -> None:
    """The window between creating a trial's job and recording it in the sweep: while the first
    trial runs, the second trial's job is created exactly as the sweep would create it, as if by
    a worker that died before recording it. The sweep must take that job as its second trial."""
    space = {"n_epochs": [2], "learning_rate_multiplier": [1.0, 2.0]}
    with tenant(steady) as org, steady.client(org.key) as http:
        train = upload(org.sdk, TRAINING_EXAMPLES)
        body = sweep_body(train, None, space=space, max_parallel=1, validation_split=0.3)
        created = create(http, body)
        orphan = asyncio.run(_create_trial_job(steady, org.org_id, created, body, index=1))
        sweep = wait_sweep(http, created["id"], timeout=180)
        assert sweep["status"] == "succeeded"
        assert sweep["trials"][1]["job_id"] == orphan
        listed = sweep_jobs(http, created["id"])
        assert len(listed) == 2 and all(job["validation_split"] == 0.3 for job in listed)


async def _create_trial_job(
    gateway: Gateway, org_id: str, sweep: dict[str, Any], body: dict[str, Any], index: int
) -> str:
    request = parse_sweep_request(body)
    ctx = await build_context(gateway.settings)
    try:
        labels = {SWEEP_KEY: sweep["id"], TRIAL_KEY: str(index)}
        values = sweep["trials"][index]["hyperparameters"]
        job_body = orjson.dumps(trial_body(request, values, sweep["seed"], labels))
        principal = Principal(org_id=org_id, key_id=None, role="member")
        key = trial_idempotency_key(sweep["id"], index)
        created = await jobs.create_job(ctx, principal, job_body, key)
        return created.record.id
    finally:
        ctx.queue.close()
        await ctx.aclose()


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"validation_file": None}, "validation_file"),
        (
            {"space": {"learning_rate_multiplier": {"min": 0.1, "max": 3}}},
            "space.learning_rate_multiplier",
        ),
        ({"space": {"n_epochs": [3, 0]}}, "space.n_epochs.1"),
        ({"space": {"batch_size": [1, 2]}}, "space.batch_size"),
        ({"max_trials": 4}, "max_trials"),
        ({"search": {"type": "random"}}, "max_trials"),
        ({"training_token_budget": 1000}, "training_token_budget"),
        ({"training_file": "file-nope"}, "training_file"),
        ({"model": "gpt-nope"}, "model"),
        ({"metadata": {"tunegate_sweep": "x"}}, "metadata"),
    ],
)
def test_bad_sweeps_are_refused_naming_the_param(
    gateway: Gateway, change: dict[str, Any], param: str
) -> None:
    with tenant(gateway) as org, gateway.client(org.key) as http:
        train, valid = upload(org.sdk, TRAINING_EXAMPLES), upload(org.sdk, 10, "valid.jsonl")
        body = {
            key: value
            for key, value in (sweep_body(train, valid) | change).items()
            if value is not None
        }
        response = http.post("/v1/sweeps", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param
        assert http.get("/v1/sweeps").json()["data"] == []


def test_the_budget_is_checked_against_the_reports_estimate(gateway: Gateway) -> None:
    with tenant(gateway) as org, gateway.client(org.key) as http:
        train, valid = upload(org.sdk, TRAINING_EXAMPLES), upload(org.sdk, 10, "valid.jsonl")
        report = http.get(f"/v1/files/{train}/report").json()
        [estimate] = [
            e for e in report["estimated_costs"] if e["model"] == "gpt-4o-mini-2024-07-18"
        ]
        needed = estimate["billing_tokens"] * (3 + 9) * 3  # two epoch counts, three rates each
        refused = http.post(
            "/v1/sweeps", json=sweep_body(train, valid, training_token_budget=needed - 1)
        )
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "budget_exceeded"
        accepted = create(http, sweep_body(train, valid, training_token_budget=needed))
        assert accepted["estimated_trained_tokens"] == needed
        http.post(f"/v1/sweeps/{accepted['id']}/cancel")


def test_another_orgs_sweep_is_not_found(gateway: Gateway) -> None:
    with tenant(gateway) as owner, tenant(gateway) as other:
        with gateway.client(owner.key) as http:
            train, valid = upload(owner.sdk, TRAINING_EXAMPLES), upload(owner.sdk, 10, "v.jsonl")
            sweep_id = create(http, sweep_body(train, valid))["id"]
        with gateway.client(other.key) as http:
            assert http.get(f"/v1/sweeps/{sweep_id}").status_code == 404
            assert http.get(f"/v1/sweeps/{sweep_id}/chart.svg").status_code == 404
            assert http.post(f"/v1/sweeps/{sweep_id}/cancel").status_code == 404
            promote = http.post(f"/v1/sweeps/{sweep_id}/promote", json={"alias": "x"})
            assert promote.status_code == 404
            assert http.get("/v1/sweeps").json()["data"] == []
        with gateway.client(owner.key) as http:
            assert [s["id"] for s in http.get("/v1/sweeps").json()["data"]] == [sweep_id]
            http.post(f"/v1/sweeps/{sweep_id}/cancel")


def test_an_inference_key_may_not_sweep(gateway: Gateway) -> None:
    with tenant(gateway, role="inference") as org, gateway.client(org.key) as http:
        assert http.get("/v1/sweeps").status_code == 403


def test_trials_share_one_split_of_the_training_file(gateway: Gateway) -> None:
    """A sweep with `validation_split` carves its training file once: its trials, running at
    once, all train and validate on the same two files."""
    space = {"n_epochs": [3], "learning_rate_multiplier": [0.3, 1.0, 3.0]}
    with tenant(gateway) as org, gateway.client(org.key) as http:
        train = upload(org.sdk, TRAINING_EXAMPLES, name="data.jsonl")
        body = sweep_body(train, None, space=space, max_parallel=3, validation_split=0.3)
        sweep = wait_sweep(http, create(http, body)["id"])
        assert sweep["status"] == "succeeded"
        assert [trial["status"] for trial in sweep["trials"]] == ["succeeded"] * 3
        names = {f.id: f.filename for f in org.sdk.files.list().data}
        parts = {file_id: name for file_id, name in names.items() if file_id != train}
        assert sorted(parts.values()) == ["data.train.jsonl", "data.validation.jsonl"]
        [validation] = [
            file_id for file_id, name in parts.items() if name.endswith("validation.jsonl")
        ]
        jobs_ = sweep_jobs(http, sweep["id"])
        assert len(jobs_) == 3
        assert all(job["training_file"] == train for job in jobs_)
        assert all(job["validation_file"] == validation for job in jobs_)
        sent = {
            (create_["body"]["training_file"], create_["body"]["validation_file"])
            for job in jobs_
            for create_ in upstream_creates(gateway, job["id"])
        }
        assert len(sent) == 1
