"""What a job's chart says about the job: a title naming model, suffix, hyperparameters and
status; why it is empty; where each epoch starts; and the final and best values, marked.

`JobFacts` is what the chart needs to know about a job beyond its step rows. With it the step
axis spans the whole job (`total_steps`) while it runs, so the curve grows into a fixed frame
instead of the frame stretching under it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from service.domain.charts.svg import INK, Frame, Panel, Point, draw_text, line

EPOCH_LINE = "#6b7280"
_HYPERPARAMETER_NAMES = {
    "n_epochs": "epochs",
    "batch_size": "batch",
    "learning_rate_multiplier": "LR multiplier",
    "beta": "beta",
}
_WAITING = {"validating_files", "queued"}
_ENDED_EARLY = {"failed", "cancelled"}


@dataclass(frozen=True, slots=True)
class JobFacts:
    model: str
    status: str
    suffix: str | None = None
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    total_steps: int | None = None

    @property
    def epochs(self) -> int | None:
        value = self.hyperparameters.get("n_epochs")
        return (
            value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
        )


def job_title(facts: JobFacts) -> str:
    name = f"{facts.model} · {facts.suffix}" if facts.suffix else facts.model
    return f"{name} — {facts.status}"


def job_subtitle(facts: JobFacts) -> str:
    shown = [
        f"{_HYPERPARAMETER_NAMES.get(name, name)} {value}"
        for name, value in facts.hyperparameters.items()
        if value is not None
    ]
    return " · ".join(shown) if shown else "hyperparameters: auto"


def empty_reason(status: str | None) -> str:
    """Why a job has no metrics to draw, in the words of its status."""
    if status in _WAITING:
        return f"No steps yet: the job is {status.replace('_', ' ')}"
    if status == "running":
        return "Running: the first step's metrics are not in yet"
    if status in _ENDED_EARLY:
        return f"The job was {status} before its first step"
    if status == "succeeded":
        return "The upstream reported no step metrics"
    if status == "paused":
        return "Paused before its first step"
    return "No metrics yet"


def epoch_steps(facts: JobFacts | None) -> list[float]:
    """The steps where epochs 2..n begin (boundaries inside the axis)."""
    if facts is None or facts.epochs is None or not facts.total_steps or facts.epochs < 2:
        return []
    per_epoch = facts.total_steps / facts.epochs
    return [per_epoch * k for k in range(1, facts.epochs)]


def draw_epochs(panel: Panel, steps: Sequence[float], labels: bool) -> list[str]:
    f, parts = panel.frame, []
    for index, step in enumerate(steps, start=2):
        x, _ = panel.at(step, panel.y.lo)
        parts.append(line(x, f.top, x, f.bottom, EPOCH_LINE, dash="4 4"))
        if labels:
            parts.append(draw_text(x + 4, f.top + 12, f"epoch {index}", anchor="start", size=11))
    return parts


def best_and_final(points: Sequence[Point], lower_is_better: bool) -> tuple[Point, Point] | None:
    present = [(x, y) for x, y in points if y is not None]
    if not present:
        return None
    choose = min if lower_is_better else max
    best = choose(present, key=lambda point: (point[1], point[0]))
    return best, max(present, key=lambda point: point[0])


def draw_marks(
    panel: Panel, points: Sequence[Point], *, lower_is_better: bool, frame: Frame
) -> list[str]:
    """A ring on the best value and a square on the final one, each with its value."""
    found = best_and_final(points, lower_is_better)
    if found is None:
        return []
    (best_x, best_y), (last_x, last_y) = found
    parts = []
    bx, by = panel.at(best_x, best_y or 0.0)
    parts.append(
        f'<circle cx="{bx:.1f}" cy="{by:.1f}" r="6" fill="none" stroke="{INK}" stroke-width="1.6"/>'
    )
    below = by + 20 if by < frame.bottom - 24 else by - 12
    parts.append(draw_text(bx, below, f"best {best_y:.4g} @ {best_x:g}", anchor="middle", size=11))
    if (last_x, last_y) != (best_x, best_y):
        lx, ly = panel.at(last_x, last_y or 0.0)
        parts.append(
            f'<rect x="{lx - 5:.1f}" y="{ly - 5:.1f}" width="10" height="10" fill="none" '
            f'stroke="{INK}" stroke-width="1.6"/>'
        )
        above = ly - 10 if ly > frame.top + 24 else ly + 22
        parts.append(draw_text(lx, above, f"final {last_y:.4g}", anchor="end", size=11))
    return parts
