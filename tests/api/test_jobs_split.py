"""`validation_split` (through the SDK's `extra_body`): the worker carves a seeded, reproducible
validation file out of the training file, stores both parts as the org's files and hands them
upstream like any other."""

from __future__ import annotations

import pytest

from tests.api.conftest import Gateway
from tests.api.jobs_helpers import tenant, upload, upstream_creates, wait_status


def split_job(sdk: object, training: str, seed: int) -> str:
    job = sdk.fine_tuning.jobs.create(  # type: ignore[attr-defined]
        model="gpt-4o-mini",
        training_file=training,
        seed=seed,
        extra_body={"validation_split": 0.25},
    )
    assert job.validation_split == 0.25
    return str(job.id)


def test_split_is_stored_handed_upstream_and_reproducible(gateway: Gateway) -> None:
    with tenant(gateway) as org:
        training = upload(org.sdk, examples=40, name="data.jsonl")
        made = [split_job(org.sdk, training, seed=seed) for seed in (7, 7, 8)]
        first, again, other = (wait_status(org.sdk, job_id) for job_id in made)
        assert first.status == again.status == other.status == "succeeded"
        assert first.training_file == training
        assert first.validation_file and first.validation_file != again.validation_file
        content = {
            job.id: org.sdk.files.content(job.validation_file or "").content
            for job in (first, again, other)
        }
        assert content[first.id] == content[again.id]
        assert content[first.id] != content[other.id]
        names = {f.id: f.filename for f in org.sdk.files.list().data}
        assert names[first.validation_file] == "data.validation.jsonl"
        parts = [f for f in org.sdk.files.list().data if f.filename == "data.train.jsonl"]
        assert len(parts) == 3
        held_out = content[first.id].count(b"\n")
        trained = {org.sdk.files.content(part.id).content.count(b"\n") for part in parts}
        assert 40 - held_out in trained and 3 <= held_out <= 18
        body = upstream_creates(gateway, first.id)[0]["body"]
        assert body["validation_file"] and body["validation_file"] != first.validation_file
        assert "validation_split" not in body


@pytest.mark.parametrize("fraction", [0.0, 0.5, -0.1])
def test_split_outside_its_range_is_refused(gateway: Gateway, fraction: float) -> None:
    with tenant(gateway) as org, gateway.client(org.key) as client:
        response = client.post(
            "/v1/fine_tuning/jobs",
            json={
                "model": "gpt-4o-mini",
                "training_file": upload(org.sdk),
                "validation_split": fraction,
            },
        )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "validation_split"


def test_split_jobs_report_validation_metrics(gateway: Gateway) -> None:
    with tenant(gateway) as org, gateway.client(org.key) as client:
        job = wait_status(org.sdk, split_job(org.sdk, upload(org.sdk, examples=30), seed=1))
        rows = client.get(f"/v1/fine_tuning/jobs/{job.id}/metrics").json()["data"]
    assert any(row["valid_loss"] is not None for row in rows)
