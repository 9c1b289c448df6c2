"""Candidate outcomes on the wire: parts, continuation spans, and array attributes set cheaply.

The wire form is docs/conventions.md, "Candidate outcomes": parallel arrays of ids, codes (0 kept,
r >= 1 dropped for ``reasons[r - 1]``) and, in a ranking, ranks. A step cut into parts sends part 0
on its own span and every further part on a continuation span, a child named ``<step> outcomes``.

A part holds at most PART_SIZE candidates and at most about PART_BYTES of encoded outcomes, so a
part fits any transport's message with room to spare whatever the ids' length (the exporter then
packs parts into requests: export.py). Parts are therefore not all the same size: a reader joins
them in ``part`` order.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes

from .. import conventions as c

log = logging.getLogger("xray_otel")

PART_SIZE = 20_000
"""Most candidates in one part."""
PART_BYTES = 1024 * 1024
"""Most estimated encoded bytes of one part's ids, codes and ranks (a part is cut earlier when ids are long)."""
ID_OVERHEAD = 6
"""Encoded bytes around one string in an OTLP array (tags and lengths), rounded up."""
INT_BYTES = 6
"""Encoded bytes of one small int in an OTLP array, rounded up (ranks up to 2**21)."""
MAX_ID_CHARS = 200
MAX_REASON_CHARS = 1_000

_warned: set[str] = set()


def warn_once(key: str, message: str, *args: Any) -> None:
    """Tell the application's log, once per process and ``key``, that the SDK records less than asked."""
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)


OUTCOME_KEYS = (c.OUTCOME_IDS, c.OUTCOME_REASONS, c.OUTCOME_CODES, c.OUTCOME_RANKS, c.OUTCOME_TOTAL,
                c.OUTCOME_PART, c.OUTCOME_PARTS)


def utf8_len(strings: Sequence[str]) -> int:
    """Bytes of ``strings`` in UTF-8, all together, at C speed."""
    try:
        joined = "".join(strings)
    except TypeError:  # not all strings: an upper bound
        return sum(len(str(s)) for s in strings) * 4
    return len(joined) if joined.isascii() else len(joined.encode("utf-8", "surrogatepass"))


def part_bounds(ids: Sequence[str], arrays: int, part_size: int | None = None,
                part_bytes: int | None = None) -> list[tuple[int, int]]:
    """``(start, end)`` of each part: at most ``part_size`` ids and ``part_bytes`` estimated bytes each.

    ``arrays`` is how many int arrays travel beside the ids (codes; codes and ranks).
    """
    size = part_size or PART_SIZE
    budget = part_bytes or PART_BYTES
    per_item = ID_OVERHEAD + arrays * INT_BYTES
    bounds: list[tuple[int, int]] = []
    for start in range(0, max(len(ids), 1), size):
        chunk = ids[start:start + size]
        fixed = per_item * len(chunk)
        if sum(map(len, chunk)) * 4 + fixed <= budget or utf8_len(chunk) + fixed <= budget:
            bounds.append((start, start + len(chunk)))
            continue
        # Long ids: cut where the running size passes each multiple of the budget (always >= 1 id a part).
        ends = list(accumulate(len(s.encode("utf-8", "surrogatepass")) + per_item for s in chunk))
        first = 0
        while first < len(chunk):
            base = ends[first - 1] if first else 0
            last = max(bisect_right(ends, base + budget, first), first + 1)
            bounds.append((start + first, start + last))
            first = last
    return bounds


# --- array attributes, set without the OTel SDK's per-item check -----------------------------
# span.set_attribute() checks every item of an array in Python (0.2-0.3 µs an item: more than the
# whole filter loop). The arrays here are built by the SDK from exact str and int items only, so on
# an OTel SDK span they are stored as the SDK would store them after its check. Any other span, or
# an SDK whose internals differ, gets the ordinary set_attribute.

def _sdk_attributes(span: trace.Span) -> BoundedAttributes | None:
    attributes = getattr(span, "_attributes", None)
    if (type(attributes) is BoundedAttributes and hasattr(attributes, "_setitem_locked")
            and hasattr(attributes, "_lock") and hasattr(span, "_lock") and hasattr(span, "_end_time")):
        return attributes
    return None


