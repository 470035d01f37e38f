"""The drawing primitives behind `charts`: nice axes, plot panels, series, safe text, plain SVG.

Everything is a string of SVG 1.1 with inline attributes: no script, no stylesheet, no external
font or image, so a browser shows it as it is and nothing in it can run. Text from callers goes
through `text`, which drops characters XML cannot hold and escapes the rest.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from xml.sax.saxutils import escape, quoteattr

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
INK, MUTED, GRID, AXIS = "#111827", "#4b5563", "#e5e7eb", "#9ca3af"
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
MARKER_LIMIT = 15  # series with this many points or fewer also get a dot per point

Point = tuple[float, float | None]


def text(value: str) -> str:
    return escape(_NOT_XML.sub("", value))


def attr(value: str) -> str:
    return quoteattr(_NOT_XML.sub("", value))


def shorten(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "\u2026"


@dataclass(frozen=True, slots=True)
class Axis:
    lo: float
    hi: float
    ticks: tuple[float, ...]
    decimals: int

    def label(self, value: float) -> str:
        return f"{value:,.{self.decimals}f}"

    def scale(self, value: float, start: float, end: float) -> float:
        return start + (value - self.lo) / (self.hi - self.lo) * (end - start)


def nice_axis(
    values: Iterable[float],
    *,
    integer: bool = False,
    bounds: tuple[float, float] | None = None,
    tight: bool = False,
) -> Axis:
    """An axis covering `values` with about 4-9 ticks at 1, 2 or 5 times a power of ten. It ends at
    a tick, or with `tight` at the data itself (for steps: no empty room after the last)."""
    lo, hi = _span(list(values), integer)
    step = _nice_step((hi - lo) / 5, integer)
    start, end = math.floor(lo / step) * step, math.ceil(hi / step) * step
    # a value too small to divide by the step (a subnormal) rounds to the wrong side of zero
    start, end = start - step if start > lo else start, end + step if end < hi else end
    if tight:
        start, end = lo, hi
    if bounds is not None:
        start, end = max(start, bounds[0]), min(end, bounds[1])
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    first = math.ceil(start / step - 1e-9)
    ticks = [round(k * step, decimals + 3) for k in range(first, math.floor(end / step + 1e-9) + 1)]
    return Axis(start, end, tuple(ticks), decimals)


def _span(values: list[float], integer: bool) -> tuple[float, float]:
    if not values:
        return 0.0, 1.0
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        pad = 1.0 if integer else (abs(lo) * 0.1 or 0.5)
        lo, hi = lo - pad, hi + pad
    return lo, hi


def _nice_step(raw: float, integer: bool) -> float:
    """The 1, 2 or 5 times a power of ten nearest to `raw`."""
    magnitude = 10.0 ** math.floor(math.log10(raw))
    fraction = raw / magnitude
    nice = 1 if fraction < 1.5 else 2 if fraction < 3 else 5 if fraction < 7 else 10
    step = nice * magnitude
    return max(1.0, float(round(step))) if integer else step


@dataclass(frozen=True, slots=True)
class Frame:
    left: float
    top: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height


@dataclass(frozen=True, slots=True)
class Panel:
    frame: Frame
    x: Axis
    y: Axis

    def at(self, x: float, y: float) -> tuple[float, float]:
        f = self.frame
        return self.x.scale(x, f.left, f.right), self.y.scale(y, f.bottom, f.top)


def draw_grid(panel: Panel, y_label: str, x_labels: bool) -> list[str]:
    f, parts = panel.frame, []
    for tick in panel.y.ticks:
        y = panel.y.scale(tick, f.bottom, f.top)
        parts.append(line(f.left, y, f.right, y, GRID))
        parts.append(draw_text(f.left - 8, y + 4, panel.y.label(tick), anchor="end", size=12))
    for tick in panel.x.ticks:
        x = panel.x.scale(tick, f.left, f.right)
        parts.append(line(x, f.top, x, f.bottom, GRID))
        if x_labels:
            parts.append(draw_text(x, f.bottom + 18, panel.x.label(tick), anchor="middle", size=12))
    parts.append(line(f.left, f.bottom, f.right, f.bottom, AXIS))
    parts.append(line(f.left, f.top, f.left, f.bottom, AXIS))
    middle = f.top + f.height / 2
    parts.append(
        f'<text x="{f.left - 58:.1f}" y="{middle:.1f}" transform="rotate(-90 {f.left - 58:.1f} '
        f'{middle:.1f})" text-anchor="middle" font-size="13" fill="{MUTED}">{text(y_label)}</text>'
    )
    return parts


def draw_series(
    panel: Panel,
    points: Sequence[Point],
    colour: str,
    *,
    width: float = 2.0,
    opacity: float = 1.0,
    dots: bool | None = None,
    dash: str | None = None,
) -> list[str]:
    """A line broken at gaps; lone points, and every point of a short series, as dots."""
    segments = _segments(points)
    if dots is None:
        dots = sum(len(segment) for segment in segments) <= MARKER_LIMIT
    style = f'stroke="{colour}" stroke-width="{width}" stroke-opacity="{opacity}"'
    style += f' stroke-dasharray="{dash}"' if dash else ""
    parts = []
    for segment in segments:
        xy = [panel.at(x, y) for x, y in _thin(segment, panel)]
        if len(xy) > 1:
            coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
            parts.append(
                f'<polyline points="{coords}" fill="none" {style} '
                'stroke-linejoin="round" stroke-linecap="round"/>'
            )
        if dots or len(xy) == 1:
            radius = max(2.5, width + 0.5)
            parts += [
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{colour}" '
                f'fill-opacity="{opacity}"/>'
                for x, y in xy
            ]
    return parts


def _thin(segment: list[tuple[float, float]], panel: Panel) -> list[tuple[float, float]]:
    """At most four points per pixel column (its first, lowest, highest and last), so a job of
    50,000 steps draws as fast as one of 3,000 and looks the same: no peak or dip is lost."""
    columns = int(panel.frame.width)
    if len(segment) <= 2 * columns:
        return segment
    span = (panel.x.hi - panel.x.lo) or 1.0
    kept: list[tuple[float, float]] = []
    bucket: list[tuple[float, float]] = []
    current = None
    for point in segment:
        column = int((point[0] - panel.x.lo) / span * columns)
        if column != current and bucket:
            kept += _column_extremes(bucket)
            bucket = []
        current = column
        bucket.append(point)
    return kept + _column_extremes(bucket)


def _column_extremes(bucket: list[tuple[float, float]]) -> list[tuple[float, float]]:
    low, high = min(bucket, key=lambda p: p[1]), max(bucket, key=lambda p: p[1])
    chosen = {bucket[0], low, high, bucket[-1]}
    return sorted(chosen)


def _segments(points: Sequence[Point]) -> list[list[tuple[float, float]]]:
    """Runs of present values. A series measured every k-th row (validation often is) is not
    broken by the rows in between: a gap is a silence longer than the series' usual cadence."""
    ordered = sorted(points, key=lambda point: point[0])
    present = [(i, x, y) for i, (x, y) in enumerate(ordered) if y is not None]
    strides = [b[0] - a[0] for a, b in pairwise(present)]
    cadence = statistics.median(strides) if strides else 1
    segments: list[list[tuple[float, float]]] = []
    previous = None
    for index, x, y in present:
        if previous is None or index - previous > 1.5 * cadence:
            segments.append([])
        segments[-1].append((x, y))
        previous = index
    return segments


