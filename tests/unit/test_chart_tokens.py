"""A dataset's token chart: one box per measure on an axis that fits the examples, the training
limit drawn when it is on that axis and said in words when it is far beyond it."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from service.domain.charts.tokens import LIMIT, render_tokens_svg
from service.domain.datasets.report import Distribution, TokenSummary

NS = "{http://www.w3.org/2000/svg}"


def summary(limit: int, over: int = 0) -> TokenSummary:
    return TokenSummary(
        encoding="o200k_base",
        per_example=Distribution(min=12, max=480, mean=95.5, median=80, p10=30, p90=200),
        assistant_per_example=Distribution(min=3, max=120, mean=25.0, median=20, p10=8, p90=60),
        messages_per_example=None,
        total=9550,
        max_example_tokens=limit,
        over_limit=over,
        billing_tokens=9400,
    )


def test_each_measure_is_a_box_with_its_figures() -> None:
    root = ET.fromstring(render_tokens_svg(summary(400, over=2)))
    shown = ["".join(node.itertext()) for node in root.iter(f"{NS}text")]
    assert "min 12 · median 80 · mean 95.5 · max 480" in shown
    assert "min 3 · median 20 · mean 25.0 · max 120" in shown
    assert "training limit 400 tokens: 2 examples over it" in shown
    assert len(list(root.iter(f"{NS}rect"))) == 3  # the background and two boxes
    assert len([n for n in root.iter(f"{NS}line") if n.get("stroke") == LIMIT]) == 1


def test_a_far_limit_is_said_not_drawn() -> None:
    root = ET.fromstring(render_tokens_svg(summary(65536)))
    shown = ["".join(node.itertext()) for node in root.iter(f"{NS}text")]
    assert "training limit 65,536 tokens: 0 examples over it" in shown
    assert not [n for n in root.iter(f"{NS}line") if n.get("stroke") == LIMIT]
    ticks = [n for n in root.iter(f"{NS}text") if n.get("font-size") == "12"]
    assert "".join(ticks[-2].itertext()) == "500"  # the axis fits the examples, not the limit
