"""Creating jobs: every check before anything is queued (a 400 naming OpenAI's `param`),
`Idempotency-Key`, and who may see and touch which job."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from service.ids import new_id
from tests.api.conftest import Gateway
from tests.api.jobs_helpers import Tenant, tenant, upload, upstream_creates, wait_status
from tests.support import wait_for


@pytest.fixture(scope="module")
def org(gateway: Gateway) -> Iterator[Tenant]:
    with tenant(gateway, policy={"allowed_models": ["gpt-4o-mini", "gpt-4.1-mini"]}) as found:
        yield found


@pytest.fixture(scope="module")
def training(org: Tenant) -> str:
    return upload(org.sdk)


@pytest.fixture(scope="module")
def foreign_file(gateway: Gateway) -> str:
    with tenant(gateway) as other:
        return upload(other.sdk)


def body(training: str, **fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "training_file": training, **fields}


BAD_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown model", {"model": "gpt-nope"}, "model"),
    ("not allowed by policy", {"model": "gpt-4o"}, "model"),
    ("not fine-tunable via method", {"method": {"type": "reinforcement"}}, "method.type"),
    ("epochs too high", {"hyperparameters": {"n_epochs": 51}}, "hyperparameters.n_epochs"),
    ("batch size zero", {"hyperparameters": {"batch_size": 0}}, "hyperparameters.batch_size"),
    (
        "learning rate not positive",
        {"hyperparameters": {"learning_rate_multiplier": 0}},
        "hyperparameters.learning_rate_multiplier",
    ),
    (
        "dpo beta too high",
        {"method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 3}}}},
        "method.dpo.hyperparameters.beta",
    ),
    ("dpo needs preference data", {"method": {"type": "dpo"}}, "training_file"),
    ("negative seed", {"seed": -1}, "seed"),
    ("suffix too long", {"suffix": "x" * 65}, "suffix"),
    ("too much metadata", {"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ("reserved metadata", {"metadata": {"tunegate_job_id": "mine"}}, "metadata"),
    ("split too large", {"validation_split": 0.5}, "validation_split"),
    ("unknown field", {"bogus": 1}, "bogus"),
]


@pytest.mark.parametrize(("case", "fields", "param"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_bad_requests_name_the_param_and_queue_nothing(
    gateway: Gateway, org: Tenant, training: str, case: str, fields: dict[str, Any], param: str
) -> None:
    with gateway.client(org.key) as client:
        before = client.get("/v1/fine_tuning/jobs", params={"limit": 100}).json()["data"]
        response = client.post("/v1/fine_tuning/jobs", json=body(training, **fields))
        after = client.get("/v1/fine_tuning/jobs", params={"limit": 100}).json()["data"]
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param, error
    assert error["type"] == "invalid_request_error"
    assert len(after) == len(before)


def test_files_of_another_org_look_like_missing_ones(
    gateway: Gateway, org: Tenant, training: str, foreign_file: str
) -> None:
    with gateway.client(org.key) as client:
        foreign = client.post("/v1/fine_tuning/jobs", json=body(foreign_file))
        missing = client.post("/v1/fine_tuning/jobs", json=body("file-doesnotexist"))
        validation = client.post(
            "/v1/fine_tuning/jobs", json=body(training, validation_file=foreign_file)
        )
    assert foreign.status_code == missing.status_code == validation.status_code == 400
    assert foreign.json()["error"]["param"] == "training_file"
    assert validation.json()["error"]["param"] == "validation_file"
    shape = foreign.json()["error"]["message"].replace(foreign_file, "<id>")
    assert shape == missing.json()["error"]["message"].replace("file-doesnotexist", "<id>")


def test_split_needs_enough_examples_and_no_validation_file(
    gateway: Gateway, org: Tenant, training: str
) -> None:
    small = upload(org.sdk, examples=10)
    with gateway.client(org.key) as client:
        too_small = client.post("/v1/fine_tuning/jobs", json=body(small, validation_split=0.2))
        both = client.post(
            "/v1/fine_tuning/jobs",
            json=body(training, validation_split=0.2, validation_file=training),
        )
    assert too_small.json()["error"]["param"] == "validation_split"
    assert both.json()["error"]["param"] == "validation_split"


def test_same_idempotency_key_and_body_give_the_same_job(
    gateway: Gateway, org: Tenant, training: str
) -> None:
    headers = {"Idempotency-Key": "retry-me-1"}
    first_body = body(training, hyperparameters={"n_epochs": 1}, metadata={"a": "1"})
    reordered = {
        "metadata": {"a": "1"},
        **body(training),
        "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}},
    }
    with gateway.client(org.key) as client:
        first = client.post("/v1/fine_tuning/jobs", json=first_body, headers=headers)
        again = client.post("/v1/fine_tuning/jobs", json=reordered, headers=headers)
        other = client.post(
            "/v1/fine_tuning/jobs", json=body(training, suffix="different"), headers=headers
        )
    assert first.status_code == again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    wait_status(org.sdk, first.json()["id"])
    assert len(upstream_creates(gateway, first.json()["id"])) == 1


def test_idempotency_keys_are_per_org(gateway: Gateway, org: Tenant, training: str) -> None:
    headers = {"Idempotency-Key": "shared-key"}
    with gateway.client(org.key) as client:
        mine = client.post("/v1/fine_tuning/jobs", json=body(training), headers=headers)
    with tenant(gateway) as other:
        with gateway.client(other.key) as client:
            theirs = client.post(
                "/v1/fine_tuning/jobs", json=body(upload(other.sdk)), headers=headers
            )
        assert theirs.status_code == 200 and theirs.json()["id"] != mine.json()["id"]
        wait_status(other.sdk, theirs.json()["id"])
    wait_status(org.sdk, mine.json()["id"])


JOB_ROUTES = [
    ("GET", ""),
    ("POST", "/cancel"),
    ("POST", "/pause"),
    ("POST", "/resume"),
    ("GET", "/events"),
    ("GET", "/checkpoints"),
    ("GET", "/metrics"),
    ("GET", "/metrics.svg"),
]


def test_another_orgs_job_is_not_found(gateway: Gateway, org: Tenant, training: str) -> None:
    job = org.sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training)
    with tenant(gateway) as other, gateway.client(other.key) as client:
        for method, suffix in JOB_ROUTES:
            foreign = client.request(method, f"/v1/fine_tuning/jobs/{job.id}{suffix}")
            missing = client.request(method, f"/v1/fine_tuning/jobs/ftjob-nope{suffix}")
            assert foreign.status_code == missing.status_code == 404, (method, suffix)
            assert foreign.json()["error"]["code"] == "fine_tune_not_found"
        assert client.get("/v1/fine_tuning/jobs").json()["data"] == []
    assert wait_status(org.sdk, job.id).status == "succeeded"


def test_keys_and_roles(gateway: Gateway, org: Tenant, training: str) -> None:
    _, inference_key = gateway.create_key(org.org_id, "inference")
    with gateway.client() as anonymous, gateway.client(inference_key) as limited:
        assert anonymous.get("/v1/fine_tuning/jobs").status_code == 401
        assert anonymous.post("/v1/fine_tuning/jobs", json=body(training)).status_code == 401
        assert limited.post("/v1/fine_tuning/jobs", json=body(training)).status_code == 403
        assert limited.get("/v1/fine_tuning/jobs").status_code == 403


def test_malformed_bodies_and_queries_are_400(gateway: Gateway, org: Tenant) -> None:
    with gateway.client(org.key) as client:
        garbled = client.post(
            "/v1/fine_tuning/jobs",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        listing = client.get("/v1/fine_tuning/jobs", params={"limit": 0})
        unknown = new_id("ftjob-")  # well-formed: a malformed id is a 404 before the query
        events = client.get(f"/v1/fine_tuning/jobs/{unknown}/events", params={"limit": "many"})
    for response in (garbled, listing, events):
        assert response.status_code == 400
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_sixteen_metadata_pairs_stay_whole_here_and_fifteen_go_upstream(
    gateway: Gateway, org: Tenant, training: str
) -> None:
    metadata = {f"k{i:02d}": str(i) for i in range(16)}
    job = org.sdk.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=training, metadata=metadata
    )
    assert job.metadata == metadata
    [create] = wait_for(lambda: upstream_creates(gateway, job.id), timeout=30, what="create")
    first_fifteen = dict(sorted(metadata.items())[:15])
    assert create["body"]["metadata"] == {**first_fifteen, "tunegate_job_id": job.id}
    found = org.sdk.fine_tuning.jobs.list(metadata={"k15": "15"}).data
    assert [listed.id for listed in found] == [job.id]
    wait_status(org.sdk, job.id)
