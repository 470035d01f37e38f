"""Eval runs through the SDK's `client.evals.runs`: a tuned model beats its base model on
held-out items from its training distribution and not on unrelated ones; every sample went
through the proxy (usage and audit); output items, cancel, delete, and tenancy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.api.conftest import Gateway
from tests.api.jobs_helpers import Tenant, tenant, wait_status
from tests.evals_data import (
    CLOSE,
    EXACT,
    SOURCE,
    held_out_items,
    training_lines,
    unrelated_items,
)
from tests.support import wait_for

pytestmark = pytest.mark.filterwarnings("ignore:The Evals API is deprecated:DeprecationWarning")
BASE = "gpt-4o-mini"
CRITERIA: Any = [EXACT, CLOSE]


def completions(model: str, items: list[dict[str, str]]) -> Any:
    return {
        "type": "completions",
        "model": model,
        "source": {"type": "file_content", "content": [{"item": item} for item in items]},
        "input_messages": {
            "type": "template",
            "template": [{"role": "user", "content": "{{item.question}}"}],
        },
    }


def finished(sdk: OpenAI, eval_id: str, run_id: str) -> Any:
    return wait_for(
        lambda: (
            (run := sdk.evals.runs.retrieve(run_id, eval_id=eval_id)).status
            in ("completed", "failed", "canceled")
            and run
        ),
        timeout=60,
        interval=0.1,
        what=f"run {run_id} to end",
    )


@pytest.fixture(scope="module")
def tuned(gateway: Gateway) -> Iterator[tuple[Tenant, str]]:
    with tenant(gateway) as org:
        training = org.sdk.files.create(file=("t.jsonl", training_lines()), purpose="fine-tune")
        job = org.sdk.fine_tuning.jobs.create(model=BASE, training_file=training.id, seed=3)
        done = wait_status(org.sdk, job.id)
        assert done.status == "succeeded" and done.fine_tuned_model, done
        yield org, done.fine_tuned_model


def test_a_tuned_model_beats_its_base_on_held_out_items_and_not_on_unrelated_ones(
    gateway: Gateway, tuned: tuple[Tenant, str]
) -> None:
    org, model = tuned
    made = org.sdk.evals.create(data_source_config=SOURCE, testing_criteria=CRITERIA)
    held, other = held_out_items(), unrelated_items()
    before = len(gateway.upstream_requests("/v1/chat/completions"))
    runs = {
        (name, which): org.sdk.evals.runs.create(
            made.id, name=f"{name}-{which}", data_source=completions(m, items)
        )
        for name, m in (("base", BASE), ("tuned", model))
        for which, items in (("held", held), ("other", other))
    }
    assert all(run.status == "queued" for run in runs.values())
    ended = {key: finished(org.sdk, made.id, run.id) for key, run in runs.items()}
    assert {run.status for run in ended.values()} == {"completed"}
    counts = {key: run.result_counts for key, run in ended.items()}
    n = len(held)
    assert (counts["tuned", "held"].passed, counts["tuned", "held"].total) == (n, n)
    assert counts["base", "held"].passed == 0 and counts["base", "held"].failed == n
    assert counts["tuned", "other"].passed == counts["base", "other"].passed == 0
    criteria = ended["tuned", "held"].per_testing_criteria_results
    assert [(c.testing_criteria, c.passed, c.failed) for c in criteria] == [
        ("exact", n, 0),
        ("close", n, 0),
    ]
    usage = ended["tuned", "held"].per_model_usage or []
    assert [(u.run_model_name, u.invocation_count) for u in usage] == [(model, n)]
    assert usage[0].prompt_tokens > 0 and usage[0].total_tokens == (
        usage[0].prompt_tokens + usage[0].completion_tokens
    )
    sampled = gateway.upstream_requests("/v1/chat/completions")[before:]
    assert len(sampled) == 2 * (len(held) + len(other))  # one sample per item, through the proxy

    items = list(org.sdk.evals.runs.output_items.list(runs["tuned", "held"].id, eval_id=made.id))
    assert [item.datasource_item_id for item in items] == list(range(n))
    first = items[0]
    assert first.status == "pass" and first.datasource_item == held[0]
    assert first.sample.output[0].content == held[0]["answer"]
    assert [(r.name, r.passed, r.score) for r in first.results] == [
        ("exact", True, 1.0),
        ("close", True, 1.0),
    ]
    again = org.sdk.evals.runs.output_items.retrieve(
        first.id, eval_id=made.id, run_id=runs["tuned", "held"].id
    )
    assert again.model_dump() == first.model_dump()
    listed = org.sdk.evals.runs.list(made.id)
    assert [run.id for run in listed] == [run.id for run in runs.values()]

    with gateway.client(org.key) as http:  # tunegate's own route, beside the SDK's
        headers: dict[str, str] = {}
        url = f"/v1/evals/{made.id}/compare"

        def compare(a: str, b: str) -> Any:
            response = http.get(url, params={"runs": f"{a},{b}"}, headers=headers)
            assert response.status_code == 200, response.text
            return {row["testing_criteria"]: row for row in response.json()["testing_criteria"]}

        held_rows = compare(runs["base", "held"].id, runs["tuned", "held"].id)
        exact = held_rows["exact"]
        assert (exact["pass_rates"], exact["difference"]) == ([0.0, 1.0], 1.0)
        assert exact["interval"] == [1.0, 1.0] and exact["items"] == n
        assert [c["item"] for c in exact["changed_items"]] == list(range(n))
        other_rows = compare(runs["base", "other"].id, runs["tuned", "other"].id)
        assert other_rows["exact"]["difference"] == 0 and other_rows["exact"]["changed_items"] == []
        assert other_rows["exact"]["interval"] == [0.0, 0.0]
        one = http.get(url, params={"runs": runs["base", "held"].id}, headers=headers)
        assert one.status_code == 400 and one.json()["error"]["param"] == "runs"


def test_a_sample_model_the_policy_refuses_is_a_400_and_no_run(gateway: Gateway) -> None:
    with tenant(gateway, {"allowed_models": ["gpt-4o"]}) as org:
        made = org.sdk.evals.create(data_source_config=SOURCE, testing_criteria=CRITERIA[:1])
        with pytest.raises(openai.BadRequestError) as caught:
            org.sdk.evals.runs.create(made.id, data_source=completions(BASE, held_out_items()))
        assert isinstance(caught.value.body, dict)
        assert caught.value.body["param"] == "data_source.model"
        assert list(org.sdk.evals.runs.list(made.id)) == []


def test_cancel_delete_and_another_orgs_run_is_unknown(
    gateway: Gateway, tuned: tuple[Tenant, str]
) -> None:
    org, model = tuned
    made = org.sdk.evals.create(data_source_config=SOURCE, testing_criteria=CRITERIA[:1])
    run = org.sdk.evals.runs.create(made.id, data_source=completions(model, held_out_items()))
    with tenant(gateway) as other:
        with pytest.raises(openai.NotFoundError):
            other.sdk.evals.runs.retrieve(run.id, eval_id=made.id)
        with pytest.raises(openai.NotFoundError):
            other.sdk.evals.runs.cancel(run.id, eval_id=made.id)
        with pytest.raises(openai.NotFoundError):
            other.sdk.evals.runs.output_items.list(run.id, eval_id=made.id)
    done = finished(org.sdk, made.id, run.id)
    if done.status == "completed":
        with pytest.raises(openai.ConflictError):
            org.sdk.evals.runs.cancel(run.id, eval_id=made.id)
    gone = org.sdk.evals.runs.delete(run.id, eval_id=made.id)
    assert gone.deleted and gone.run_id == run.id
    with pytest.raises(openai.NotFoundError):
        org.sdk.evals.runs.retrieve(run.id, eval_id=made.id)


def test_the_promote_gate_refuses_and_accepts_on_the_evidence(
    gateway: Gateway, tuned: tuple[Tenant, str]
) -> None:
    org, model = tuned
    evidence = {}
    for name, items in (("held", held_out_items()), ("other", unrelated_items())):
        made = org.sdk.evals.create(data_source_config=SOURCE, testing_criteria=CRITERIA)
        for m in (BASE, model):
            run = org.sdk.evals.runs.create(made.id, data_source=completions(m, items))
            assert finished(org.sdk, made.id, run.id).status == "completed"
        evidence[name] = made.id
    empty = org.sdk.evals.create(data_source_config=SOURCE, testing_criteria=CRITERIA).id
    with gateway.client(org.key) as http:

        def promote(eval_id: str, min_improvement: float = 0.05) -> Any:
            gate = {"eval_id": eval_id, "min_improvement": min_improvement, "confidence": 0.95}
            return http.put("/v1/aliases/support", json={"model": model, "require": gate})

        no_alias = promote(evidence["held"])
        assert no_alias.status_code == 400 and "no current model" in no_alias.text
        assert http.put("/v1/aliases/support", json={"model": BASE}).status_code == 200
        for eval_id, words in (
            (evidence["other"], "lower bound"),
            (empty, "no completed run"),
        ):
            refused = promote(eval_id)
            error = refused.json()["error"]
            assert refused.status_code == 400 and words in error["message"], refused.text
            assert (error["param"], error["code"]) == ("require", "promotion_refused")
            assert http.get("/v1/aliases/support").json()["model"] == BASE
        accepted = promote(evidence["held"])
        assert accepted.status_code == 200, accepted.text
        assert http.get("/v1/aliases/support").json()["model"] == model
        mine = gateway.create_org("stranger")
        _, key = gateway.create_key(mine, "member")
        with gateway.client(key) as stranger:
            body = {"model": BASE, "require": {"eval_id": evidence["held"]}}
            assert stranger.put("/v1/aliases/x", json=body).status_code == 404


def test_a_grader_model_is_called_through_the_proxy_under_its_alias(gateway: Gateway) -> None:
    judge: Any = {
        "type": "label_model",
        "name": "judge",
        "model": "judge",  # an alias of the org, routed like any proxied call's model
        "input": [{"role": "user", "content": "Grade: yes or no? {{sample.output_text}}"}],
        "labels": ["yes", "no"],
        "passing_labels": ["yes"],
    }
    items = held_out_items()
    with tenant(gateway, role="admin") as org, gateway.client(org.key) as http:
        assert http.put("/v1/aliases/judge", json={"model": BASE}).status_code == 200
        made = org.sdk.evals.create(data_source_config=SOURCE, testing_criteria=[judge])
        before = len(gateway.upstream_requests("/v1/chat/completions"))
        run = org.sdk.evals.runs.create(made.id, data_source=completions("gpt-4o", items))
        done = finished(org.sdk, made.id, run.id)
        assert (done.status, done.result_counts.passed) == ("completed", len(items))
        calls = gateway.upstream_requests("/v1/chat/completions")[before:]
        models = sorted(entry["body"]["model"] for entry in calls)
        assert models == ["gpt-4o"] * len(items) + [BASE] * len(items)
        graded = [e for e in calls if e["body"]["model"] == BASE]
        assert all(e["body"]["messages"][0]["content"].startswith("Grade:") for e in graded)
        usage = wait_for(
            lambda: (
                (
                    rows := {
                        row["model"]: row["requests"]
                        for row in http.get("/v1/usage", params={"group_by": "model"}).json()[
                            "data"
                        ]
                    }
                )
                == {"gpt-4o": len(items), BASE: len(items)}
                and rows
            ),
            timeout=30,
            what="the run's calls in usage",
        )
        assert usage
        wait_for(  # every sample and grader call is audited as the run's key
            lambda: (
                [
                    r["status"]
                    for r in http.get("/v1/audit", params={"action": "chat", "limit": 100}).json()[
                        "data"
                    ]
                ]
                == [200] * (2 * len(items))
            ),
            timeout=30,
            what="the run's calls in the audit",
        )
