"""The sandbox's training curves: a pure, deterministic function of hyperparameters and seed.

A job on `N` training examples with `n_epochs = E`, `batch_size = B` and
`learning_rate_multiplier = L` is modelled in epochs `e` (fractional, `0 < e <= E`):

    valid(e) = floor(N) + D * exp(-r(L) * e) + O(N) * max(0, e - E*(N))
               + 0.25 * ln(L)^2 + 0.03 * log2(B / B*(N))^2

    floor(N) = 0.15 + 0.6 / sqrt(N)          what a perfect run can reach
    D        = 1.8                           excess loss before training
    r(L)     = 0.9 * sqrt(min(L, 1))         learning speed per epoch; a small L learns slowly
    E*(N)    = clamp(round(40 / sqrt(N)), 1, 10)        best epoch count: fewer for more data
    B*(N)    = clamp(2 ** round(log2(N / 100)), 1, 32)  best batch size: 1 below ~140 examples
    O(N)     = max(0.04, 1.35 * D * exp(-0.9 * E*))     overfitting: valid loss rises past E*

The final validation loss adds a seeded jitter that shrinks to zero at the optimum:

    final_valid_loss = v + 0.1 * (v - best_valid_loss(N)) * u(seed, E, B, L, N),  u in [-1, 1]

where `v = valid(E)`. So the **known best** is `best_hyperparameters(N)`: `n_epochs = E*(N)`,
`batch_size = B*(N)`, `learning_rate_multiplier = 1.0`, with `final_valid_loss =
best_valid_loss(N) = floor(N) + D * exp(-0.9 * E*(N))` for every seed; every other setting
is strictly worse whatever its seed. Training loss follows the same shape slightly lower, keeps
falling past E*, and oscillates with amplitude `0.08 * sqrt(L / B)` (small batches are noisy):
rank trials on validation loss (jobs report it when given a validation file), not training loss.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

INITIAL_EXCESS = 1.8
BASE_RATE = 0.9
LR_PENALTY = 0.25
BATCH_PENALTY = 0.03
JITTER = 0.1
DIGITS = 6


@dataclass(frozen=True)
class Hyperparameters:
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float


@dataclass(frozen=True)
class StepMetrics:
    step: int
    train_loss: float
    train_mean_token_accuracy: float
    valid_loss: float | None
    valid_mean_token_accuracy: float | None


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def best_epochs(n_examples: int) -> int:
    return int(_clamp(round(40 / math.sqrt(n_examples)), 1, 10))


def best_batch_size(n_examples: int) -> int:
    return int(_clamp(2 ** round(math.log2(n_examples / 100)), 1, 32))


def best_hyperparameters(n_examples: int) -> Hyperparameters:
    return Hyperparameters(best_epochs(n_examples), best_batch_size(n_examples), 1.0)


def loss_floor(n_examples: int) -> float:
    return 0.15 + 0.6 / math.sqrt(n_examples)


def _best_raw(n_examples: int) -> float:
    return loss_floor(n_examples) + INITIAL_EXCESS * math.exp(-BASE_RATE * best_epochs(n_examples))


def best_valid_loss(n_examples: int) -> float:
    return round(_best_raw(n_examples), DIGITS)


def auto_hyperparameters(n_examples: int) -> Hyperparameters:
    """OpenAI's documented defaults: ~3 epochs kept within 100..25,000 example passes,
    a batch of ~0.2% of the examples (at most 256); the multiplier is the sandbox's choice."""
    if n_examples * 3 < 100:
        epochs = min(25, math.ceil(100 / n_examples))
    elif n_examples * 3 > 25_000:
        epochs = max(1, 25_000 // n_examples)
    else:
        epochs = 3
    batch = int(_clamp(round(0.002 * n_examples), 1, 256))
    return Hyperparameters(epochs, batch, 1.8)


def steps_per_epoch(hp: Hyperparameters, n_examples: int) -> int:
    return math.ceil(n_examples / hp.batch_size)


def total_steps(hp: Hyperparameters, n_examples: int) -> int:
    return hp.n_epochs * steps_per_epoch(hp, n_examples)


def reported_steps(total: int, cap: int | None) -> list[int]:
    """The steps a job reports metrics at: all of them, or `cap` evenly spaced ones."""
    if cap is None or total <= cap:
        return list(range(1, total + 1))
    return [math.ceil(i * total / cap) for i in range(1, cap + 1)]


def _unit(*parts: object) -> float:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**63 - 1.0


def _rate(hp: Hyperparameters) -> float:
    return BASE_RATE * math.sqrt(min(hp.learning_rate_multiplier, 1.0))


def _overfit_slope(n_examples: int) -> float:
    return max(
        0.04, 1.5 * BASE_RATE * INITIAL_EXCESS * math.exp(-BASE_RATE * best_epochs(n_examples))
    )


def _penalty(hp: Hyperparameters, n_examples: int) -> float:
    lr = LR_PENALTY * math.log(hp.learning_rate_multiplier) ** 2
    batch = BATCH_PENALTY * math.log2(hp.batch_size / best_batch_size(n_examples)) ** 2
    return lr + batch


def valid_curve(epoch: float, hp: Hyperparameters, n_examples: int) -> float:
    """The noise-free validation loss after `epoch` epochs."""
    overfit = _overfit_slope(n_examples) * max(0.0, epoch - best_epochs(n_examples))
    learned = INITIAL_EXCESS * math.exp(-_rate(hp) * epoch)
    return loss_floor(n_examples) + learned + overfit + _penalty(hp, n_examples)


def final_valid_loss(hp: Hyperparameters, n_examples: int, seed: int) -> float:
    """The validation loss a job reports at its last step (see the module docstring)."""
    value = valid_curve(hp.n_epochs, hp, n_examples)
    gap = value - _best_raw(n_examples)
    jitter = (
        JITTER
        * gap
        * _unit(seed, hp.n_epochs, hp.batch_size, hp.learning_rate_multiplier, n_examples)
    )
    return round(value + jitter, DIGITS)


def _train_loss(step: int, hp: Hyperparameters, n_examples: int, seed: int) -> float:
    epoch = step / steps_per_epoch(hp, n_examples)
    overfit = _overfit_slope(n_examples) * max(0.0, epoch - best_epochs(n_examples))
    learned = INITIAL_EXCESS * math.exp(-1.1 * _rate(hp) * epoch)
    amplitude = 0.08 * math.sqrt(hp.learning_rate_multiplier / hp.batch_size)
    noise = amplitude * _unit(seed, "train", step)
    value = 0.85 * loss_floor(n_examples) + learned - 0.5 * overfit + _penalty(hp, n_examples)
    return max(0.01, value + noise)


def _valid_loss(step: int, hp: Hyperparameters, n_examples: int, seed: int) -> float:
    if step >= total_steps(hp, n_examples):
        return final_valid_loss(hp, n_examples, seed)
    epoch = step / steps_per_epoch(hp, n_examples)
    amplitude = 0.03 * math.sqrt(hp.learning_rate_multiplier / hp.batch_size)
    return max(0.01, valid_curve(epoch, hp, n_examples) + amplitude * _unit(seed, "valid", step))


def final_train_loss(hp: Hyperparameters, n_examples: int, seed: int) -> float:
    return round(_train_loss(total_steps(hp, n_examples), hp, n_examples, seed), DIGITS)


def token_accuracy(loss: float) -> float:
    return round(math.exp(-0.6 * loss), DIGITS)


def step_metrics(
    step: int, hp: Hyperparameters, n_examples: int, seed: int, *, with_validation: bool
) -> StepMetrics:
    train = round(_train_loss(step, hp, n_examples, seed), DIGITS)
    if not with_validation:
        return StepMetrics(step, train, token_accuracy(train), None, None)
    valid = round(_valid_loss(step, hp, n_examples, seed), DIGITS)
    return StepMetrics(step, train, token_accuracy(train), valid, token_accuracy(valid))
