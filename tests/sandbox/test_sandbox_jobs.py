"""Fine-tuning jobs: creation checks, failures, controls, listing and events."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest
from openai import OpenAI
from sandbox_helpers import chat_lines, preference_lines, upload, wait_for


def test_unknown_training_file_or_model_is_a_400(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file="file-missing")
    assert caught.value.param == "training_file"
    good = upload(client, chat_lines(10))
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.create(model="gpt-9", training_file=good)
    assert caught.value.code == "model_not_available"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.create(
            model="gpt-4o-mini", training_file=good, hyperparameters={"n_epochs": 0}
        )
    too_many = {f"k{i}": "v" for i in range(17)}
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=good, metadata=too_many)
    assert caught.value.param == "metadata"
    assert client.fine_tuning.jobs.list().data == []


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b'{"messages": [}\n' * 12, "Line 1: not valid JSON"),
        (b'{"text": "hi"}\n' * 12, "Line 1: expected 'messages'"),
        (chat_lines(4), "must have at least 10"),
    ],
)
def test_malformed_training_file_fails_the_job(
    client: OpenAI, content: bytes, fragment: str
) -> None:
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client, content))
    assert job.status == "validating_files"
    failed = wait_for(client, job.id, {"failed", "succeeded"})
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.code == "invalid_training_file"
    assert failed.error.param == "training_file"
    assert fragment in failed.error.message
    assert failed.fine_tuned_model is None


def test_auto_hyperparameters_resolve_like_openai(client: OpenAI) -> None:
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=upload(client, chat_lines(20))
    )
    assert job.model == "gpt-4o-mini-2024-07-18"
    assert job.hyperparameters.n_epochs == 5
    assert job.hyperparameters.batch_size == 1
    assert job.hyperparameters.learning_rate_multiplier == 1.8
    assert isinstance(job.seed, int)


def test_dpo_needs_preference_data(client: OpenAI) -> None:
    method: Any = {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}}
    good = client.fine_tuning.jobs.create(
        model="gpt-4.1-mini-2025-04-14",
        training_file=upload(client, preference_lines(12)),
        method=method,
    )
    assert good.method is not None and good.method.dpo is not None
    assert good.method.dpo.hyperparameters is not None
    assert good.method.dpo.hyperparameters.beta == 0.2
    assert wait_for(client, good.id, {"succeeded", "failed"}).status == "succeeded"
    bad = client.fine_tuning.jobs.create(
        model="gpt-4.1-mini-2025-04-14",
        training_file=upload(client, chat_lines(12)),
        method=method,
    )
    assert wait_for(client, bad.id, {"succeeded", "failed"}).status == "failed"


def test_pause_stops_progress_until_resumed(client: OpenAI) -> None:
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=upload(client, chat_lines(10))
    )
    paused = client.fine_tuning.jobs.pause(job.id)
    # The SDK's status Literal has no "paused"; the API answers it all the same.
    assert str(paused.status) == "paused"
    time.sleep(0.3)
    assert str(client.fine_tuning.jobs.retrieve(job.id).status) == "paused"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.pause(job.id)
    assert str(client.fine_tuning.jobs.resume(job.id).status) != "paused"
    assert wait_for(client, job.id, {"succeeded"}).status == "succeeded"
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
    assert "Fine-tuning job paused" in messages and "Fine-tuning job resumed" in messages


def test_cancelled_is_terminal(client: OpenAI) -> None:
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=upload(client, chat_lines(10))
    )
    client.fine_tuning.jobs.cancel(job.id)
    time.sleep(0.3)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(job.id)
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.resume(job.id)


def test_list_filters_on_metadata_and_pages(client: OpenAI) -> None:
    training_file = upload(client, chat_lines(10))
    ids = [
        client.fine_tuning.jobs.create(
            model="gpt-4o-mini",
            training_file=training_file,
            metadata={"team": "a" if i % 2 else "b", "n": str(i)},
        ).id
        for i in range(5)
    ]
    plain = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training_file)
    team_a = [j.id for j in client.fine_tuning.jobs.list(metadata={"team": "a"})]
    assert team_a == [ids[3], ids[1]]
    exact = client.fine_tuning.jobs.list(metadata={"team": "b", "n": "2"})
    assert [j.id for j in exact] == [ids[2]]
    page = client.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in page.data] == [plain.id, ids[4]] and page.has_more
    assert [j.id for j in client.fine_tuning.jobs.list(limit=2)] == [plain.id, *ids[::-1]]
    null_only = client.fine_tuning.jobs.list(extra_query={"metadata": "null"})
    assert [j.id for j in null_only.data] == [plain.id]


def test_events_are_newest_first_and_page_with_after(client: OpenAI) -> None:
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=upload(client, chat_lines(10))
    )
    wait_for(client, job.id, {"succeeded"})
    everything = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    first = client.fine_tuning.jobs.list_events(job.id, limit=3)
    assert first.data == everything[:3] and first.has_more
    rest = client.fine_tuning.jobs.list_events(job.id, after=first.data[-1].id, limit=100)
    assert rest.data == everything[3:] and rest.has_more is False
    assert everything[-1].message.startswith("Created fine-tuning job")
    assert everything[0].message == "The job has successfully completed"
    stamps = [e.created_at for e in everything]
    assert stamps == sorted(stamps, reverse=True)


def test_many_jobs_progress_at_once(client: OpenAI) -> None:
    training_file = upload(client, chat_lines(10))
    ids = [
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training_file).id
        for _ in range(20)
    ]
    for job_id in ids:
        assert wait_for(client, job_id, {"succeeded", "failed"}).status == "succeeded"
    models = {m.id for m in client.models.list()}
    tuned = {client.fine_tuning.jobs.retrieve(j).fine_tuned_model for j in ids}
    assert tuned <= models and len(tuned) == 20


def test_status_changes_are_dated_to_the_microsecond(client: OpenAI, inspect: Any) -> None:
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=upload(client, chat_lines(10))
    )
    assert wait_for(client, job.id, {"succeeded"}).status == "succeeded"
    other = client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=upload(client, chat_lines(10))
    )
    client.fine_tuning.jobs.cancel(other.id)
    changes = inspect.get("/jobs/changes").json()
    statuses = [change["status"] for change in changes[job.id]]
    assert statuses == ["queued", "running", "succeeded"]
    assert [change["status"] for change in changes[other.id]] == ["cancelled"]
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    marks = {
        "queued": "Files validated",
        "running": "Fine-tuning job started",
        "succeeded": "The job has successfully completed",
    }
    for change in changes[job.id]:  # each change is the instant its event's second names
        dated = [e.created_at for e in events if e.message.startswith(marks[change["status"]])]
        assert dated == [int(change["at"])]
    stamps = [change["at"] for change in changes[job.id]]
    assert stamps == sorted(stamps)
