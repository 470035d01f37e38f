"""A hyperparameter sweep with real worker processes and a real Redis: a worker killed while the
sweep's trials are being handed upstream leaves no duplicate trial, and the sweep still finds
the sandbox's known best."""

from __future__ import annotations

from collections import Counter

import pytest

from service.sandbox import training
from tests.api.datasets import chat_jsonl
from tests.api.sweeps_helpers import hyperparameters, sweep_body, sweep_jobs, wait_sweep
from tests.integration.conftest import Deployment
from tests.integration.test_jobs import (
    creates_for,
    hang_creates,
    processed_file,
    sdk_for,
    upstream_jobs,
)
from tests.support import wait_for

pytestmark = pytest.mark.integration
TRAINING_EXAMPLES = 20


def test_a_sweep_survives_a_worker_killed_mid_way(deployment: Deployment) -> None:
    key = deployment.org_with_key("member", policy={"pii": "allow"})
    space = {"n_epochs": [9], "learning_rate_multiplier": [0.3, 1.0, 3.0]}
    with sdk_for(deployment, key) as sdk, deployment.client(key) as http:
        train = processed_file(sdk, "sweep")
        valid = sdk.files.create(file=("v.jsonl", chat_jsonl(10, salt="v")), purpose="fine-tune")
        hang_creates(deployment)  # the first trial handed upstream hangs there
        body = sweep_body(train, valid.id, space=space, max_parallel=2)
        created = http.post("/v1/sweeps", json=body)
        assert created.status_code == 200, created.text
        sweep_id = created.json()["id"]

        def hung_trial() -> list[str]:
            trials = http.get(f"/v1/sweeps/{sweep_id}").json()["trials"]
            ids = [trial["job_id"] for trial in trials if trial["job_id"]]
            faults = {
                job_id: [c["fault"] for c in creates_for(deployment, job_id)] for job_id in ids
            }
            return [job_id for job_id, found in faults.items() if found == ["hang"]]

        [stuck] = wait_for(hung_trial, timeout=120, what="a trial's create to hang")
        deployment.kill_worker(deployment.workers[0])
        deployment.start_worker()
        sweep = wait_sweep(http, sweep_id, timeout=240)
        listed = sweep_jobs(http, sweep_id)

    assert sweep["status"] == "succeeded"
    assert hyperparameters(sweep["best_trial"]) == training.best_hyperparameters(TRAINING_EXAMPLES)
    assert [trial["status"] for trial in sweep["trials"]] == ["succeeded"] * 3
    assert sorted(job["id"] for job in listed) == sorted(t["job_id"] for t in sweep["trials"])
    assert Counter(job["metadata"]["tunegate_trial"] for job in listed) == Counter("012")
    for trial in sweep["trials"]:
        assert len(upstream_jobs(deployment, trial["job_id"])) == 1
    assert [entry["fault"] for entry in creates_for(deployment, stuck)] == ["hang", None]
