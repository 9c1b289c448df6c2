"""Candidate outcomes (docs/conventions.md, "Candidate outcomes"): the ``xray.step.outcomes.*`` attributes of
one span, read and checked into an OutcomeRow. Pure, as spans.py.

Nothing a sender gets wrong here costs the span: its step row is stored whatever its outcomes say. What
cannot be stored exactly is left out and the part says why (``OutcomeRow.incomplete``), so that the step
answers ``unknown`` for a candidate it does not hold, never ``kept``:

- a part whose shape is wrong (arrays of different lengths, not arrays, a part number out of range) keeps
  no outcome at all, and says why;
- a single outcome that cannot be stored (an id that is not a string of 1 to 200 characters, or holds a
  NUL or a lone surrogate; a code that points at no reason; a rank that is not an int from 0 to 2**31 - 1)
  is left out, the rest of the part kept, and the part says how many went and why;
- a reason longer than the receiver's value cap is cut, with the marker, and the part says so.

Arrays are read as OTLP arrays (lists; values.str_array and int_array read them fast); they are never
stringified, nor cut by the cap on attribute values (spans.py keeps them apart, values.split_attributes):
their limits are the ones above.
"""

from __future__ import annotations

import re
from typing import Any

from .. import conventions as c
from .rows import OutcomeRow
from .values import any_value, clean_text, int_array, str_array

MAX_ID_CHARS = 200
MAX_REASONS = 65_535  # codes are stored as uint16 at most
MAX_PARTS = 1_000_000
MAX_INT = 2**31 - 1
UNKNOWN_PART = -1  # the part of an outcome set refused before its part number could be read
KEYS = frozenset({c.OUTCOME_IDS, c.OUTCOME_REASONS, c.OUTCOME_CODES, c.OUTCOME_RANKS, c.OUTCOME_TOTAL,
                  c.OUTCOME_PART, c.OUTCOME_PARTS})
_SURROGATE = re.compile("[\ud800-\udfff]")


def read_values(sent: dict[str, Any], run_id: Any, span_id: str, max_reason_chars: int) -> OutcomeRow:
    """read() of the ``xray.step.outcomes.*`` attributes of a span as sent (OTLP AnyValues, by key)."""
    attrs = {}
    for key, value in sent.items():
        attrs[key] = (str_array(value) if key == c.OUTCOME_IDS else int_array(value) if key in _INT_ARRAYS
                      else any_value(value))
    return read(attrs, run_id, span_id, max_reason_chars)


_INT_ARRAYS = frozenset({c.OUTCOME_CODES, c.OUTCOME_RANKS})


def read(attrs: dict[str, Any], run_id: Any, span_id: str, max_reason_chars: int) -> OutcomeRow:
    """The outcome part ``attrs`` carry, for step ``span_id`` of run ``run_id``. Never raises on values."""
    part, parts = _int(attrs.get(c.OUTCOME_PART), 0), _int(attrs.get(c.OUTCOME_PARTS), 1)
    if part is None or parts is None or not 1 <= parts <= MAX_PARTS or not 0 <= part < parts:
        why = (f"part {_show(attrs.get(c.OUTCOME_PART))} of {_show(attrs.get(c.OUTCOME_PARTS))}: expected "
               f"{c.OUTCOME_PART} from 0 to {c.OUTCOME_PARTS} - 1, and {c.OUTCOME_PARTS} from 1 to {MAX_PARTS}")
        return _refused(run_id, span_id, UNKNOWN_PART if part is None or part < 0 else part,
                        parts if parts is not None and parts >= 1 else 1, None, why)
    ids, codes, ranks = attrs.get(c.OUTCOME_IDS), attrs.get(c.OUTCOME_CODES), attrs.get(c.OUTCOME_RANKS)
    reasons = attrs.get(c.OUTCOME_REASONS, [])
    total = attrs.get(c.OUTCOME_TOTAL)
    notes: list[str] = []
    if total is not None:
        total = _int(total, None)
        if total is None or not 0 <= total <= MAX_INT:
            notes.append(f"{c.OUTCOME_TOTAL} {_show(attrs.get(c.OUTCOME_TOTAL))} is not a count")
            total = None
    if ids is None and codes is None and total == 0:
        ids, codes = [], []  # a step that decided on no candidate may send no arrays (some SDKs drop empty ones)
    if type(ids) is not list or type(codes) is not list:
        return _refused(run_id, span_id, part, parts, total, f"{c.OUTCOME_IDS} and {c.OUTCOME_CODES} must both be "
                        f"arrays, got {_kind(ids)} and {_kind(codes)}")
    if len(codes) != len(ids):
        return _refused(run_id, span_id, part, parts, total, f"{len(ids)} ids but {len(codes)} codes: the arrays "
                        "must be parallel, so no outcome of this part can be told")
    if ranks is not None and (type(ranks) is not list or len(ranks) != len(ids)):
        return _refused(run_id, span_id, part, parts, total, f"{c.OUTCOME_RANKS} must be an array as long as the "
                        f"{len(ids)} ids, got {_kind(ranks)}" + (f" of {len(ranks)}" if type(ranks) is list else ""))
    if type(reasons) is not list or any(type(r) is not str for r in reasons):
        return _refused(run_id, span_id, part, parts, total, f"{c.OUTCOME_REASONS} must be an array of strings")
    if len(reasons) > MAX_REASONS:
        return _refused(run_id, span_id, part, parts, total, f"{len(reasons)} reasons; at most {MAX_REASONS}")
    if total is None and parts == 1 and c.OUTCOME_TOTAL not in attrs:
        total = len(ids)  # one part, no total: the part is the whole
    reasons, cut = _reasons(reasons, max_reason_chars)
    if cut:
        notes.append(f"{cut} reasons over {max_reason_chars} characters were cut (marked {c.TRUNCATION_MARKER!r})")
    sent = len(ids)
    if not (_ids_ok(ids) and _codes_ok(codes, len(reasons)) and (ranks is None or _ranks_ok(ranks))):
        ids, codes, ranks, why = _keep_valid(ids, codes, ranks, len(reasons))  # also makes integral doubles ints
        if len(ids) < sent:
            notes.append(f"{sent - len(ids)} of {sent} outcomes refused ({why})")
    return OutcomeRow(run_id, span_id, part, parts, total, ids, codes, ranks, reasons, "; ".join(notes) or None)


