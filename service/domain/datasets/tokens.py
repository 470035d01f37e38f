"""Token accounting for a dataset being validated.

Owns the per-example totals: examples queue up as token plans while a chunk is checked, then
one `flush` counts every text of the chunk in a single parallel batch, looking repeated strings
(system prompts, tool definitions, roles) up in a bounded cache first. Totals land in
histograms, so memory does not grow with the number of examples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.domain import tokens
from service.domain.datasets.chat import TokenPlan
from service.domain.datasets.report import DatasetFormat
from service.domain.datasets.stats import Histogram
from service.domain.pricing import PriceTable, UnknownModelError, load_price_table

if TYPE_CHECKING:
    from service.domain.datasets.validate import DatasetOptions

# The fine-tuning data-prep recipe's limit; used when the target model is not known.
DEFAULT_MAX_EXAMPLE_TOKENS = 16_385
_CACHE_MAX_CHARS = 2_000_000
_CACHE_MAX_TEXT = 65_536


def _limit_for(model: str | None, prices: PriceTable) -> int:
    if model is None:
        return DEFAULT_MAX_EXAMPLE_TOKENS
    try:
        return prices.price_of(model).max_example_tokens
    except UnknownModelError:
        return DEFAULT_MAX_EXAMPLE_TOKENS


class TokenTally:
    def __init__(self, options: DatasetOptions) -> None:
        self.model = options.model
        self.prices = options.prices or load_price_table()
        self.limit = _limit_for(options.model, self.prices)
        self.max_lines_listed = options.max_lines_listed
        self.total = Histogram()
        self.assistant = Histogram()
        self.messages = Histogram()
        self.over_limit_lines: list[int] = []
        self.encoding_name: str | None = None
        self._queue: list[tuple[int, TokenPlan]] = []
        self._cache: dict[str, int] = {}
        self._cached_chars = 0

    def add(self, plan: TokenPlan, line: int, fmt: DatasetFormat) -> None:
        if self.encoding_name is None:
            self.encoding_name = self._encoding_name(fmt)
        self._queue.append((line, plan))
        if plan.messages is not None:
            self.messages.add(plan.messages)

    def _encoding_name(self, fmt: DatasetFormat) -> str:
        if self.model is not None:
            return tokens.encoding_name_for_model(self.model)
        # Legacy completion models (babbage-002, davinci-002) use cl100k_base.
        return "cl100k_base" if fmt == "completion" else tokens.DEFAULT_ENCODING

    def flush(self) -> None:
        """Counts the tokens of the queued examples, all texts in one parallel batch."""
        if not self._queue or self.encoding_name is None:
            return
        texts = [text for _, plan in self._queue for text in plan.texts]
        counts = self._count(texts)
        position = 0
        for line, plan in self._queue:
            end = position + len(plan.texts)
            assistant = sum(counts[position : position + plan.assistant_texts])
            self._record(line, plan.fixed + sum(counts[position:end]), assistant)
            position = end
        self._queue.clear()

    def _count(self, texts: list[str]) -> list[int]:
        counts = [self._cache.get(text, -1) for text in texts]
        missing = list(dict.fromkeys(t for t, c in zip(texts, counts, strict=True) if c < 0))
        if not missing:
            return counts
        assert self.encoding_name is not None
        encoding = tokens.get_encoding(self.encoding_name)
        counted = dict(zip(missing, tokens.count_batch(encoding, missing), strict=True))
        self._remember(counted)
        return [c if c >= 0 else counted[t] for t, c in zip(texts, counts, strict=True)]

    def _record(self, line: int, total: int, assistant: int) -> None:
        self.total.add(total)
        self.assistant.add(assistant)
        if total > self.limit and len(self.over_limit_lines) < self.max_lines_listed:
            self.over_limit_lines.append(line)

    def _remember(self, counted: dict[str, int]) -> None:
        for text, count in counted.items():
            if len(text) > _CACHE_MAX_TEXT:
                continue
            if self._cached_chars + len(text) > _CACHE_MAX_CHARS:
                # Dropping everything is crude but cheap; repeated strings come back at once.
                self._cache.clear()
                self._cached_chars = 0
            self._cache[text] = count
            self._cached_chars += len(text)
