"""A dataset's token counts as a picture: one row per measure (tokens per example, assistant
tokens per example, messages per example), each a box from p10 to p90 with the median, whiskers to
min and max and the mean as a diamond, on a shared axis that also shows the training limit.

It draws the validation report's `TokenSummary` as it is stored, so any report, old or new, has
its chart.
"""

from __future__ import annotations

from service.domain.charts.svg import (
    INK,
    Axis,
    Frame,
    Panel,
    caption,
    document,
    draw_grid,
    draw_text,
    line,
    nice_axis,
)
from service.domain.datasets.report import Distribution, TokenSummary

WIDTH, ROW = 880, 76
BOX, LIMIT = "#0072B2", "#D55E00"


def render_tokens_svg(summary: TokenSummary, title: str = "Tokens per example") -> str:
    rows = [
        ("Tokens", summary.per_example),
        ("Assistant tokens", summary.assistant_per_example),
    ]
    frame = Frame(170, 90, 660, ROW * len(rows))
    axis = nice_axis([0, summary.per_example.max])
    panel = Panel(frame, axis, Axis(0.0, 1.0, (), 0))  # rows down the side, not values
    parts = draw_grid(panel, "", x_labels=True)
    for index, (name, spread) in enumerate(rows):
        middle = frame.top + ROW * index + ROW / 2
        parts.append(draw_text(frame.left - 12, middle + 4, name, anchor="end", size=13))
        parts += _box(panel, spread, middle)
    parts += _limit(panel, summary)
    parts.append(caption(frame.left + frame.width / 2, frame.bottom + 44, "Tokens"))
    subtitle = (
        f"{summary.total:,} tokens in all · {summary.billing_tokens:,} billed per epoch · "
        "box p10 to p90, line median, diamond mean"
    )
    height = int(frame.bottom + 64)
    return document(WIDTH, height, title, parts, subtitle=subtitle)


def _box(panel: Panel, spread: Distribution, middle: float) -> list[str]:
    def x(value: float) -> float:
        return panel.at(value, 0)[0]

    half = ROW * 0.28
    parts = [
        line(x(spread.min), middle, x(spread.p10), middle, INK),
        line(x(spread.p90), middle, x(spread.max), middle, INK),
        line(x(spread.min), middle - half / 2, x(spread.min), middle + half / 2, INK),
        line(x(spread.max), middle - half / 2, x(spread.max), middle + half / 2, INK),
        f'<rect x="{x(spread.p10):.1f}" y="{middle - half:.1f}" '
        f'width="{max(1.0, x(spread.p90) - x(spread.p10)):.1f}" height="{2 * half:.1f}" '
        f'fill="{BOX}" fill-opacity="0.25" stroke="{BOX}" stroke-width="1.5"/>',
        line(x(spread.median), middle - half, x(spread.median), middle + half, BOX, width=3),
    ]
    mx = x(spread.mean)
    parts.append(
        f'<polygon points="{mx:.1f},{middle - 6:.1f} {mx + 6:.1f},{middle:.1f} '
        f'{mx:.1f},{middle + 6:.1f} {mx - 6:.1f},{middle:.1f}" fill="{INK}"/>'
    )
    label = (
        f"min {spread.min:,} · median {spread.median:,.0f} · mean {spread.mean:,.1f} "
        f"· max {spread.max:,}"
    )
    parts.append(
        draw_text(panel.frame.left + 4, middle + half + 14, label, anchor="start", size=11)
    )
    return parts


def _limit(panel: Panel, summary: TokenSummary) -> list[str]:
    """The training limit as a dashed line when it is on the axis; otherwise in words."""
    f, limit = panel.frame, summary.max_example_tokens
    said = f"training limit {limit:,} tokens: {summary.over_limit:,} examples over it"
    if limit > panel.x.hi:
        return [draw_text(f.right, f.top - 8, said, anchor="end", size=12, fill=LIMIT)]
    limit_x, _ = panel.at(limit, 0)
    return [
        line(limit_x, f.top, limit_x, f.bottom, LIMIT, width=2, dash="6 4"),
        draw_text(f.right, f.top - 8, said, anchor="end", size=12, fill=LIMIT),
    ]