def _refused(run_id: Any, span_id: str, part: int, parts: int, total: int | None, why: str) -> OutcomeRow:
    """A part none of whose outcomes can be stored: kept empty, saying why, so its step reads incomplete."""
    return OutcomeRow(run_id, span_id, part, parts, total, [], [], None, [], f"outcome set refused: {why}")


def _int(value: Any, default: int | None) -> int | None:
    """An int attribute (an integral double too, as JSON senders may write one); ``default`` when absent,
    None when not an integer."""
    if value is None:
        return default
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    return None


def _ids_ok(ids: list[Any]) -> bool:
    """Every id a string of 1 to MAX_ID_CHARS characters with no NUL or lone surrogate (at C speed)."""
    if not ids:
        return True
    if set(map(type, ids)) != {str} or min(map(len, ids)) < 1 or max(map(len, ids)) > MAX_ID_CHARS:
        return False
    joined = "\x00".join(ids)
    return joined.count("\x00") == len(ids) - 1 and (joined.isascii() or not _SURROGATE.search(joined))


def _codes_ok(codes: list[Any], reasons: int) -> bool:
    return not codes or (set(map(type, codes)) == {int} and min(codes) >= 0 and max(codes) <= reasons)


def _ranks_ok(ranks: list[Any]) -> bool:
    return not ranks or (set(map(type, ranks)) == {int} and min(ranks) >= 0 and max(ranks) <= MAX_INT)


def _id_problem(value: Any) -> str | None:
    if type(value) is not str:
        return f"an id that is {_kind(value)}, not a string"
    if not value:
        return "an empty id"
    if len(value) > MAX_ID_CHARS:
        return f"an id over {MAX_ID_CHARS} characters"
    if "\x00" in value or _SURROGATE.search(value):
        return "an id with a NUL or a lone surrogate"
    return None


def _keep_valid(ids: list[Any], codes: list[Any], ranks: list[Any] | None,
                reasons: int) -> tuple[list[str], list[int], list[int] | None, str]:
    """The outcomes that can be stored, and the first reason one could not."""
    kept_ids: list[str] = []
    kept_codes: list[int] = []
    kept_ranks: list[int] | None = None if ranks is None else []
    first: str | None = None
    for i, value in enumerate(ids):
        problem = _id_problem(value)
        code = _int(codes[i], None)
        if problem is None and (code is None or not 0 <= code <= reasons):
            problem = f"a code {_show(codes[i])} that points at none of the {reasons} reasons"
        rank = None if ranks is None else _int(ranks[i], None)
        if problem is None and ranks is not None and (rank is None or not 0 <= rank <= MAX_INT):
            problem = f"a rank {_show(ranks[i])} that is not an int from 0 to {MAX_INT}"
        if problem is not None:
            first = first or f"first at index {i}: {problem}"
            continue
        kept_ids.append(value)
        kept_codes.append(code)  # type: ignore[arg-type]
        if kept_ranks is not None:
            kept_ranks.append(rank)  # type: ignore[arg-type]
    return kept_ids, kept_codes, kept_ranks, first or ""


def _reasons(reasons: list[str], limit: int) -> tuple[list[str], int]:
    cut = 0
    out = []
    for reason in reasons:
        reason = clean_text(reason)
        if len(reason) > limit:
            reason = reason[:limit] + c.TRUNCATION_MARKER
            cut += 1
        out.append(reason)
    return out, cut


def _kind(value: Any) -> str:
    return "absent" if value is None else {str: "a string", bool: "a boolean", int: "an int", float: "a double",
                                           list: "an array", dict: "a map"}.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "…"
