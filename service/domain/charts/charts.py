"""The charts tunegate serves as SVG: one job's loss and accuracy curves, and many trials'
validation curves with the best one highlighted (hyperparameter sweeps).

`render_metrics_svg` stacks two panels sharing the step axis: loss above, token accuracy below,
training in blue, validation in vermillion and full validation in green (Okabe-Ito colours,
distinguishable with the common colour-vision deficiencies). A missing value leaves a gap, but
a series measured every k-th step (validation often is) is joined at that cadence. The drawing
itself (axes, series, escaping) is `charts.svg`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from service.domain.charts.annotations import (
    JobFacts,
    draw_epochs,
    draw_marks,
    empty_reason,
    epoch_steps,
    job_subtitle,
    job_title,
)
from service.domain.charts.svg import (
    Axis,
    Frame,
    Panel,
    Point,
    caption,
    document,
    draw_grid,
    draw_series,
    legend_entry,
    legend_width,
    line,
    nice_axis,
    note,
    shorten,
)
from service.domain.jobs.metrics import VALUES, StepRow

METRICS_WIDTH, CURVES_WIDTH = 880, 980
TRAIN, VALID, FULL_VALID = "#0072B2", "#D55E00", "#009E73"
HIGHLIGHT = "#D55E00"
TRIAL_COLOURS = ("#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#7F7F7F", "#8C6D31")
LEGEND_LIMIT = 14
LABEL_LIMIT = 34
EMPTY = "No metrics yet"


class _Series(NamedTuple):
    name: str
    colour: str
    loss: str  # the StepRow field drawn in the loss panel
    accuracy: str  # and in the accuracy panel
    width: float


_SERIES = (
    _Series("Training", TRAIN, "train_loss", "train_mean_token_accuracy", 1.6),
    _Series("Validation", VALID, "valid_loss", "valid_mean_token_accuracy", 2.2),
    _Series(
        "Full validation", FULL_VALID, "full_valid_loss", "full_valid_mean_token_accuracy", 2.2
    ),
)


@dataclass(frozen=True, slots=True)
class Curve:
    """One trial's curve: `points` are (step, value) with None where the value is missing."""

    id: str
    label: str
    points: Sequence[Point]
    stopped: bool = False  # stopped early: drawn dashed, crossed at its last point, labelled


def render_metrics_svg(
    rows: Sequence[StepRow], title: str = "Training metrics", job: JobFacts | None = None
) -> str:
    """With `job`, the chart is titled by the job, its step axis spans the whole job, its loss
    axis starts at zero and its accuracy axis is 0 to 1 (so neither moves as steps arrive),
    epochs are marked, and the best and final values of the curve that matters are ringed."""
    loss_frame, accuracy_frame = Frame(90, 96, 760, 210), Frame(90, 368, 760, 210)
    table = _Table(rows)
    present = [s for s in _SERIES if _column(table, s.loss) or _column(table, s.accuracy)]
    total = job.total_steps if job is not None and job.total_steps else 0
    x = _step_axis([*(row.step for row in rows), total])
    loss_values = _values(table, [s.loss for s in present])
    accuracy_values = _values(table, [s.accuracy for s in present])
    if job is not None:
        loss_values, accuracy_values = [0.0, *(loss_values or [1.0])], [0.0, 1.0]
    loss = Panel(loss_frame, x, nice_axis(loss_values))
    accuracy = Panel(accuracy_frame, x, nice_axis(accuracy_values, bounds=(0.0, 1.0)))
    parts = draw_grid(loss, "Loss", x_labels=False)
    parts += draw_grid(accuracy, "Token accuracy", x_labels=True)
    parts.append(caption(accuracy_frame.left + accuracy_frame.width / 2, 622, "Step"))
    epochs = epoch_steps(job)
    parts += draw_epochs(loss, epochs, labels=True) + draw_epochs(accuracy, epochs, labels=False)
    for series in present:
        parts += draw_series(loss, _points(table, series.loss), series.colour, width=series.width)
        accuracy_points = _points(table, series.accuracy)
        parts += draw_series(accuracy, accuracy_points, series.colour, width=series.width)
    if job is not None and present:
        parts += _marks(table, present, loss, accuracy)
    if not present:
        empty = empty_reason(job.status) if job is not None else EMPTY
        parts += [note(loss_frame, empty), note(accuracy_frame, empty)]
    parts += _legend_row([(series.name, series.colour) for series in present], y=80)
    if job is None:
        return document(METRICS_WIDTH, 650, title, parts)
    return document(METRICS_WIDTH, 650, job_title(job), parts, subtitle=job_subtitle(job))


def _marks(table: _Table, present: Sequence[_Series], loss: Panel, accuracy: Panel) -> list[str]:
    """Best and final of the last series drawn with values (validation over training)."""
    parts: list[str] = []
    for panel, field, lower in ((loss, "loss", True), (accuracy, "accuracy", False)):
        chosen = [s for s in present if _column(table, getattr(s, field))]
        if chosen:
            points = _points(table, getattr(chosen[-1], field))
            parts += draw_marks(panel, points, lower_is_better=lower, frame=panel.frame)
    return parts


