"""Evals through the official SDK's `client.evals`: create, retrieve, update, list, delete;
bad bodies in OpenAI's envelope; another org's eval is unknown."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.api.conftest import Gateway
from tests.api.jobs_helpers import Tenant, tenant
from tests.evals_data import CLOSE, EXACT, SOURCE

# The SDK warns that OpenAI's own Evals API is being retired; tunegate serves the shape itself.
pytestmark = pytest.mark.filterwarnings("ignore:The Evals API is deprecated:DeprecationWarning")
CRITERIA: Any = [
    EXACT,
    {**CLOSE, "pass_threshold": 0.6},
    {
        "type": "score_model",
        "name": "judge",
        "model": "gpt-4o-mini",
        "input": [{"role": "user", "content": "Score {{sample.output_text}} from 0 to 1"}],
    },
]


@pytest.fixture
def org(gateway: Gateway) -> Iterator[Tenant]:
    with tenant(gateway) as made:
        yield made


def test_the_sdk_creates_reads_updates_lists_and_deletes_an_eval(org: Tenant) -> None:
    made = org.sdk.evals.create(
        name="support", data_source_config=SOURCE, testing_criteria=CRITERIA, metadata={"t": "1"}
    )
    assert made.id.startswith("eval_") and made.object == "eval" and made.name == "support"
    assert made.data_source_config.type == "custom"
    schema = made.data_source_config.schema_
    assert schema["properties"]["item"] == SOURCE["item_schema"]  # type: ignore[index]
    assert schema["required"] == ["item", "sample"]
    assert [c.name for c in made.testing_criteria] == ["exact", "close", "judge"]
    assert made.testing_criteria[1].type == "text_similarity"

    assert org.sdk.evals.retrieve(made.id).model_dump() == made.model_dump()
    renamed = org.sdk.evals.update(made.id, name="support v2", metadata={"t": "2"})
    assert (renamed.name, renamed.metadata) == ("support v2", {"t": "2"})
    assert renamed.model_dump()["testing_criteria"] == made.model_dump()["testing_criteria"]

    other = org.sdk.evals.create(data_source_config=SOURCE, testing_criteria=CRITERIA[:1])
    listed = org.sdk.evals.list(limit=1)
    assert [e.id for e in listed.data] == [made.id] and listed.has_more
    assert [e.id for e in org.sdk.evals.list(after=made.id)] == [other.id]
    assert [e.id for e in org.sdk.evals.list(order="desc")] == [other.id, made.id]

    gone = org.sdk.evals.delete(made.id)
    assert (gone.deleted, gone.eval_id) == (True, made.id)
    with pytest.raises(openai.NotFoundError):
        org.sdk.evals.retrieve(made.id)
    assert [e.id for e in org.sdk.evals.list()] == [other.id]


@pytest.mark.parametrize(
    ("criterion", "param", "words"),
    [
        (
            {"type": "python", "name": "p", "source": "def grade(s, i): return 1"},
            "testing_criteria[0].type",
            "runs no code",
        ),
        ({**CRITERIA[0], "operation": "regex"}, "testing_criteria[0].operation", "Invalid"),
        ({**CRITERIA[1], "pass_threshold": 2}, "testing_criteria[0].pass_threshold", "Invalid"),
    ],
)
def test_bad_criteria_are_a_400_naming_the_param_and_store_nothing(
    org: Tenant, criterion: dict[str, Any], param: str, words: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        org.sdk.evals.create(data_source_config=SOURCE, testing_criteria=[criterion])
    error = caught.value.body
    assert isinstance(error, dict) and error["param"] == param and words in error["message"]
    assert list(org.sdk.evals.list()) == []


def test_a_grader_model_the_policy_does_not_allow_is_refused(gateway: Gateway) -> None:
    with tenant(gateway, {"allowed_models": ["gpt-4o"]}) as narrow:
        with pytest.raises(openai.BadRequestError) as caught:
            narrow.sdk.evals.create(data_source_config=SOURCE, testing_criteria=CRITERIA)
        error = caught.value.body
        assert isinstance(error, dict) and error["param"] == "testing_criteria[2].model"
        assert "gpt-4o-mini" in error["message"] and error["code"] == "model_not_found"
        assert list(narrow.sdk.evals.list()) == []
        judge = {**CRITERIA[2], "model": "gpt-4o"}
        made = narrow.sdk.evals.create(data_source_config=SOURCE, testing_criteria=[judge])
        assert made.testing_criteria[0].model == "gpt-4o"  # type: ignore[union-attr]


def test_another_orgs_eval_is_unknown(gateway: Gateway, org: Tenant) -> None:
    made = org.sdk.evals.create(data_source_config=SOURCE, testing_criteria=CRITERIA[:1])
    with tenant(gateway) as other:
        for call in (
            lambda: other.sdk.evals.retrieve(made.id),
            lambda: other.sdk.evals.update(made.id, name="mine"),
            lambda: other.sdk.evals.delete(made.id),
        ):
            with pytest.raises(openai.NotFoundError) as caught:
                call()
            assert caught.value.body == org_not_found(made.id)
        assert list(other.sdk.evals.list()) == []
    assert org.sdk.evals.retrieve(made.id).name == ""


def org_not_found(eval_id: str) -> dict[str, Any]:
    return {
        "message": f"Eval with id '{eval_id}' not found.",
        "type": "invalid_request_error",
        "param": "eval_id",
        "code": "not_found",
    }
