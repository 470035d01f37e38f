"""The most a call or a job can cost, reserved before it starts.

A prompt never holds more tokens than UTF-8 bytes (every byte-level BPE token covers at least
one byte) plus the token ids it sends as such, plus the chat format's few tokens per message;
a call that carries earlier context the gateway cannot see (a Responses `previous_response_id`)
may fill the model's context window. The output is at most the cap the call allows itself times
its choices, or the model's context window when it sets none. Every priced model counts, the
served ones too (embeddings, Responses-only models), at its own rates. A job trains on at most
its dataset's billed tokens times its epochs. Unpriced models cost 0: the reservation then only
checks the budget is not spent already.
"""

from __future__ import annotations

from collections.abc import Iterable

from service.domain.budgets.limits import worst_case_nanos
from service.domain.pricing import (
    PriceTable,
    UnknownModelError,
    inference_cost,
    training_cost,
)

MESSAGE_OVERHEAD_TOKENS = 4
REPLY_PRIMING_TOKENS = 3


def prompt_bound(texts: Iterable[str], token_ids: int = 0) -> int:
    """Tokens the prompt may take at most."""
    texts = list(texts)
    size = sum(len(text.encode()) for text in texts)
    return size + token_ids + MESSAGE_OVERHEAD_TOKENS * len(texts) + REPLY_PRIMING_TOKENS


def inference_worst_case(
    model: str,
    texts: Iterable[str],
    output_limit: int | None,
    choices: int,
    prices: PriceTable,
    *,
    token_ids: int = 0,
    unseen_context: bool = False,
) -> int:
    """Nano-dollars a call may cost at most; `unseen_context`: the prompt carries stored
    context besides `texts`, so it may fill the context window."""
    try:
        _, window = prices.terms_of(model)
    except UnknownModelError:
        return 0
    window = window or 0
    prompt = prompt_bound(texts, token_ids)
    if unseen_context:
        prompt = max(prompt, window)
    output = window if output_limit is None else output_limit
    return worst_case_nanos(inference_cost(model, prompt, output * max(choices, 1), prices))


def training_worst_case(model: str, billed_tokens: int, prices: PriceTable) -> int:
    """Nano-dollars training on `billed_tokens` (epochs included) may cost; 0 when unpriced or
    billed by the hour."""
    try:
        cost = training_cost(model, billed_tokens, prices)
    except UnknownModelError:
        return 0
    return 0 if cost is None else worst_case_nanos(cost)
