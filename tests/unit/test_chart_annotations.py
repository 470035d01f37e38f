"""A job's chart says which job it is, why it is empty, where epochs begin, where the best and
final values are; its axes hold still while steps arrive; a sweep marks early-stopped trials."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from service.domain.charts.annotations import (
    JobFacts,
    best_and_final,
    empty_reason,
    epoch_steps,
    job_subtitle,
    job_title,
)
from service.domain.charts.charts import Curve, render_curves_svg, render_metrics_svg
from service.domain.jobs.metrics import StepRow

NS = "{http://www.w3.org/2000/svg}"


def facts(**overrides: object) -> JobFacts:
    values: dict[str, object] = {
        "model": "gpt-4o-mini-2024-07-18",
        "status": "running",
        "suffix": "support",
        "hyperparameters": {"n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 2.0},
        "total_steps": 30,
    }
    return JobFacts(**(values | overrides))  # type: ignore[arg-type]


def texts(svg: str) -> list[str]:
    return ["".join(node.itertext()) for node in ET.fromstring(svg).iter(f"{NS}text")]


def tick_labels(svg: str, y_min: float, y_max: float) -> list[str]:
    """The x tick labels: the text under the lower panel."""
    root = ET.fromstring(svg)
    return [
        "".join(node.itertext())
        for node in root.iter(f"{NS}text")
        if y_min <= float(node.get("y", "0")) <= y_max and node.get("text-anchor") == "middle"
    ]


def rows(n: int) -> list[StepRow]:
    losses = [2.0, 1.5, 1.1, 0.8, 0.9, 1.0][:n]
    return [
        StepRow(step=i + 1, train_loss=loss, train_mean_token_accuracy=0.5 + 0.05 * i)
        for i, loss in enumerate(losses)
    ]


def test_title_names_model_suffix_status_and_hyperparameters() -> None:
    svg = render_metrics_svg(rows(3), job=facts())
    shown = texts(svg)
    assert job_title(facts()) in shown
    assert job_title(facts()) == "gpt-4o-mini-2024-07-18 · support — running"
    assert "epochs 3 · batch 4 · LR multiplier 2.0" in shown
    assert job_subtitle(facts(hyperparameters={})) == "hyperparameters: auto"
    assert job_title(facts(suffix=None, status="failed")) == "gpt-4o-mini-2024-07-18 — failed"


def test_the_step_axis_spans_the_whole_job_while_it_runs() -> None:
    early = tick_labels(render_metrics_svg(rows(2), job=facts()), 580, 600)
    later = tick_labels(render_metrics_svg(rows(5), job=facts()), 580, 600)
    assert early == later and early[-1] == "30"
    assert tick_labels(render_metrics_svg(rows(2)), 580, 600)[-1] == "2"


def test_the_y_axes_hold_still_as_steps_arrive() -> None:
    def y_ticks(svg: str) -> list[str]:
        root = ET.fromstring(svg)
        return [
            "".join(n.itertext())
            for n in root.iter(f"{NS}text")
            if n.get("text-anchor") == "end" and n.get("font-size") == "12"
        ]

    first, more = render_metrics_svg(rows(4), job=facts()), render_metrics_svg(rows(5), job=facts())
    assert y_ticks(first) == y_ticks(more)
    assert "0.0" in y_ticks(first) and "1.0" in y_ticks(first)


def test_best_and_final_values_are_marked() -> None:
    shown = texts(render_metrics_svg(rows(6), job=facts()))
    assert "best 0.8 @ 4" in shown and "final 1" in shown
    assert "best 0.75 @ 6" in shown  # accuracy: higher is better, and the last is the best
    assert best_and_final([(1, None), (2, 0.5), (3, 0.7)], lower_is_better=True) == (
        (2, 0.5),
        (3, 0.7),
    )
    assert best_and_final([(1, None)], lower_is_better=True) is None


def test_epoch_boundaries_fall_between_epochs() -> None:
    assert epoch_steps(facts()) == [10.0, 20.0]
    assert epoch_steps(facts(total_steps=None)) == []
    assert epoch_steps(facts(hyperparameters={"n_epochs": "auto"})) == []
    assert epoch_steps(None) == []
    shown = texts(render_metrics_svg(rows(3), job=facts()))
    assert "epoch 2" in shown and "epoch 3" in shown and "epoch 4" not in shown
    svg = render_metrics_svg(rows(3), job=facts())
    assert svg.count('stroke-dasharray="4 4"') == 4  # two boundaries in each panel


def test_an_empty_chart_says_why() -> None:
    assert (
        texts(render_metrics_svg([], job=facts(status="queued"))).count(
            "No steps yet: the job is queued"
        )
        == 2
    )
    empty = render_metrics_svg([], job=facts(status="queued", total_steps=None))
    assert tick_labels(empty, 580, 600) == ["0", "1"]  # no negative steps before the first
    assert not [t for t in texts(empty) if t.startswith("-")]  # nor negative losses
    assert empty_reason("failed") == "The job was failed before its first step"
    assert empty_reason("cancelled") == "The job was cancelled before its first step"
    assert empty_reason("running").startswith("Running")
    assert empty_reason("succeeded") == "The upstream reported no step metrics"


def test_early_stopped_trials_are_dashed_crossed_and_labelled() -> None:
    curves = [
        Curve("1", "#1 lr 0.5", [(1, 1.0), (2, 0.8), (3, 0.6)]),
        Curve("2", "#2 lr 4", [(1, 1.2), (2, 1.3)], stopped=True),
    ]
    svg = render_curves_svg(curves, highlight="1")
    assert "#2 lr 4 (stopped)" in texts(svg)
    assert "#1 lr 0.5 (stopped)" not in texts(svg)
    root = ET.fromstring(svg)
    dashed = [n for n in root.iter(f"{NS}polyline") if n.get("stroke-dasharray")]
    assert len(dashed) == 1
    crosses = [n for n in root.iter(f"{NS}line") if n.get("stroke-width") == "2.5"]
    assert len(crosses) == 2


def test_a_sweep_chart_carries_its_subtitle_and_says_why_it_is_empty() -> None:
    svg = render_curves_svg(
        [], title="Sweep of m — running", subtitle="grid search · 4 trials", empty="No trial yet"
    )
    assert texts(svg)[:2] == ["Sweep of m — running", "grid search · 4 trials"]
    assert "No trial yet" in texts(svg)


def test_a_long_job_is_thinned_to_its_pixels_and_keeps_its_peaks() -> None:
    steps = 50_000
    long = [
        StepRow(step=s, train_loss=1.0 + (5.0 if s == 31_337 else 0.0)) for s in range(1, steps + 1)
    ]
    svg = render_metrics_svg(long, job=facts(total_steps=steps))
    [polyline] = [n for n in ET.fromstring(svg).iter(f"{NS}polyline")]
    points = polyline.get("points", "").split()
    assert len(points) <= 4 * 760
    assert min(float(point.split(",")[1]) for point in points) < 110  # the spike to 6.0 is drawn
    assert float(points[-1].split(",")[0]) == 850.0  # and the curve reaches the last step
