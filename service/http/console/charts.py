"""Charts the console's templates draw inline: filters registered on the Jinja environment, each
turning a value a page already holds into SVG (escaped by the chart code, so marked safe)."""

from __future__ import annotations

from typing import Any

from litestar.plugins.jinja import JinjaTemplateEngine
from markupsafe import Markup

from service.domain.charts.tokens import render_tokens_svg
from service.domain.charts.usage import (
    SPEND,
    TOKENS,
    Measure,
    Pair,
    fill_days,
    render_daily_svg,
    render_ranking_svg,
    top_with_other,
)
from service.domain.datasets.report import TokenSummary
from service.operations.inference.usage import UsageTotal

MEASURES = {"cost": SPEND, "tokens": TOKENS}


def token_chart(tokens: dict[str, Any] | None) -> Markup:
    """A report's `tokens` as its chart; nothing when the report has no token counts."""
    if not tokens:
        return Markup("")
    return Markup(render_tokens_svg(TokenSummary.model_validate(tokens)))


def usage_value(total: UsageTotal, measure: Measure) -> float:
    if measure.money:
        return total.cost
    return float(total.prompt_tokens + total.completion_tokens + total.trained_tokens)


def _chart(key: str, title: str, svg: str, pairs: list[Pair], measure: Measure) -> dict[str, Any]:
    """A chart and the same figures as rows, for the table that stands in for it."""
    rows = [(label, measure.say(value)) for label, value in pairs]
    return {"id": key, "title": title, "svg": Markup(svg), "rows": rows}


def usage_charts(
    days: list[str], grouped: dict[str, list[UsageTotal]], measure: Measure
) -> list[dict[str, Any]]:
    """The usage page's three charts from `usage_report`'s totals by day, model and key."""
    what = "spend" if measure.money else "tokens"
    span = f"these {len(days)} days"
    daily = fill_days(days, {t.day or "": usage_value(t, measure) for t in grouped["day"]})
    empty = f"No {what} in {span}: no proxied call or training was recorded"
    charts = [
        _chart(
            "by-day",
            f"{what.capitalize()} by day",
            render_daily_svg(daily, measure, f"{what.capitalize()} by day", empty),
            daily,
            measure,
        )
    ]
    for group, field in (("model", "model"), ("key", "key_id")):
        pairs = [(getattr(t, field) or "(none)", usage_value(t, measure)) for t in grouped[group]]
        ranked = top_with_other(pairs)
        title = f"{what.capitalize()} by {group}"
        empty = f"No {what} by {group} in {span}: nothing was recorded"
        svg = render_ranking_svg(ranked, measure, title, empty)
        charts.append(_chart(f"by-{group}", title, svg, ranked, measure))
    return charts


def register_filters(engine: JinjaTemplateEngine) -> None:
    engine.engine.filters["token_chart"] = token_chart
