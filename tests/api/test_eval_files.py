"""Eval data as a file: `purpose=evals` uploads through the SDK, validated line by line under
the org's PII policy and kept in the gateway (never handed to the upstream), and runs over a
`file_id` source that grade exactly as the same items sent inline."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest

from tests.api.conftest import Gateway
from tests.api.jobs_helpers import Tenant, tenant, upload, wait_status
from tests.api.test_eval_runs import BASE, CRITERIA, completions, finished
from tests.evals_data import SOURCE, eval_lines, held_out_items, training_lines
from tests.support import wait_for

pytestmark = pytest.mark.filterwarnings("ignore:The Evals API is deprecated:DeprecationWarning")


def mixed_lines(items: list[dict[str, str]]) -> bytes:
    """Half the lines wrapped as `{"item": ...}`, half the item object itself."""
    half = len(items) // 2
    return eval_lines(items[:half]) + b"".join(orjson.dumps(i) + b"\n" for i in items[half:])


def from_file(model: str, file_id: str) -> Any:
    return {**completions(model, []), "source": {"type": "file_id", "id": file_id}}


def outcome(sdk: openai.OpenAI, eval_id: str, run_id: str) -> list[Any]:
    items = sdk.evals.runs.output_items.list(run_id, eval_id=eval_id)
    return [
        (
            i.datasource_item_id,
            i.datasource_item,
            i.status,
            i.sample.output[0].content,
            [(r.name, r.passed, r.score) for r in i.results],
        )
        for i in items
    ]


@pytest.fixture(scope="module")
def tuned(gateway: Gateway) -> Iterator[tuple[Tenant, str]]:
    with tenant(gateway) as org:
        training = org.sdk.files.create(file=("t.jsonl", training_lines()), purpose="fine-tune")
        job = org.sdk.fine_tuning.jobs.create(model=BASE, training_file=training.id, seed=3)
        done = wait_status(org.sdk, job.id)
        assert done.status == "succeeded" and done.fine_tuned_model, done
        yield org, done.fine_tuned_model


def test_a_run_over_an_evals_file_grades_as_the_same_items_inline(
    gateway: Gateway, tuned: tuple[Tenant, str]
) -> None:
    org, model = tuned
    items = held_out_items()
    data = mixed_lines(items)
    stored = org.sdk.files.create(file=("items.jsonl", data), purpose="evals")
    assert (stored.purpose, stored.status, stored.bytes) == ("evals", "processed", len(data))
    assert [f.id for f in org.sdk.files.list(purpose="evals")] == [stored.id]
    assert org.sdk.files.content(stored.id).content == data

    made = org.sdk.evals.create(data_source_config=SOURCE, testing_criteria=CRITERIA)
    by_file = org.sdk.evals.runs.create(made.id, data_source=from_file(model, stored.id))
    inline = org.sdk.evals.runs.create(made.id, data_source=completions(model, items))
    done = finished(org.sdk, made.id, by_file.id)
    assert done.status == "completed", done.error
    assert done.data_source.source.model_dump() == {"type": "file_id", "id": stored.id}
    assert done.result_counts.passed == len(items)
    assert finished(org.sdk, made.id, inline.id).result_counts == done.result_counts
    assert outcome(org.sdk, made.id, by_file.id) == outcome(org.sdk, made.id, inline.id)

    # A fine-tuning file queued after it is handed over; the evals file never was.
    later = upload(org.sdk)
    wait_for(
        lambda: org.sdk.files.retrieve(later).status == "processed", timeout=30, what="hand-off"
    )
    sent = orjson.dumps(gateway.upstream_requests("/v1/")).decode()
    assert later in sent  # the log names what was handed over
    assert stored.id not in sent and hashlib.sha256(data).hexdigest() not in sent


def test_a_bad_line_is_a_400_naming_it_and_nothing_is_kept(gateway: Gateway) -> None:
    lines = mixed_lines(held_out_items()).split(b"\n")
    for number, bad in ((3, b'{"question": '), (4, b'["not", "an", "object"]')):
        broken = b"\n".join([*lines[: number - 1], bad, *lines[number:]])
        with tenant(gateway) as org:
            with pytest.raises(openai.BadRequestError) as caught:
                org.sdk.files.create(file=("items.jsonl", broken), purpose="evals")
            error = caught.value.body
            assert isinstance(error, dict)
            assert (error["param"], error["line"]) == ("file", number)
            assert f"line {number}" in error["message"] and "evals file" in error["message"]
            assert org.sdk.files.list().data == []


def test_the_pii_policy_applies_to_evals_files(gateway: Gateway) -> None:
    clean = held_out_items()[:4]  # the fifth topic's answer holds an address of its own
    items = [*clean, {"question": "write to jane.doe@example.com", "answer": "ok"}]
    with tenant(gateway, {"pii": "redact"}) as org:
        stored = org.sdk.files.create(file=("items.jsonl", eval_lines(items)), purpose="evals")
        kept = org.sdk.files.content(stored.id).content
        assert b"jane.doe" not in kept and b"[EMAIL]" in kept
    with tenant(gateway, {"pii": "block"}) as org:
        with pytest.raises(openai.BadRequestError) as caught:
            org.sdk.files.create(file=("items.jsonl", eval_lines(items)), purpose="evals")
        assert caught.value.body["line"] == len(items)  # type: ignore[index]
        assert "jane.doe" not in orjson.dumps(caught.value.body).decode()


def test_another_orgs_file_is_404_and_a_fine_tune_file_is_400(gateway: Gateway) -> None:
    with tenant(gateway) as org, tenant(gateway) as other:
        theirs = org.sdk.files.create(
            file=("items.jsonl", eval_lines(held_out_items())), purpose="evals"
        )
        made = other.sdk.evals.create(data_source_config=SOURCE, testing_criteria=CRITERIA)
        with pytest.raises(openai.NotFoundError) as missing:
            other.sdk.evals.runs.create(made.id, data_source=from_file(BASE, theirs.id))
        assert missing.value.body["param"] == "data_source.source.id"  # type: ignore[index]
        training = upload(other.sdk)
        with pytest.raises(openai.BadRequestError) as wrong:
            other.sdk.evals.runs.create(made.id, data_source=from_file(BASE, training))
        assert wrong.value.body["param"] == "data_source.source.id"  # type: ignore[index]
        assert list(other.sdk.evals.runs.list(made.id)) == []
