"""PII detection and redaction, shared by dataset scrubbing and the completion proxy.

Owns the entity names, how each is recognised and the typed placeholders that replace them.
Every detector validates its candidates rather than trusting a loose pattern: card numbers
pass Luhn and a known network's prefix and length, phone numbers are parsed by `phonenumbers`,
SSNs respect the SSA's never-issued ranges, IPs parse with `ipaddress`, and secrets (in
`pii.secrets`) are vendor formats or high-entropy values assigned to key-like names. Findings
keep kind and span only, never the matched value.

Speed matters on the proxy's hot path and over gigabytes of datasets, and Python's `re` costs
about 10 ns per character per pattern scanned. So one cheap pass finds the runs of digits and
separators, and the number detectors only look at windows around runs long enough to matter;
emails are looked for only around an `@` (or its full-width forms).

Every step is linear in the text: windows are bounded in length, overlaps between kinds are
resolved by one sweep over sorted spans, and redaction makes at most a few passes. A
`ScanBudget` caps the work one request may ask for (characters scanned, findings, number
candidates parsed); past it `ScanBudgetExceeded` is raised instead of minutes of CPU.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from phonenumbers import Leniency, PhoneNumberMatcher

from service.domain.pii.secrets import find_secrets
from service.domain.pii.text import Finding, Span, Text, merge_windows

__all__ = [
    "ALL_ENTITIES",
    "CREDIT_CARD",
    "EMAIL",
    "IP_ADDRESS",
    "PHONE",
    "SECRET",
    "US_SSN",
    "Finding",
    "ScanBudget",
    "ScanBudgetExceeded",
    "detect",
    "luhn_valid",
    "placeholder",
    "redact",
    "ssn_valid",
]

EMAIL = "EMAIL"
PHONE = "PHONE"
CREDIT_CARD = "CREDIT_CARD"
US_SSN = "US_SSN"
IP_ADDRESS = "IP_ADDRESS"
SECRET = "SECRET"
# Also the precedence when spans overlap: a JWT's digits are not a phone number.
ALL_ENTITIES: tuple[str, ...] = (SECRET, EMAIL, CREDIT_CARD, US_SSN, IP_ADDRESS, PHONE)

PHONE_REGION = "US"
_MARGIN = 2  # lookarounds need one character either side of a digit run


def placeholder(kind: str) -> str:
    return f"[{kind}]"


# --- EMAIL -------------------------------------------------------------------------------------

# Unicode letters and digits on both sides (josé@corp.com, bob@bücher.de), the full-width and
# small at signs, and a bounded number of domain labels so a failing match cannot backtrack far.
_AT_SIGNS = ("@", "\uff20", "\ufe6b")
_EMAIL = re.compile(
    r"(?<![\w.%+-])[^\W_](?:[\w.%+-]{0,63})[@\uff20\ufe6b]"
    r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.){1,8}(?:[^\W\d_]{2,24}|xn--[a-z0-9-]{1,59})(?![\w-])"
    r"(?!:[\w.~-]+/)"  # git@github.com:org/repo.git is a remote, not a mailbox
)


def _emails(text: Text) -> Iterator[Span]:
    ats = sorted(at for sign in _AT_SIGNS for at in text.positions(sign))
    for start, end in merge_windows(((at, at + 1) for at in ats), 65, 300, len(text.value)):
        yield from (m.span() for m in _EMAIL.finditer(text.value, start, end))


# --- CREDIT_CARD -------------------------------------------------------------------------------

_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){11,18}(?![\d-])", re.ASCII)
# Groups as printed on cards: 4-4-4-4(-3) and the 4-6-5 / 4-6-4 of Amex and Diners.
_CARD_GROUPS = re.compile(
    r"\d{4}(?:([ -])\d{4}(?:\1\d{4}(?:\1\d{1,4}(?:\1\d{1,3})?)?)?)|\d{4}([ -])\d{6}\2\d{4,5}",
    re.ASCII,
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char) * (2 if i % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _card_length_ok(digits: str) -> bool:
    """Whether the issuer prefix is a known network's and the length one it issues."""
    n, p2, p3, p4 = len(digits), int(digits[:2]), int(digits[:3]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16
    if p2 in (34, 37):
        return n == 15
    if p4 == 6011 or p2 in (62, 65) or 644 <= p3 <= 649:
        return 16 <= n <= 19
    if p2 in (36, 38, 39) or 300 <= p3 <= 305:
        return 14 <= n <= 19
    if 3528 <= p4 <= 3589:
        return 16 <= n <= 19
    return p2 in (50, 56, 57, 58, 63, 67) and 12 <= n <= 19


def _cards(text: Text) -> Iterator[Span]:
    for start, end in text.digit_windows(12, _MARGIN, _MARGIN):
        for match in _CARD.finditer(text.value, start, end):
            raw = match.group()
            digits = raw.replace(" ", "").replace("-", "")
            grouped = digits == raw or _CARD_GROUPS.fullmatch(raw) is not None
            if grouped and _card_length_ok(digits) and luhn_valid(digits):
                yield match.span()


# --- US_SSN ------------------------------------------------------------------------------------

_SSN = re.compile(r"(?<![\d-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\d-])", re.ASCII)
_SSN_LABELLED = re.compile(
    r"(?i)\b(?:ssn|social security(?: number| no\.?)?)\W{0,5}(\d{9})\b", re.ASCII
)
_NEVER_ISSUED = frozenset({"078051120", "219099999"})  # voided after public misuse


def ssn_valid(area: str, group: str, serial: str) -> bool:
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return area + group + serial not in _NEVER_ISSUED


def _ssns(text: Text) -> Iterator[Span]:
    for start, end in text.digit_windows(9, _MARGIN, _MARGIN):
        for match in _SSN.finditer(text.value, start, end):
            if ssn_valid(match[1], match[3], match[4]):
                yield match.span()
    lowered = text.lower()
    if "ssn" in lowered or "social security" in lowered:
        for match in _SSN_LABELLED.finditer(text.value):
            digits = match[1]
            if ssn_valid(digits[:3], digits[3:5], digits[5:]):
                yield match.span(1)


# --- IP_ADDRESS --------------------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# Not a dotted part of something longer, nor a version with a pre-release tag (1.0.0.0-beta).
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.\d|-[A-Za-z])", re.ASCII)
# Dotted numbers named as versions or document sections are not addresses.
_VERSION_BEFORE = re.compile(
    r"(?i)(?:\b(?:version|ver\.?|release|build|firmware|chapter|section|sec\.|step)|§)\s*$"
)
_IPV6 = re.compile(
    r"(?<![\w:.])(?=[0-9A-Fa-f]*:[0-9A-Fa-f]*:)[0-9A-Fa-f:]{3,39}"
    r"(?:(?<=:)(?:\d{1,3}\.){3}\d{1,3})?(?![\w:.]*\w)"
)


