"""Fine-tuning jobs through the official SDK, against the sandbox upstream: a job from upload to
its tuned model, its events, checkpoints and metrics, and what the upstream was sent."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest

from service.queue import connect_sync_redis
from tests.api.conftest import Gateway
from tests.api.jobs_helpers import Tenant, tenant, upload, upstream_creates, wait_status
from tests.support import wait_for


@pytest.fixture(scope="module")
def finished(gateway: Gateway) -> Iterator[tuple[Tenant, str, str]]:
    """One job run to the end: (tenant, job id, training file id)."""
    with tenant(gateway) as org:
        training = upload(org.sdk)
        job = org.sdk.fine_tuning.jobs.create(
            model="gpt-4o-mini",
            training_file=training,
            hyperparameters={"n_epochs": 2, "batch_size": 2, "learning_rate_multiplier": 0.5},
            suffix="support-bot",
            seed=42,
            metadata={"team": "support", "ticket": "T-1"},
        )
        assert job.id.startswith("ftjob-")
        assert job.status in ("queued", "validating_files")
        assert job.training_file == training
        wait_status(org.sdk, job.id)
        finished_steps(gateway, job.id)  # usage, audit, file stamps: written after the status
        yield org, job.id, training


def finished_steps(gateway: Gateway, job_id: str) -> dict[str, Any]:
    """The stored job once its finishing steps have all run."""
    client = connect_sync_redis(gateway.settings.redis_url or "")
    try:
        job: dict[str, Any] = wait_for(
            lambda: (
                (found := orjson.loads(client.get(f"tg:job:{job_id}") or b"{}"))["pending"] == []
                and found
            ),
            timeout=30,
            what="the finishing steps",
        )
        return job
    finally:
        client.close()


def test_job_succeeds_with_its_tuned_model_registered(
    gateway: Gateway, finished: tuple[Tenant, str, str]
) -> None:
    org, job_id, _training = finished
    job = org.sdk.fine_tuning.jobs.retrieve(job_id)
    assert job.status == "succeeded"
    assert job.fine_tuned_model and job.fine_tuned_model.startswith("ft:gpt-4o-mini-2024-07-18:")
    assert ":support-bot:" in job.fine_tuned_model
    assert job.trained_tokens and job.trained_tokens > 0
    assert job.finished_at and job.finished_at >= job.created_at
    assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size) == (2, 2)
    assert job.seed == 42
    assert job.metadata == {"team": "support", "ticket": "T-1"}
    assert job.organization_id == org.org_id
    assert job.result_files == []
    models = [model.id for model in org.sdk.models.list().data]
    assert job.fine_tuned_model in models


def test_upstream_got_one_create_with_our_ids_translated(
    gateway: Gateway, finished: tuple[Tenant, str, str]
) -> None:
    _org, job_id, training = finished
    creates = upstream_creates(gateway, job_id)
    assert len(creates) == 1
    body = creates[0]["body"]
    assert body["metadata"] == {"team": "support", "ticket": "T-1", "tunegate_job_id": job_id}
    assert body["training_file"] != training  # the upstream's copy, not tunegate's id
    assert body["seed"] == 42
    assert body["suffix"] == "support-bot"
    assert body["method"]["supervised"]["hyperparameters"]["n_epochs"] == 2
    assert "validation_split" not in body


def test_events_are_newest_first_in_order_without_repeats(
    finished: tuple[Tenant, str, str],
) -> None:
    org, job_id, training = finished
    events = org.sdk.fine_tuning.jobs.list_events(job_id, limit=100).data
    ids = [event.id for event in events]
    assert len(ids) == len(set(ids))
    oldest_first = list(reversed(events))
    created = [event.created_at for event in oldest_first]
    assert created == sorted(created)
    steps = [event.data["step"] for event in oldest_first if event.type == "metrics"]
    assert steps == sorted(steps) and len(steps) >= 2
    metric = next(event for event in events if event.type == "metrics")
    assert {"step", "train_loss", "train_mean_token_accuracy"} <= set(metric.data)
    messages = " ".join(event.message for event in events)
    assert f"Created fine-tuning job: {job_id}" in messages  # the upstream's id is not shown
    assert training in messages


def test_events_page_with_after_and_limit(finished: tuple[Tenant, str, str]) -> None:
    org, job_id, _ = finished
    everything = [event.id for event in org.sdk.fine_tuning.jobs.list_events(job_id, limit=100)]
    paged = [event.id for event in org.sdk.fine_tuning.jobs.list_events(job_id, limit=3)]
    assert paged == everything  # the SDK follows `after` page by page
    first = org.sdk.fine_tuning.jobs.list_events(job_id, limit=3)
    assert first.has_more and [event.id for event in first.data] == everything[:3]


def test_checkpoints_belong_to_the_job(finished: tuple[Tenant, str, str]) -> None:
    org, job_id, _ = finished
    checkpoints = org.sdk.fine_tuning.jobs.checkpoints.list(job_id).data
    assert checkpoints
    assert all(checkpoint.fine_tuning_job_id == job_id for checkpoint in checkpoints)
    steps = [checkpoint.step_number for checkpoint in checkpoints]
    assert steps == sorted(steps, reverse=True)


def test_metrics_as_json_csv_and_svg(gateway: Gateway, finished: tuple[Tenant, str, str]) -> None:
    org, job_id, _ = finished
    with gateway.client(org.key) as client:
        as_json = client.get(f"/v1/fine_tuning/jobs/{job_id}/metrics").json()
        as_csv = client.get(
            f"/v1/fine_tuning/jobs/{job_id}/metrics", headers={"Accept": "text/csv"}
        )
        svg = client.get(f"/v1/fine_tuning/jobs/{job_id}/metrics.svg")
    steps = [row["step"] for row in as_json["data"]]
    assert steps == sorted(steps) and as_json["total_steps"] == steps[-1]
    assert all(row["train_loss"] is not None for row in as_json["data"])
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [int(row["step"]) for row in rows] == steps
    assert float(rows[0]["train_loss"]) == pytest.approx(as_json["data"][0]["train_loss"])
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.lstrip().startswith("<svg") and "Loss" in svg.text
    assert "— succeeded</title>" in svg.text and "best " in svg.text  # the job's own chart


def test_usage_and_audit_record_the_job(
    gateway: Gateway, finished: tuple[Tenant, str, str]
) -> None:
    org, job_id, _ = finished
    job = org.sdk.fine_tuning.jobs.retrieve(job_id)
    _, admin_key = gateway.create_key(org.org_id, "admin")
    with gateway.client(admin_key) as client:
        usage = client.get("/v1/usage", params={"group_by": "model"}).json()["data"]
        audit = client.get("/v1/audit", params={"action": "jobs"}).json()["data"]
    training = [row for row in usage if row["model"] == "fine-tuning:gpt-4o-mini-2024-07-18"]
    assert training and training[0]["trained_tokens"] == job.trained_tokens
    assert training[0]["prompt_tokens"] == training[0]["total_tokens"] == 0
    assert training[0]["cost"] > 0
    actions = {event["action"] for event in audit if event["resource_id"] == job_id}
    assert {"jobs.create", "jobs.submitted", "jobs.succeeded"} <= actions


def test_the_training_file_is_stamped_as_used(
    gateway: Gateway, finished: tuple[Tenant, str, str]
) -> None:
    _, job_id, training = finished
    job = finished_steps(gateway, job_id)
    client = connect_sync_redis(gateway.settings.redis_url or "")
    try:
        stored = orjson.loads(client.get(f"tg:file:{training}") or b"{}")
    finally:
        client.close()
    assert job["due_at"] is None
    assert stored["last_used_at"] >= job["finished_at"]


def test_list_pages_and_filters_on_metadata(gateway: Gateway) -> None:
    with tenant(gateway) as org:
        training = upload(org.sdk)
        made = [
            org.sdk.fine_tuning.jobs.create(
                model="gpt-4o-mini", training_file=training, metadata={"team": team}
            ).id
            for team in ("a", "b", "a")
        ]
        listed = [job.id for job in org.sdk.fine_tuning.jobs.list(limit=2)]
        assert listed == list(reversed(made))
        first = org.sdk.fine_tuning.jobs.list(limit=2)
        assert first.has_more and len(first.data) == 2
        team_a = [job.id for job in org.sdk.fine_tuning.jobs.list(metadata={"team": "a"})]
        assert team_a == [made[2], made[0]]
        for job_id in made:
            wait_status(org.sdk, job_id)


def test_a_tuned_model_is_tuned_further_only_by_its_org(
    gateway: Gateway, finished: tuple[Tenant, str, str]
) -> None:
    org, job_id, training = finished
    tuned = org.sdk.fine_tuning.jobs.retrieve(job_id).fine_tuned_model
    assert tuned is not None
    again = org.sdk.fine_tuning.jobs.create(model=tuned, training_file=training)
    assert wait_status(org.sdk, again.id).status == "succeeded"
    with tenant(gateway) as other:
        with pytest.raises(openai.BadRequestError) as caught:
            other.sdk.fine_tuning.jobs.create(model=tuned, training_file=upload(other.sdk))
        assert caught.value.body["param"] == "model"  # type: ignore[index]
