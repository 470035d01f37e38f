"""What a budget limits, and over which period.

An org's budgets are counted in nano-dollars (integers, exact in Redis' Lua numbers up to nine
million dollars) per *scope*: the whole org (`org`), one key (`key:<key id>`) and one kind of
spending (`kind:inference`, `kind:training`). A call is charged to every scope the policy limits
that applies to it, and refused when any of them would go over. A period starts at midnight UTC
on `reset_day` of the month (the 1st by default, so a calendar month) and ends at the next one.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Literal

from service.domain.tenancy.policy import Budgets

Kind = Literal["inference", "training"]
KINDS: tuple[Kind, ...] = ("inference", "training")
NANOS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Period:
    start: dt.datetime
    end: dt.datetime

    @property
    def name(self) -> str:
        return self.start.date().isoformat()


@dataclass(frozen=True, slots=True)
class Scope:
    name: str  # `org`, `key:<id>`, `kind:<kind>`
    limit_nanos: int | None  # None: counted, not limited


def _limit(usd: float | None) -> int | None:
    return None if usd is None else to_nanos(usd)


def to_nanos(usd: float) -> int:
    return round(usd * NANOS)


def _month_day(year: int, month: int, day: int) -> dt.datetime:
    if month == 13:
        year, month = year + 1, 1
    return dt.datetime(year, month, day, tzinfo=dt.UTC)


def period_of(budgets: Budgets, now: dt.datetime) -> Period:
    """The period holding `now` (aware, any zone)."""
    now, day = now.astimezone(dt.UTC), budgets.reset_day
    this = _month_day(now.year, now.month, day)
    if now >= this:
        return Period(this, _month_day(now.year, now.month + 1, day))
    previous = _month_day(now.year - 1, 12, day) if now.month == 1 else None
    start = previous or _month_day(now.year, now.month - 1, day)
    return Period(start, this)


def scopes_for(budgets: Budgets, key_id: str | None, kind: Kind) -> list[Scope]:
    """The scopes a call of this key and kind is charged to: the org, its kind, and its key
    (counted even when not limited, for the report)."""
    kinds = budgets.per_kind
    found = [
        Scope("org", _limit(budgets.monthly_usd)),
        Scope(f"kind:{kind}", _limit(getattr(kinds, kind) if kinds is not None else None)),
    ]
    if key_id is not None:
        found.append(Scope(f"key:{key_id}", _limit(budgets.per_key.get(key_id))))
    return found


def report_scopes(budgets: Budgets) -> list[Scope]:
    """The scopes the report shows: the org, each kind, and each key with a limit."""
    kinds = budgets.per_kind
    found = [Scope("org", _limit(budgets.monthly_usd))]
    found += [
        Scope(f"kind:{kind}", _limit(getattr(kinds, kind) if kinds else None)) for kind in KINDS
    ]
    found += [Scope(f"key:{key}", to_nanos(usd)) for key, usd in sorted(budgets.per_key.items())]
    return found


def worst_case_nanos(cost_usd: float) -> int:
    """A reservation: the cost rounded up, so rounding never lets spending past a limit."""
    return math.ceil(cost_usd * NANOS)