_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:")


def _ipv4s(text: Text) -> Iterator[Span]:
    for start, end in text.digit_windows(4, _MARGIN, _MARGIN, dotted=True):
        for match in _IPV4.finditer(text.value, start, end):
            before = max(0, match.start() - 16)
            if not _VERSION_BEFORE.search(text.value, before, match.start()):
                yield match.span()


def _ipv6s(text: Text) -> Iterator[Span]:
    value = text.value
    # An address's colons touch hex digits or each other; JSON's and prose's colons do not.
    colons = [
        (i, i + 1)
        for i in text.positions(":")
        if value[i - 1 : i] in _IPV6_CHARS or value[i + 1 : i + 2] in _IPV6_CHARS
    ]
    if len(colons) < 2:
        return
    for start, end in merge_windows(colons, 40, 50, len(value)):
        for match in _IPV6.finditer(value, start, end):
            candidate = match.group()
            # Digit-free forms (a::b, dead::beef) are far likelier to be code than addresses.
            if any(char.isdigit() for char in candidate) and _parses_as_ipv6(candidate):
                yield match.span()


def _parses_as_ipv6(candidate: str) -> bool:
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def _ips(text: Text) -> Iterator[Span]:
    # IPv6 first: its embedded IPv4 tail (::ffff:192.0.2.1) must not win the overlap.
    yield from _ipv6s(text)
    yield from _ipv4s(text)


# --- PHONE -------------------------------------------------------------------------------------

_NOT_A_PHONE_BEFORE = re.compile(
    r"(?i)(?:#|\b(?:order|invoice|ticket|account|acct|tracking|ref|id|isbn|serial|sku|no\.?)"
    r"\W{0,3})\s*$"
)


def _inside_identifier(text: str, start: int, end: int) -> bool:
    """True for digits glued into a longer token, like INV-2024-000123 or ABC/2125550100."""
    before, after = text[max(0, start - 2) : start], text[end : end + 2]
    glued_before = before[-1:].isalnum() or (before[-1:] in "-/_" and before[:1].isalnum())
    glued_after = after[:1].isalnum() or (after[:1] in "-/_" and after[1:].isalnum())
    return glued_before or glued_after


def _phones(text: Text) -> Iterator[Span]:
    # The parser needs a little context ("+" or "(" before, "ext. 204" after), and costs more
    # the more text it sees: each digit run gets its own window, long runs in bounded slices,
    # and a window seen before (a number repeated through a body) costs a dictionary look-up.
    for window_start, window_end in text.digit_windows(7, 4, 12, merge=False, slice_at=48):
        for relative_start, relative_end, bare in _phone_spans(
            text.value[window_start:window_end], text.budget
        ):
            start, end = window_start + relative_start, window_start + relative_end
            if _inside_identifier(text.value, start, end):
                continue
            if bare and _NOT_A_PHONE_BEFORE.search(text.value, max(0, start - 16), start):
                continue
            yield start, end


_PHONE_CACHE: dict[str, tuple[tuple[int, int, bool], ...]] = {}
_PHONE_CACHE_SIZE = 8192


