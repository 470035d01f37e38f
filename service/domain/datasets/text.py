"""A dataset report as a person reads it in a terminal (`tunegate validate`): errors first, with
their line numbers, then warnings, tokens and the training cost. The JSON report has the rest."""

from __future__ import annotations

from service.domain.datasets.report import CostEstimate, DatasetReport, Issue
from service.domain.tenancy.model_names import entry_admits

ERRORS_SHOWN = 10


def describe_report(report: DatasetReport, name: str) -> str:
    lines = [_verdict(report, name)]
    lines += [f"  {_issue(issue)}" for issue in report.errors[:ERRORS_SHOWN]]
    hidden = sum(report.error_counts.values()) - min(len(report.errors), ERRORS_SHOWN)
    if hidden > 0:
        lines.append(f"  ... and {hidden} more (--json lists the first {len(report.errors)})")
    for warning in report.warnings:
        where = f" (lines {_numbers(warning.lines)})" if warning.lines else ""
        lines.append(f"warning: {warning.kind}: {warning.message}{where}")
    lines += _tokens(report) + _cost(report)
    if report.pii.counts:
        counts = ", ".join(f"{kind} {count}" for kind, count in sorted(report.pii.counts.items()))
        lines.append(f"PII: {counts} (lines {_numbers(report.pii.lines)})")
    return "\n".join(lines)


def _verdict(report: DatasetReport, name: str) -> str:
    shape = f"{report.format or 'unknown'} format, {report.examples} examples"
    if report.valid:
        return f"{name}: valid ({shape}, {report.lines} lines)"
    total = sum(report.error_counts.values())
    kinds = ", ".join(f"{kind} {count}" for kind, count in report.error_counts.items())
    return f"{name}: invalid, {total} error{'s' * (total != 1)} ({kinds}); {shape}"


def _issue(issue: Issue) -> str:
    where = f"line {issue.line}" if issue.line is not None else "file"
    return f"{where}: {issue.kind}: {issue.message}"


def _numbers(values: list[int]) -> str:
    return ", ".join(str(value) for value in values)


def _tokens(report: DatasetReport) -> list[str]:
    tokens = report.tokens
    if tokens is None:
        return []
    spread = tokens.per_example
    return [
        f"tokens: {tokens.total:,} in all, {spread.median:,.0f} per example "
        f"(min {spread.min:,}, max {spread.max:,}; {tokens.over_limit} over the "
        f"{tokens.max_example_tokens:,} limit); {tokens.billing_tokens:,} billed per epoch"
    ]


def _cost(report: DatasetReport) -> list[str]:
    if report.model is None:
        if not report.estimated_costs:
            return []
        cheapest = min(report.estimated_costs, key=lambda estimate: estimate.cost)
        return [f"cost: from {_estimate(cheapest)}; --model names the model to price"]
    chosen = [e for e in report.estimated_costs if entry_admits(report.model, e.model)]
    if not chosen:
        return [f"cost: no price known for {report.model}"]
    return [f"cost: {_estimate(chosen[0])}"]


def _estimate(estimate: CostEstimate) -> str:
    return (
        f"${estimate.cost:,.4f} {estimate.currency} for {estimate.model} "
        f"({estimate.epochs} epochs, {estimate.trained_tokens:,} trained tokens)"
    )
