"""The official SDK pointed straight at the sandbox, end to end."""

from __future__ import annotations

import csv
import io

import openai
import orjson
import pytest
from openai import OpenAI
from sandbox_helpers import chat_lines, upload, wait_for

from service.domain.tokens import count_tokens
from service.sandbox import training


def test_fine_tune_then_serve_then_delete(client: OpenAI) -> None:
    training_file = upload(client, chat_lines(20))
    validation_file = upload(client, chat_lines(5, prefix="held out"), "valid.jsonl")
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini-2024-07-18",
        training_file=training_file,
        validation_file=validation_file,
        suffix="support",
        seed=7,
        metadata={"tunegate_job": "tj_1"},
    )
    assert job.id.startswith("ftjob-") and job.object == "fine_tuning.job"
    assert job.status == "validating_files"

    done = wait_for(client, job.id, {"succeeded", "failed"})
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model is not None
    assert done.fine_tuned_model.startswith("ft:gpt-4o-mini-2024-07-18:test-org:support:")
    assert done.finished_at is not None and done.finished_at >= done.created_at

    events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    metrics = [e for e in events if e.type == "metrics"]
    assert len(metrics) == 12
    assert all(e.id.startswith("ftevent-") for e in events)
    assert events[0].created_at >= events[-1].created_at
    first = metrics[-1].data
    assert isinstance(first, dict)
    assert {"step", "total_steps", "train_loss", "train_mean_token_accuracy"} <= set(first)
    assert {"valid_loss", "valid_mean_token_accuracy"} <= set(first)

    reply = client.chat.completions.create(
        model=done.fine_tuned_model, messages=[{"role": "user", "content": "Where is my order?"}]
    )
    assert reply.id.startswith("chatcmpl-")
    assert (
        reply.choices[0].message.content == f"Echo from {done.fine_tuned_model}: Where is my order?"
    )

    chunks = list(
        client.chat.completions.create(
            model=done.fine_tuned_model,
            messages=[{"role": "user", "content": "stream this please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"Echo from {done.fine_tuned_model}: stream this please"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 5
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == count_tokens(text, done.fine_tuned_model)

    other = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training_file)
    cancelled = client.fine_tuning.jobs.cancel(other.id)
    assert cancelled.status == "cancelled"
    assert client.fine_tuning.jobs.retrieve(other.id).status == "cancelled"

    deleted = client.models.delete(done.fine_tuned_model)
    assert deleted.deleted is True
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(
            model=done.fine_tuned_model, messages=[{"role": "user", "content": "hello?"}]
        )
    assert caught.value.code == "model_not_found"


def test_succeeded_job_reports_honest_results(client: OpenAI) -> None:
    content = chat_lines(30)
    job = client.fine_tuning.jobs.create(
        model="gpt-4.1-nano-2025-04-14",
        training_file=upload(client, content),
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
        seed=3,
    )
    done = wait_for(client, job.id, {"succeeded"})
    texts = [m["content"] for line in content.splitlines() for m in orjson.loads(line)["messages"]]
    file_tokens = sum(count_tokens(text, "gpt-4.1-nano-2025-04-14") for text in texts)
    assert done.trained_tokens == file_tokens * 2
    assert done.hyperparameters.n_epochs == 2
    assert done.hyperparameters.batch_size == 1
    assert done.method is not None and done.method.type == "supervised"

    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
    assert [c.step_number for c in checkpoints] == [60, 30]
    assert checkpoints[0].fine_tuned_model_checkpoint == done.fine_tuned_model
    assert checkpoints[1].fine_tuned_model_checkpoint.endswith(":ckpt-step-30")
    assert all(c.id.startswith("ftckpt-") for c in checkpoints)

    (result_id,) = done.result_files
    result = client.files.retrieve(result_id)
    assert result.purpose == "fine-tune-results"
    rows = list(csv.DictReader(io.StringIO(client.files.content(result_id).text)))
    assert list(rows[0]) == [
        "step",
        "train_loss",
        "train_accuracy",
        "valid_loss",
        "valid_mean_token_accuracy",
    ]
    assert rows[-1]["step"] == "60" and rows[-1]["valid_loss"] == ""
    hp = training.Hyperparameters(2, 1, 1.8)
    assert (
        float(rows[-1]["train_loss"])
        == training.step_metrics(60, hp, 30, 3, with_validation=False).train_loss
    )


def test_legacy_completions_stream(client: OpenAI) -> None:
    answer = client.completions.create(model="babbage-002", prompt="Once upon", max_tokens=50)
    assert answer.object == "text_completion"
    assert answer.choices[0].text == "Echo from babbage-002: Once upon"
    assert answer.usage is not None and answer.usage.prompt_tokens == 2

    chunks = list(
        client.completions.create(
            model="davinci-002",
            prompt=["a b", "c d"],
            max_tokens=50,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    by_index: dict[int, str] = {}
    for chunk in chunks[:-1]:
        for choice in chunk.choices:
            by_index[choice.index] = by_index.get(choice.index, "") + choice.text
    assert by_index == {0: "Echo from davinci-002: a b", 1: "Echo from davinci-002: c d"}
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 4
