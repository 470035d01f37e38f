"""The loss curves: deterministic in hyperparameters and seed, with a best that is best."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from openai import OpenAI
from sandbox_helpers import chat_lines, upload, wait_for

from service.sandbox import training
from service.sandbox.training import Hyperparameters


def metrics_curve(client: OpenAI, job_id: str) -> list[tuple[int, float, float]]:
    events = client.fine_tuning.jobs.list_events(job_id, limit=100).data
    points = []
    for event in reversed(events):
        if event.type == "metrics" and isinstance(event.data, dict):
            points.append((event.data["step"], event.data["train_loss"], event.data["valid_loss"]))
    return points


def sweep_job(client: OpenAI, train: str, valid: str, hp: Hyperparameters, seed: int) -> str:
    hyperparameters: Any = {
        "n_epochs": hp.n_epochs,
        "batch_size": hp.batch_size,
        "learning_rate_multiplier": hp.learning_rate_multiplier,
    }
    return client.fine_tuning.jobs.create(
        model="gpt-4o-mini",
        training_file=train,
        validation_file=valid,
        seed=seed,
        method={"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
    ).id


def test_same_hyperparameters_and_seed_give_the_same_curve(client: OpenAI) -> None:
    train, valid = upload(client, chat_lines(20)), upload(client, chat_lines(4), "v.jsonl")
    hp = Hyperparameters(3, 2, 0.5)
    ids = [sweep_job(client, train, valid, hp, seed) for seed in (11, 11, 12)]
    curves = [metrics_curve(client, wait_for(client, i, {"succeeded"}).id) for i in ids]
    assert curves[0] == curves[1]
    assert curves[0] != curves[2]
    final_step, _, final_valid = curves[0][-1]
    assert final_step == training.total_steps(hp, 20) == 30
    assert final_valid == training.final_valid_loss(hp, 20, 11)


def test_the_documented_best_wins_a_sweep_through_the_api(client: OpenAI) -> None:
    train, valid = upload(client, chat_lines(20)), upload(client, chat_lines(4), "v.jsonl")
    best = training.best_hyperparameters(20)
    assert best == Hyperparameters(9, 1, 1.0)
    grid = [
        Hyperparameters(epochs, batch, lr)
        for epochs, batch, lr in itertools.product((3, 9, 14), (1, 4), (0.3, 1.0, 3.0))
    ]
    ids = {hp: sweep_job(client, train, valid, hp, seed=5) for hp in grid}
    finals = {
        hp: metrics_curve(client, wait_for(client, i, {"succeeded"}).id)[-1][2]
        for hp, i in ids.items()
    }
    assert min(finals, key=lambda hp: finals[hp]) == best
    assert finals[best] == training.best_valid_loss(20)


def test_overfitting_raises_validation_loss_late() -> None:
    hp = Hyperparameters(10, 1, 1.0)
    n = 100
    assert training.best_epochs(n) == 4
    curve = [training.valid_curve(e / 2, hp, n) for e in range(1, 21)]
    lowest = curve.index(min(curve))
    assert lowest == 7
    assert curve[-1] > curve[lowest] + 0.1


@given(
    n_examples=st.integers(min_value=10, max_value=5000),
    n_epochs=st.integers(min_value=1, max_value=20),
    batch_size=st.sampled_from([1, 2, 4, 8, 16, 32, 64]),
    lr=st.floats(min_value=0.05, max_value=10.0),
    seed=st.integers(min_value=0, max_value=2**31),
)
def test_nothing_beats_the_documented_best(
    n_examples: int, n_epochs: int, batch_size: int, lr: float, seed: int
) -> None:
    best = training.best_hyperparameters(n_examples)
    other = Hyperparameters(n_epochs, batch_size, lr)
    best_loss = training.final_valid_loss(best, n_examples, seed)
    assert best_loss == training.best_valid_loss(n_examples)
    loss = training.final_valid_loss(other, n_examples, seed)
    assert loss >= best_loss
    if (n_epochs, batch_size) != (best.n_epochs, best.batch_size) or abs(lr - 1) > 0.01:
        assert loss > best_loss


def test_auto_hyperparameters_follow_openai_defaults() -> None:
    assert training.auto_hyperparameters(10) == Hyperparameters(10, 1, 1.8)
    assert training.auto_hyperparameters(50) == Hyperparameters(3, 1, 1.8)
    assert training.auto_hyperparameters(20_000) == Hyperparameters(1, 40, 1.8)


def test_reported_steps_spread_over_the_schedule() -> None:
    assert training.reported_steps(5, 12) == [1, 2, 3, 4, 5]
    steps = training.reported_steps(100, 4)
    assert steps == [25, 50, 75, 100]
    assert training.reported_steps(7, None) == list(range(1, 8))
