"""SVG charts: well-formed, script-free, escaped, readable for 0, 1 and many points."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from service.domain.charts.charts import (
    FULL_VALID,
    HIGHLIGHT,
    TRAIN,
    VALID,
    Curve,
    render_curves_svg,
    render_metrics_svg,
)
from service.domain.charts.svg import nice_axis
from service.domain.jobs.metrics import StepRow

NS = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    assert "<script" not in svg.lower()
    assert "href" not in svg  # nothing external: no links, images or fonts
    assert "@import" not in svg and "url(" not in svg
    return ET.fromstring(svg)


def texts(root: ET.Element) -> list[str]:
    return ["".join(node.itertext()) for node in root.iter(f"{NS}text")]


def lines_in(root: ET.Element, colour: str) -> list[ET.Element]:
    return [node for node in root.iter(f"{NS}polyline") if node.get("stroke") == colour]


def rows(n: int, *, validation: bool = True) -> list[StepRow]:
    return [
        StepRow(
            s,
            2.0 / s,
            1 - 1.0 / (s + 1),
            2.2 / s if validation else None,
            0.9 - 1.0 / (s + 2) if validation else None,
        )
        for s in range(1, n + 1)
    ]


def test_metrics_chart_has_both_panels_legend_and_series() -> None:
    root = parse(render_metrics_svg(rows(50), "Job ftjob-1"))
    labels = texts(root)
    for label in ("Job ftjob-1", "Loss", "Token accuracy", "Step", "Training", "Validation"):
        assert label in labels
    assert "Full validation" not in labels
    assert len(lines_in(root, TRAIN)) == 2  # loss and accuracy
    assert len(lines_in(root, VALID)) == 2
    assert root.get("viewBox") == "0 0 880 650"


def test_title_is_escaped_and_cleaned() -> None:
    title = 'a <b>&</b> "quote" \x00\x07 end'
    svg = render_metrics_svg(rows(3), title)
    root = parse(svg)
    assert 'a <b>&</b> "quote"  end' in texts(root)
    assert root.find(f"{NS}title") is not None
    assert "<b>" not in svg


def test_no_points_says_so() -> None:
    root = parse(render_metrics_svg([], "Empty"))
    assert texts(root).count("No metrics yet") == 2
    assert not list(root.iter(f"{NS}polyline"))


def test_one_point_is_a_dot() -> None:
    root = parse(render_metrics_svg([StepRow(1, 2.0, 0.5)]))
    assert not list(root.iter(f"{NS}polyline"))
    assert len([c for c in root.iter(f"{NS}circle") if c.get("fill") == TRAIN]) == 2


def test_constant_series_get_a_readable_axis() -> None:
    root = parse(render_metrics_svg([StepRow(s, 1.0, 1.0) for s in range(1, 6)]))
    labels = texts(root)
    assert "1.00" in labels or "1.0" in labels
    for line in lines_in(root, TRAIN):
        ys = {point.split(",")[1] for point in line.get("points", "").split()}
        assert len(ys) == 1 and all(math.isfinite(float(y)) for y in ys)


def test_missing_values_leave_gaps() -> None:
    data = rows(30, validation=False)
    data[10] = StepRow(11)  # nothing measured at step 11
    root = parse(render_metrics_svg(data))
    assert len(lines_in(root, TRAIN)) == 4  # both panels, broken once each


def test_sparse_validation_is_connected_at_its_cadence() -> None:
    data = [
        StepRow(s, 1.0 / s, 0.5, 1.1 / s if s % 10 == 0 else None, 0.4 if s % 10 == 0 else None)
        for s in range(1, 101)
    ]
    root = parse(render_metrics_svg(data))
    assert len(lines_in(root, VALID)) == 2
    points = lines_in(root, VALID)[0].get("points", "").split()
    assert len(points) == 10


def test_full_validation_shows_when_present() -> None:
    data = [StepRow(s, 1.0, 0.5, full_valid_loss=0.9 if s == 20 else None) for s in range(1, 21)]
    root = parse(render_metrics_svg(data))
    assert "Full validation" in texts(root)
    assert [c for c in root.iter(f"{NS}circle") if c.get("fill") == FULL_VALID]


def test_many_points_render_quickly_and_compactly() -> None:
    svg = render_metrics_svg(rows(5000))
    parse(svg)
    assert len(svg) < 400_000


def curves(n: int) -> list[Curve]:
    return [
        Curve(f"t{i}", f"trial {i}", [(s, 1.0 + i / 10 + 1 / s) for s in range(1, 21)])
        for i in range(n)
    ]


def test_curves_chart_highlights_the_best_on_top() -> None:
    root = parse(render_curves_svg(curves(5), highlight="t0", title="Sweep"))
    drawn = list(root.iter(f"{NS}polyline"))
    assert len(drawn) == 5
    assert drawn[-1].get("stroke") == HIGHLIGHT
    assert drawn[-1].get("stroke-width") == "3.5"
    labels = texts(root)
    assert "Best" in labels and "trial 0" in labels and "Validation loss" in labels


def test_curves_legend_is_capped() -> None:
    root = parse(render_curves_svg(curves(30), highlight="t3"))
    assert "+15 more" in texts(root)


def test_curves_without_results() -> None:
    root = parse(render_curves_svg([Curve("a", "a", [(1, None)])]))
    assert "No validation results yet" in texts(root)
    assert parse(render_curves_svg([]))


@pytest.mark.parametrize(
    ("values", "ticks"),
    [
        ([0.31, 2.04], (0.0, 0.5, 1.0, 1.5, 2.0, 2.5)),
        ([0, 120], (0, 20, 40, 60, 80, 100, 120)),
        ([0.42, 0.87], (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)),
    ],
)
def test_nice_ticks(values: list[float], ticks: tuple[float, ...]) -> None:
    assert nice_axis(values).ticks == ticks


def test_integer_axes_never_tick_between_steps() -> None:
    axis = nice_axis([1, 3], integer=True)
    assert all(float(t).is_integer() for t in axis.ticks)


@given(
    st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=50),
    st.booleans(),
)
@example([5e-324, -8.0], False)  # a subnormal that rounds to zero when divided
def test_axes_cover_the_data_with_a_few_ordered_ticks(values: list[float], tight: bool) -> None:
    axis = nice_axis(values, tight=tight)
    assert axis.lo <= min(values) and max(values) <= axis.hi
    assert axis.lo < axis.hi
    assert 2 <= len(axis.ticks) <= 12
    assert list(axis.ticks) == sorted(axis.ticks)
    tolerance = (axis.hi - axis.lo) * 1e-6
    assert all(axis.lo - tolerance <= t <= axis.hi + tolerance for t in axis.ticks)
