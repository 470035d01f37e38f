"""The usage page's charts: a bar per day of the range (zero days included), ranked horizontal
bars with the tail summed as "other", a reason in words when there is nothing to draw, and
labels escaped like every other chart's."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from service.domain.charts.usage import (
    BAR,
    OTHER,
    OTHER_BAR,
    SPEND,
    TOKENS,
    fill_days,
    render_daily_svg,
    render_ranking_svg,
    top_with_other,
)

NS = "{http://www.w3.org/2000/svg}"
DAYS = [f"2026-11-{day:02d}" for day in range(1, 31)]


def texts(svg: str) -> list[str]:
    return ["".join(node.itertext()) for node in ET.fromstring(svg).iter(f"{NS}text")]


def bars(svg: str, colour: str = BAR) -> list[ET.Element]:
    return [n for n in ET.fromstring(svg).iter(f"{NS}rect") if n.get("fill") == colour]


def test_every_day_of_the_range_is_kept_in_order_with_zero_for_quiet_days() -> None:
    filled = fill_days(DAYS[:3], {"2026-11-02": 1.5, "2026-10-31": 9.0})
    assert filled == [("2026-11-01", 0.0), ("2026-11-02", 1.5), ("2026-11-03", 0.0)]


def test_the_top_few_are_kept_largest_first_and_the_rest_summed_as_other() -> None:
    pairs = [(f"m{i}", float(i)) for i in range(1, 11)] + [("zero", 0.0)]
    ranked = top_with_other(pairs, limit=4)
    assert ranked == [("m10", 10.0), ("m9", 9.0), ("m8", 8.0), (OTHER, 28.0)]
    assert sum(v for _, v in ranked) == sum(v for _, v in pairs)
    assert top_with_other(pairs[:3], limit=4) == [("m3", 3.0), ("m2", 2.0), ("m1", 1.0)]
    assert top_with_other([("b", 1.0), ("a", 1.0)]) == [("a", 1.0), ("b", 1.0)]  # stable ties


def test_a_daily_chart_draws_one_bar_per_day_with_usage_and_dates_under_them() -> None:
    values = {DAYS[0]: 0.25, DAYS[10]: 1.0, DAYS[29]: 0.5}
    svg = render_daily_svg(fill_days(DAYS, values), SPEND, "Spend by day", "nothing")
    assert len(bars(svg)) == 3
    heights = [float(bar.get("height") or 0) for bar in bars(svg)]
    assert heights[1] == max(heights) and heights[0] < heights[2] < heights[1]
    shown = texts(svg)
    assert "Spend by day" in shown and "$1.7500 over 30 days" in shown
    assert "11-01" in shown and "11-30" in shown  # the first and last day are labelled
    assert sum(1 for t in shown if len(t) == 5 and t[2] == "-") <= 9  # not all 30
    assert "Spend (USD, estimated)" in shown and "Day (UTC)" in shown
    assert "nothing" not in shown


def test_an_empty_range_says_why_instead_of_drawing_nothing() -> None:
    svg = render_daily_svg(fill_days(DAYS, {}), TOKENS, "Tokens by day", "No tokens here")
    assert bars(svg) == [] and "No tokens here" in texts(svg)
    ranked = render_ranking_svg([], TOKENS, "Tokens by key", "No tokens by key")
    assert bars(ranked) == [] and "No tokens by key" in texts(ranked)


def test_a_ranking_draws_bars_longest_first_with_their_values_and_other_in_grey() -> None:
    pairs = top_with_other([("gpt-4o-mini", 3000.0), ("ft:x", 1000.0), ("a", 5.0), ("b", 5.0)], 3)
    svg = render_ranking_svg(pairs, TOKENS, "Tokens by model", "none")
    widths = [float(bar.get("width") or 0) for bar in bars(svg)]
    assert len(widths) == 2 and widths[0] > widths[1]
    assert len(bars(svg, OTHER_BAR)) == 1
    shown = texts(svg)
    assert {"gpt-4o-mini", "ft:x", OTHER, "3,000", "1,000", "10"} <= set(shown)


def test_labels_are_escaped_and_long_ones_shortened() -> None:
    name = "<script>alert(1)</script>" + "x" * 40
    svg = render_ranking_svg([(name, 2.0)], SPEND, "Spend by key", "none")
    assert "<script>" not in svg
    label = next(t for t in texts(svg) if t.startswith("<script>"))
    assert label.endswith("\u2026") and len(label) <= 28