def fast_path_available(span: trace.Span) -> bool:
    """True when ``set_arrays`` stores directly on this span (tests check the installed SDK keeps it so)."""
    return _sdk_attributes(span) is not None


def set_arrays(span: trace.Span, values: dict[str, tuple[Any, ...]]) -> None:
    """Set attributes whose values are ``int`` or tuples of exact ``str`` (ids, reasons: at most
    MAX_REASON_CHARS long) or ``int`` items."""
    attributes = _sdk_attributes(span)
    if attributes is not None and (attributes.max_value_len is None or attributes.max_value_len >= MAX_REASON_CHARS):
        with span._lock:  # type: ignore[attr-defined]
            if span._end_time is None:  # type: ignore[attr-defined]
                with attributes._lock:
                    for key, value in values.items():
                        attributes._setitem_locked(key, value)
                return
    span.set_attributes(values)  # the SDK's own path: checks, and cuts strings to its length limit


def drop_attributes(span: trace.Span, keys: Sequence[str]) -> None:
    """Remove attributes an earlier call set on a still-open span (best effort: OTel has no API for it)."""
    attributes = _sdk_attributes(span)
    if attributes is None:
        log.debug("xray-otel: cannot remove attributes %s from a %s", keys, type(span).__name__)
        return
    with span._lock:  # type: ignore[attr-defined]
        if span._end_time is None:  # type: ignore[attr-defined]
            with attributes._lock:
                for key in keys:
                    attributes._dict.pop(key, None)  # type: ignore[attr-defined]


class Outcomes:
    """One step's outcomes, cut into parts: part 0 goes on the step span now, the rest at the step's end."""

    __slots__ = ("ids", "reasons", "codes", "ranks", "bounds")

    def __init__(self, ids: Sequence[str], reasons: Sequence[str], codes: Sequence[int],
                 ranks: Sequence[int] | None) -> None:
        self.ids, self.reasons, self.codes, self.ranks = ids, tuple(reasons), codes, ranks
        self.bounds = part_bounds(ids, 1 if ranks is None else 2)

    def part(self, index: int) -> dict[str, Any]:
        """The attributes of part ``index``."""
        start, end = self.bounds[index]
        whole = start == 0 and end == len(self.ids)
        values: dict[str, Any] = {
            c.OUTCOME_IDS: tuple(self.ids) if whole else tuple(self.ids[start:end]),
            c.OUTCOME_REASONS: self.reasons,
            c.OUTCOME_CODES: tuple(self.codes) if whole else tuple(self.codes[start:end]),
            c.OUTCOME_TOTAL: len(self.ids),
        }
        if self.ranks is not None:
            values[c.OUTCOME_RANKS] = tuple(self.ranks) if whole else tuple(self.ranks[start:end])
        if len(self.bounds) > 1:
            values[c.OUTCOME_PART] = index
            values[c.OUTCOME_PARTS] = len(self.bounds)
        return values

    def set_first(self, span: trace.Span) -> None:
        """Part 0 on the step span, replacing any outcomes an earlier helper call left there."""
        values = self.part(0)
        stale = [key for key in (c.OUTCOME_RANKS, c.OUTCOME_PART, c.OUTCOME_PARTS) if key not in values]
        drop_attributes(span, stale)
        set_arrays(span, values)

    def send_rest(self, step_span: trace.Span, step_name: str, tracer: trace.Tracer) -> None:
        """Parts 1.. as continuation spans: children of the step span, inside its time."""
        if len(self.bounds) < 2:
            return
        context = trace.set_span_in_context(step_span)
        start_time = getattr(step_span, "start_time", None)
        for index in range(1, len(self.bounds)):
            values = self.part(index)
            span = tracer.start_span(f"{step_name} outcomes", context=context, start_time=start_time,
                                     attributes={c.KIND: c.KIND_OUTCOMES})
            try:
                set_arrays(span, values)
            finally:
                span.end()