def render_curves_svg(
    series: Sequence[Curve],
    highlight: str | None = None,
    title: str = "Validation loss by trial",
    y_label: str = "Validation loss",
    subtitle: str | None = None,
    empty: str = "No validation results yet",
) -> str:
    """Every trial's curve on one chart; the `highlight` trial (the best) drawn bold, on top."""
    frame = Frame(90, 76, 540, 380)
    points = [point for curve in series for point in curve.points]
    x = _step_axis(step for step, _ in points)
    panel = Panel(frame, x, nice_axis(value for _, value in points if value is not None))
    parts = draw_grid(panel, y_label, x_labels=True)
    parts.append(caption(frame.left + frame.width / 2, frame.bottom + 44, "Step"))
    colours = _trial_colours(series, highlight)
    for curve in sorted(series, key=lambda curve: curve.id == highlight):  # the best on top
        width, opacity = (3.5, 1.0) if curve.id == highlight else (2.0, 0.7)
        colour = colours[curve.id]
        dash = "6 4" if curve.stopped else None
        parts += draw_series(
            panel, curve.points, colour, width=width, opacity=opacity, dots=False, dash=dash
        )
        if curve.stopped:
            parts += _stop_cross(panel, curve.points, colour)
    if not any(value is not None for _, value in points):
        parts.append(note(frame, empty))
    parts += _legend_column(series, highlight, colours, left=frame.right + 32, top=frame.top + 6)
    return document(CURVES_WIDTH, 520, title, parts, subtitle=subtitle)


def _stop_cross(panel: Panel, points: Sequence[Point], colour: str) -> list[str]:
    present = [(x, y) for x, y in points if y is not None]
    if not present:
        return []
    cx, cy = panel.at(*max(present))
    return [
        line(cx - 6, cy - 6, cx + 6, cy + 6, colour, width=2.5),
        line(cx - 6, cy + 6, cx + 6, cy - 6, colour, width=2.5),
    ]


def _step_axis(steps: Iterable[float]) -> Axis:
    # Steps count from 1; the axis starts at 0 and ends at the last step (at 1 before any).
    return nice_axis([0, 1, *steps], integer=True, tight=True)


def _trial_colours(series: Sequence[Curve], highlight: str | None) -> dict[str, str]:
    others = [curve.id for curve in series if curve.id != highlight]
    colours = {cid: TRIAL_COLOURS[i % len(TRIAL_COLOURS)] for i, cid in enumerate(others)}
    return colours | ({highlight: HIGHLIGHT} if highlight is not None else {})


def _legend_column(
    series: Sequence[Curve], highlight: str | None, colours: dict[str, str], left: float, top: float
) -> list[str]:
    best = [curve for curve in series if curve.id == highlight]
    others = [curve for curve in series if curve.id != highlight]
    parts, y = [], top
    for curve in best:
        parts.append(caption(left, y, "Best", anchor="start"))
        label = shorten(curve.label, LABEL_LIMIT)
        parts.append(legend_entry(left, y + 22, label, colours[curve.id], width=4.0, bold=True))
        y += 56
    for curve in others[:LEGEND_LIMIT]:
        label = shorten(curve.label, LABEL_LIMIT) + (" (stopped)" if curve.stopped else "")
        dash = "6 4" if curve.stopped else None
        parts.append(legend_entry(left, y, label, colours[curve.id], dash=dash))
        y += 22
    if len(others) > LEGEND_LIMIT:
        parts.append(caption(left, y, f"+{len(others) - LEGEND_LIMIT} more", anchor="start"))
    return parts


def _legend_row(entries: list[tuple[str, str]], y: float) -> list[str]:
    gap = 32
    total = sum(legend_width(name) for name, _ in entries) + gap * (len(entries) - 1)
    x, parts = (METRICS_WIDTH - total) / 2, []
    for name, colour in entries:
        parts.append(legend_entry(x, y, name, colour))
        x += legend_width(name) + gap
    return parts


class _Table:
    """Each value's points and present values, read from the rows once (a long job has tens of
    thousands of rows and the chart asks for each column several times)."""

    def __init__(self, rows: Sequence[StepRow]) -> None:
        self.points = {key: [(row.step, getattr(row, key)) for row in rows] for key in VALUES}
        self.present = {
            key: [value for _, value in points if value is not None]
            for key, points in self.points.items()
        }


def _column(table: _Table, key: str) -> list[float]:
    return table.present[key]


def _values(table: _Table, keys: list[str]) -> list[float]:
    return [value for key in keys for value in _column(table, key)]


def _points(table: _Table, key: str) -> list[Point]:
    return table.points[key]  # type: ignore[return-value]