def legend_entry(
    x: float,
    y: float,
    label: str,
    colour: str,
    *,
    width: float = 3.0,
    bold: bool = False,
    dash: str | None = None,
) -> str:
    swatch = line(x, y - 4, x + 22, y - 4, colour, width=width, dash=dash)
    return swatch + draw_text(x + 28, y, label, anchor="start", size=13, fill=INK, bold=bold)


def legend_width(label: str) -> float:
    """Roughly how wide an entry is (no font metrics here): swatch, gap, ~7.5 px a character."""
    return 28 + 7.5 * len(label)


def document(
    width: int, height: int, title: str, body: Iterable[str], subtitle: str | None = None
) -> str:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f"aria-label={attr(title)} font-family={attr(FONT)}>"
        f"<title>{text(title)}</title>"
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>'
        f'<text x="{width / 2:.1f}" y="34" text-anchor="middle" font-size="20" '
        f'font-weight="600" fill="{INK}">{text(shorten(title, 90))}</text>'
    )
    if subtitle:
        head += draw_text(width / 2, 56, shorten(subtitle, 120), anchor="middle", size=13)
    return head + "".join(body) + "</svg>\n"


def caption(x: float, y: float, content: str, *, anchor: str = "middle") -> str:
    return draw_text(x, y, content, anchor=anchor, size=13)


def note(frame: Frame, message: str) -> str:
    """A message in the middle of an empty panel."""
    x, y = frame.left + frame.width / 2, frame.top + frame.height / 2
    return draw_text(x, y, message, anchor="middle", size=15)


def line(
    x1: float,
    y1: float,
    x2: float,
    y2: float,
    colour: str,
    width: float = 1.0,
    dash: str | None = None,
) -> str:
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
        f'stroke="{colour}" stroke-width="{width}"{dashed}/>'
    )


def draw_text(
    x: float,
    y: float,
    content: str,
    *,
    anchor: str,
    size: int,
    fill: str = MUTED,
    bold: bool = False,
) -> str:
    weight = ' font-weight="600"' if bold else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
        f'fill="{fill}"{weight}>{text(content)}</text>'
    )
