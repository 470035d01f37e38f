"""What drawing a job's chart costs: the console redraws a running job's chart every 2 s and the
API serves the same SVG, so this renders `render_metrics_svg` for jobs of growing length (every
step with training values, every 10th with validation, as OpenAI reports them) and prints the
median time and the SVG's size for each, and a 20-trial sweep chart.

    .venv/bin/python bench/chart_bench.py
    .venv/bin/python bench/chart_bench.py --repeat 50
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

from service.domain.charts.annotations import JobFacts
from service.domain.charts.charts import Curve, render_curves_svg, render_metrics_svg
from service.domain.jobs.metrics import StepRow

SIZES = (100, 1_000, 10_000, 50_000)


def job_rows(steps: int) -> list[StepRow]:
    return [
        StepRow(
            step=s,
            train_loss=2.0 * math.exp(-s / (steps / 4)) + 0.3 + 0.05 * math.sin(s),
            train_mean_token_accuracy=0.9 - 0.5 * math.exp(-s / (steps / 4)),
            valid_loss=2.1 * math.exp(-s / (steps / 4)) + 0.35 if s % 10 == 0 else None,
            valid_mean_token_accuracy=0.88 - 0.5 * math.exp(-s / (steps / 4))
            if s % 10 == 0
            else None,
        )
        for s in range(1, steps + 1)
    ]


def timed(draw: object, repeat: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        svg = draw()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
        size = len(svg.encode())
    return statistics.median(times) * 1000, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"{'chart':<28}{'median ms':>12}{'SVG KiB':>10}")
    for steps in SIZES:
        rows = job_rows(steps)
        facts = JobFacts("gpt-4o-mini-2024-07-18", "running", "bench", {"n_epochs": 3}, steps)
        ms, size = timed(
            lambda rows=rows, facts=facts: render_metrics_svg(rows, job=facts), args.repeat
        )
        print(f"{f'job, {steps:,} steps':<28}{ms:>12.2f}{size / 1024:>10.1f}")
    curves = [
        Curve(
            str(i),
            f"#{i} lr={0.1 * (i + 1):.1f}",
            [(s, 1.5 * math.exp(-s * (i + 1) / 400)) for s in range(1, 1001)],
        )
        for i in range(20)
    ]
    ms, size = timed(lambda: render_curves_svg(curves, "3"), args.repeat)
    print(f"{'sweep, 20 trials x 1,000':<28}{ms:>12.2f}{size / 1024:>10.1f}")


if __name__ == "__main__":
    main()
