"""The usage page's charts: a measure (spend or tokens) day by day over a range, as bars, and
the same measure ranked by model or by key, as horizontal bars (the top few, the rest summed as
"other").

Both take plain (label, value) pairs, so they draw whatever `usage_report` grouped; an empty or
all-zero series draws the axes with the reason in words, never a blank picture.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from service.domain.charts.svg import (
    INK,
    Axis,
    Frame,
    Panel,
    caption,
    document,
    draw_grid,
    draw_text,
    nice_axis,
    note,
    shorten,
)

WIDTH = 880
BAR = "#0072B2"
OTHER_BAR = "#7F7F7F"
TOP = 8
OTHER = "other"
ROW = 30
LABEL_LIMIT = 28

Pair = tuple[str, float]


@dataclass(frozen=True, slots=True)
class Measure:
    """What the bars count: its axis label and how a value reads."""

    label: str
    money: bool

    def say(self, value: float) -> str:
        return f"${value:,.4f}" if self.money else f"{value:,.0f}"


SPEND = Measure("Spend (USD, estimated)", money=True)
TOKENS = Measure("Tokens", money=False)


def fill_days(days: Sequence[str], values: dict[str, float]) -> list[Pair]:
    """Every day of the range with its value, 0 for the days nothing was recorded."""
    return [(day, values.get(day, 0.0)) for day in days]


def top_with_other(pairs: Sequence[Pair], limit: int = TOP) -> list[Pair]:
    """The `limit` largest values, largest first (ties by label), and the sum of the rest as
    "other" when there is a rest; zero values are left out."""
    ranked = sorted((p for p in pairs if p[1] > 0), key=lambda p: (-p[1], p[0]))
    if len(ranked) <= limit:
        return ranked
    kept, rest = ranked[: limit - 1], ranked[limit - 1 :]
    return [*kept, (OTHER, sum(value for _, value in rest))]


def _axis(values: Sequence[float], measure: Measure) -> Axis:
    return nice_axis([0.0, *values], integer=not measure.money, bounds=(0.0, float("inf")))


def render_daily_svg(pairs: Sequence[Pair], measure: Measure, title: str, empty: str) -> str:
    """One bar per day, in order; `empty` is said when every day is zero."""
    frame = Frame(100, 70, 740, 260)
    values = [value for _, value in pairs]
    total = sum(values)
    y = _axis(values, measure)
    panel = Panel(frame, Axis(0.0, float(max(1, len(pairs))), (), 0), y)
    parts = draw_grid(panel, measure.label, x_labels=False)
    if total <= 0:
        parts.append(note(frame, empty))
    else:
        parts += _day_bars(panel, pairs)
    parts += _day_labels(panel, [day for day, _ in pairs])
    parts.append(caption(frame.left + frame.width / 2, frame.bottom + 46, "Day (UTC)"))
    subtitle = f"{measure.say(total)} over {len(pairs)} days"
    return document(WIDTH, int(frame.bottom + 60), title, parts, subtitle=subtitle)


def _day_bars(panel: Panel, pairs: Sequence[Pair]) -> list[str]:
    f = panel.frame
    slot = f.width / len(pairs)
    width = max(1.0, slot * 0.8)
    parts = []
    for index, (_, value) in enumerate(pairs):
        if value <= 0:
            continue
        top = panel.y.scale(value, f.bottom, f.top)
        x = f.left + index * slot + (slot - width) / 2
        parts.append(
            f'<rect x="{x:.1f}" y="{top:.1f}" width="{width:.1f}" '
            f'height="{max(0.5, f.bottom - top):.1f}" fill="{BAR}"/>'
        )
    return parts


def _day_labels(panel: Panel, days: Sequence[str]) -> list[str]:
    """About eight dates under the bars (month-day), always the first and the last."""
    f = panel.frame
    if not days:
        return []
    slot = f.width / len(days)
    every = max(1, -(-len(days) // 8))
    shown, last = list(range(0, len(days), every)), len(days) - 1
    if shown[-1] != last:  # the last day is labelled, in place of a neighbour too close to it
        shown = [*shown[:-1], last] if last - shown[-1] < every / 2 else [*shown, last]
    return [
        draw_text(
            f.left + (i + 0.5) * slot, f.bottom + 18, _short_day(days[i]), anchor="middle", size=12
        )
        for i in shown
    ]


def _short_day(day: str) -> str:
    try:
        return dt.date.fromisoformat(day).strftime("%m-%d")
    except ValueError:
        return shorten(day, 10)


def render_ranking_svg(pairs: Sequence[Pair], measure: Measure, title: str, empty: str) -> str:
    """Horizontal bars, one per label as given (see `top_with_other`), its value at its end."""
    rows = len(pairs) or 3  # room for the reason when there is nothing to rank
    frame = Frame(230, 70, 540, ROW * rows)
    x = _axis([value for _, value in pairs], measure)
    panel = Panel(frame, x, Axis(0.0, 1.0, (), 0))
    parts = draw_grid(panel, "", x_labels=True)
    if not pairs:
        parts.append(note(frame, empty))
    for index, (label, value) in enumerate(pairs):
        middle = frame.top + ROW * index + ROW / 2
        end = x.scale(value, frame.left, frame.right)
        colour = OTHER_BAR if label == OTHER else BAR
        parts.append(
            draw_text(
                frame.left - 10,
                middle + 4,
                shorten(label, LABEL_LIMIT),
                anchor="end",
                size=13,
                fill=INK,
            )
        )
        parts.append(
            f'<rect x="{frame.left:.1f}" y="{middle - ROW * 0.32:.1f}" '
            f'width="{max(1.0, end - frame.left):.1f}" height="{ROW * 0.64:.1f}" fill="{colour}"/>'
        )
        parts.append(draw_text(end + 6, middle + 4, measure.say(value), anchor="start", size=12))
    parts.append(caption(frame.left + frame.width / 2, frame.bottom + 44, measure.label))
    return document(WIDTH, int(frame.bottom + 60), title, parts)
