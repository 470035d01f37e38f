"""Helpers for the sweep tests: sweep bodies, waiting on a sweep, a callback receiver, and what
the sandbox's curves say a trial should score."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from service.sandbox import SandboxConfig, training
from service.sandbox.training import Hyperparameters
from tests.api.conftest import UPSTREAM_KEY
from tests.support import post_receiver, wait_for

ENDED = ("succeeded", "failed", "cancelled")
# Trials that run for about six seconds: long enough to be seen running, stopped and cancelled.
STEADY_SANDBOX = SandboxConfig(
    api_key=UPSTREAM_KEY,
    org_name="steady-org",
    validating_seconds=0.05,
    queued_seconds=0.05,
    # slow enough that an early stop decided at the first metrics reaches the upstream before
    # the trial ends, even on a loaded machine
    step_seconds=1.2,
    total_steps=10,
)


def sweep_body(training_file: str, validation_file: str | None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "training_file": training_file,
        "method": {"type": "supervised", "supervised": {"hyperparameters": {"batch_size": 1}}},
        "search": {"type": "grid"},
        "space": {"n_epochs": [3, 9], "learning_rate_multiplier": [0.3, 1.0, 3.0]},
        "seed": 7,
    }
    if validation_file is not None:
        body["validation_file"] = validation_file
    return body | fields


def create(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/sweeps", json=body)
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


def wait_sweep(
    client: httpx.Client, sweep_id: str, statuses: tuple[str, ...] = ENDED, timeout: float = 120
) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        sweep: dict[str, Any] = client.get(f"/v1/sweeps/{sweep_id}").json()
        return sweep if sweep["status"] in statuses else None

    found: dict[str, Any] = wait_for(
        ended, timeout=timeout, interval=0.3, what=f"{sweep_id} to be {'/'.join(statuses)}"
    )
    return found


def hyperparameters(trial: dict[str, Any]) -> Hyperparameters:
    values = {"batch_size": 1, **trial["hyperparameters"]}
    return Hyperparameters(
        values["n_epochs"], values["batch_size"], float(values["learning_rate_multiplier"])
    )


def sweep_jobs(client: httpx.Client, sweep_id: str) -> list[dict[str, Any]]:
    params = {"metadata[tunegate_sweep]": sweep_id, "limit": 100}
    data: list[dict[str, Any]] = client.get("/v1/fine_tuning/jobs", params=params).json()["data"]
    return data


def predicted_curve(hp: Hyperparameters, examples: int, seed: int) -> list[tuple[int, float]]:
    """The validation loss the sandbox reports for a job: at its reported steps and at every
    epoch's checkpoint."""
    total = training.total_steps(hp, examples)
    per_epoch = training.steps_per_epoch(hp, examples)
    steps = set(training.reported_steps(total, STEADY_SANDBOX.total_steps))
    steps |= {epoch * per_epoch for epoch in range(1, hp.n_epochs + 1)}
    points = []
    for step in sorted(steps):
        metrics = training.step_metrics(step, hp, examples, seed, with_validation=True)
        assert metrics.valid_loss is not None
        points.append((step, metrics.valid_loss))
    return points


@dataclass
class Hooks:
    """A callback receiver that takes everything: the bodies it was sent, by event type."""

    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [body for body in self.bodies if body["type"] == event_type]


@contextmanager
def hooks() -> Iterator[Hooks]:
    found = Hooks()
    lock = threading.Lock()

    def answer(path: str, headers: dict[str, str], body: bytes) -> int:
        with lock:
            found.bodies.append(orjson.loads(body))
        return 200

    with post_receiver(answer) as found.url:
        yield found
