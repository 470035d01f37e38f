"""Charts the console's templates draw inline: filters registered on the Jinja environment, each
turning a value a page already holds into SVG (escaped by the chart code, so marked safe)."""

from __future__ import annotations

from typing import Any

from litestar.plugins.jinja import JinjaTemplateEngine
from markupsafe import Markup

from service.domain.charts.tokens import render_tokens_svg
from service.domain.datasets.report import TokenSummary


def token_chart(tokens: dict[str, Any] | None) -> Markup:
    """A report's `tokens` as its chart; nothing when the report has no token counts."""
    if not tokens:
        return Markup("")
    return Markup(render_tokens_svg(TokenSummary.model_validate(tokens)))


def register_filters(engine: JinjaTemplateEngine) -> None:
    engine.engine.filters["token_chart"] = token_chart