def _phone_spans(window: str, budget: ScanBudget | None) -> tuple[tuple[int, int, bool], ...]:
    """The parser's matches in a window, remembered; only a window not seen before costs a
    candidate from the budget."""
    spans = _PHONE_CACHE.get(window)
    if spans is None:
        if budget is not None:
            budget.spend_candidates(1)
        spans = tuple(
            (match.start, match.end, match.raw_string.isdigit())
            for match in PhoneNumberMatcher(window, PHONE_REGION, leniency=Leniency.VALID)
        )
        if len(_PHONE_CACHE) >= _PHONE_CACHE_SIZE:
            _PHONE_CACHE.clear()
        _PHONE_CACHE[window] = spans
    return spans


# --- API ---------------------------------------------------------------------------------------

_DETECTORS: dict[str, Callable[[Text], Iterator[Span]]] = {
    SECRET: find_secrets,
    EMAIL: _emails,
    CREDIT_CARD: _cards,
    US_SSN: _ssns,
    IP_ADDRESS: _ips,
    PHONE: _phones,
}


class ScanBudgetExceeded(Exception):
    """A request asked for more PII scanning than its budget allows."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"{what} over {limit:,}")
        self.what = what
        self.limit = limit


@dataclass(slots=True)
class ScanBudget:
    """What one request may cost the scanner; shared by every text of the request."""

    max_chars: int
    max_findings: int
    max_candidates: int
    chars: int = 0
    findings: int = 0
    candidates: int = 0

    def spend_chars(self, count: int) -> None:
        self.chars += count
        if self.chars > self.max_chars:
            raise ScanBudgetExceeded("characters to scan", self.max_chars)

    def spend_findings(self, count: int) -> None:
        self.findings += count
        if self.findings > self.max_findings:
            raise ScanBudgetExceeded("personal-data findings", self.max_findings)

    def spend_candidates(self, count: int) -> None:
        self.candidates += count
        if self.candidates > self.max_candidates:
            raise ScanBudgetExceeded("phone-number candidates", self.max_candidates)


# Phones are the densest kind in ordinary text and the costliest to parse: scanned early, so a
# text dense with them runs out of budget before the other detectors have read all of it.
_SCAN_ORDER = (SECRET, EMAIL, PHONE, US_SSN, CREDIT_CARD, IP_ADDRESS)


def detect(
    text: str, entities: Iterable[str] = ALL_ENTITIES, budget: ScanBudget | None = None
) -> list[Finding]:
    """Non-overlapping findings in text order; on overlap the earlier kind in ALL_ENTITIES wins."""
    if budget is not None:
        budget.spend_chars(len(text))
    wanted = set(entities)
    view = Text(text, budget)
    spans: dict[str, list[Span]] = {}
    for kind in _SCAN_ORDER:
        if kind in wanted:
            found = (s for s in _DETECTORS[kind](view) if s[1] > s[0])
            spans[kind] = sorted(found if budget is None else _charged(found, budget), key=_longest)
    taken: list[Finding] = []
    for kind in ALL_ENTITIES:
        if kind in spans:
            taken = _merge_kind(taken, kind, spans[kind])
    return taken


def _charged(spans: Iterable[Span], budget: ScanBudget) -> Iterator[Span]:
    """Each span as it is found, charged to the budget, so a dense text stops early."""
    for span in spans:
        budget.spend_findings(1)
        yield span


def _longest(span: Span) -> tuple[int, int]:
    return span[0], -span[1]


def _merge_kind(taken: list[Finding], kind: str, spans: list[Span]) -> list[Finding]:
    """`taken` (sorted, disjoint) plus the spans of a lower-precedence kind that overlap
    neither it nor each other: one sweep over both sorted lists."""
    merged: list[Finding] = []
    index = 0
    last_end = -1
    for start, end in spans:
        while index < len(taken) and taken[index].end <= start:
            merged.append(taken[index])
            last_end = max(last_end, taken[index].end)
            index += 1
        blocked = index < len(taken) and taken[index].start < end
        if not blocked and start >= last_end:
            merged.append(Finding(kind, start, end))
            last_end = end
    merged.extend(taken[index:])
    return merged


def _replace(text: str, findings: list[Finding]) -> str:
    parts: list[str] = []
    position = 0
    for finding in findings:
        parts += (text[position : finding.start], placeholder(finding.kind))
        position = finding.end
    parts.append(text[position:])
    return "".join(parts)


MAX_REDACTION_PASSES = 4


def redact(
    text: str, entities: Iterable[str] = ALL_ENTITIES, budget: ScanBudget | None = None
) -> tuple[str, Counter[str]]:
    """Text with each finding replaced by its placeholder, and the count per kind.

    A placeholder can change its neighbour's context and reveal a new match (`0@0.AA` before
    a card number), so another pass runs when the previous one replaced something. Each pass
    is linear and charged to the budget, and past `MAX_REDACTION_PASSES` the text is refused
    rather than sent half-redacted.
    """
    wanted = tuple(entities)
    counts: Counter[str] = Counter()
    for _ in range(MAX_REDACTION_PASSES):
        findings = detect(text, wanted, budget)
        if not findings:
            return text, counts
        counts.update(f.kind for f in findings)
        text = _replace(text, findings)
    if detect(text, wanted, budget):
        raise ScanBudgetExceeded("redaction passes", MAX_REDACTION_PASSES)
    return text, counts
