"""process_candidates(), rank_candidates(), score_candidates(): funnel figures, every candidate's
outcome, and a sample of decisions.

What each capture mode records (counts and the rejection histogram are always exact):
  summary  counts and the histogram only;
  sampled  (default) the outcome of every candidate (``xray.step.outcomes.*``: id, kept or the
           reason it was dropped, rank in a ranking; exact, no cap), and a sample of decisions
           (``xray.step.decisions``: every survivor up to MAX_SAMPLED_ACCEPTED, the first
           SAMPLES_PER_REASON rejections of each reason, the best rejected in a ranking);
  full     every outcome, and every decision up to MAX_DECISIONS.
Outcomes are parallel arrays (docs/conventions.md, "Candidate outcomes"); a step of more than
PART_SIZE candidates sends them in parts (outcomes.py). ``xray.step.decisions_dropped`` counts the
decisions left out of the sample. The filter loop stays tight: it only appends a small code per
candidate; ids are built in one comprehension after it.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from .. import conventions as c
from .outcomes import MAX_ID_CHARS, MAX_REASON_CHARS, Outcomes
from .runs import Step, current_step, step

log = logging.getLogger("xray_otel")

T = TypeVar("T")
CAPTURE_MODES = ("summary", "sampled", "full")
MAX_SAMPLED_ACCEPTED = 100
SAMPLES_PER_REASON = 5
MAX_DECISIONS = 10_000
"""Most decisions in ``xray.step.decisions`` with capture="full" (outcomes have no cap)."""
MAX_LABEL_CHARS = 200
MAX_REASONS = 1_000
"""Most distinct reasons in one step's outcomes; candidates dropped for further reasons get OTHER_REASONS."""
OTHER_REASONS = f"(one of the reasons past the first {MAX_REASONS:,}: see xray.step.rejections)"
DECISION_LABEL = c.DECISION_LABEL
DEFAULT_REASON = "rejected"
"""The histogram key when ``filter_fn`` returns a bare False (or no reason)."""
BELOW_TOP_K = "below_top_k"

_warned: set[str] = set()


def process_candidates(
    candidates: Iterable[T],
    filter_fn: Callable[[T], Any],
    step_name: str | None = None,
    capture: str = "sampled",
    id_fn: Callable[[T], Any] | None = None,
    label_fn: Callable[[T], Any] | None = None,
) -> list[T]:
    """Keep the candidates ``filter_fn`` accepts, recording why the others went.

    ``filter_fn`` returns ``(keep, reason)`` or a bool. With ``step_name`` (or outside any
    step) a ``filter`` step of that name is recorded; otherwise the open step is annotated.
    ``id_fn`` names a candidate (default: its ``id`` key or attribute, else its position);
    ``label_fn`` gives the short text shown beside the id in sampled decisions (a title, a
    category path). Returns the survivors, in order, exactly as without instrumentation.
    """
    _check_capture(capture)
    items = candidates if isinstance(candidates, Sequence) else list(candidates)
    with _target_step(step_name, "process_candidates", "filter") as s:
        if capture == "summary" or not s.recording:
            survivors, rejections = _filter_counting(items, filter_fn)
            if s.recording:
                _record_summary(s, len(items), len(survivors), _histogram(rejections.items()))
            return survivors
        survivors, reasons, codes, others = _filter_coding(items, filter_fn)
        _guarded(_record_filter, s, items, capture, id_fn, label_fn, reasons, codes, others, len(survivors))
    return survivors


def rank_candidates(
    candidates: Iterable[T],
    score_fn: Callable[[T], float],
    top_k: int | None,
    step_name: str | None = None,
    capture: str = "sampled",
    id_fn: Callable[[T], Any] | None = None,
    label_fn: Callable[[T], Any] | None = None,
) -> list[T]:
    """The ``top_k`` candidates by descending ``score_fn`` (ties keep input order; None keeps all).

    Records every candidate's rank and whether it made the cut, each kept candidate's score,
    and in ``sampled`` mode the SAMPLES_PER_REASON best rejected ones, so "why did this one
    win" has an answer.
    """
    _check_capture(capture)
    if top_k is not None and (not isinstance(top_k, int) or top_k < 0):
        raise ValueError(f"top_k must be a non-negative int or None, got {top_k!r}")
    items = candidates if isinstance(candidates, Sequence) else list(candidates)
    with _target_step(step_name, "rank_candidates", "rank") as s:
        scores = [score_fn(item) for item in items]
        order = sorted(range(len(items)), key=scores.__getitem__, reverse=True)
        k = len(items) if top_k is None else min(top_k, len(items))
        if s.recording:
            _guarded(_record_rank, s, items, scores, order, k, capture, id_fn, label_fn)
    return [items[i] for i in order[:k]]


def score_candidates(
    candidates: Iterable[T],
    score_fn: Callable[[T], Any],
    step_name: str | None = None,
    capture: str = "sampled",
    id_fn: Callable[[T], Any] | None = None,
    label_fn: Callable[[T], Any] | None = None,
) -> list[Any]:
    """Score every candidate and drop none: returns ``score_fn``'s scores, in input order.

    Records every candidate as kept (outcomes) and, in the decisions sample, the scores of the
    MAX_SAMPLED_ACCEPTED best (every one up to MAX_DECISIONS with ``capture="full"``). With
    ``step_name`` (or outside any step) a ``score`` step of that name is recorded; otherwise the
    open step is annotated (an LLM step that scores, say).
    """
    _check_capture(capture)
    items = candidates if isinstance(candidates, Sequence) else list(candidates)
    with _target_step(step_name, "score_candidates", "score") as s:
        scores = [score_fn(item) for item in items]
        if s.recording:
            _guarded(_record_scores, s, items, scores, capture, id_fn, label_fn)
    return scores


# --- recording ---------------------------------------------------------------------------------

def _guarded(record: Callable[..., None], s: Step, *args: Any) -> None:
    """Instrumentation must never break the application: a recording failure is logged, not raised."""
    try:
        record(s, *args)
    except Exception:
        log.warning("xray-otel: recording step %r failed", s.name, exc_info=True)


def _record_summary(s: Step, n: int, kept: int, histogram: dict[str, int]) -> None:
    s.set_counts(n, kept, histogram)
    s._set_decisions([], "summary", n)
    s._set_outcomes(None)


def _record_filter(s: Step, items: Sequence[Any], capture: str, id_fn: Callable[[Any], Any] | None,
                   label_fn: Callable[[Any], Any] | None, reasons: list[str], codes: bytearray | array,
                   others: dict[str, int], kept: int) -> None:
    n = len(items)
    counts = _code_counts(codes, len(reasons))
    histogram: dict[str, int] = {}
    for code, text in enumerate(reasons, 1):
        if text != OTHER_REASONS and counts[code]:
            histogram[text] = counts[code]
    histogram.update(others)
    s.set_counts(n, kept, histogram)
    ids = _candidate_ids(items, id_fn)
    if capture == "full":
        picks: Iterable[int] = range(min(n, MAX_DECISIONS))
    else:
        picks = _sampled_indices(codes, len(reasons), MAX_SAMPLED_ACCEPTED, SAMPLES_PER_REASON)
    decisions = [_decision(ids[i], not codes[i], reasons[codes[i] - 1] if codes[i] else None, items[i], label_fn)
                 for i in picks]
    s._set_decisions(decisions, capture, n - len(decisions))
    s._set_outcomes(Outcomes(ids, reasons, codes, None))


def _record_rank(s: Step, items: Sequence[Any], scores: list[Any], order: list[int], k: int, capture: str,
                 id_fn: Callable[[Any], Any] | None, label_fn: Callable[[Any], Any] | None) -> None:
    n = len(items)
    s.set_counts(n, k, {BELOW_TOP_K: n - k} if n > k else {})
    if capture == "summary":
        s._set_decisions([], "summary", n)
        s._set_outcomes(None)
        return
    ids = _candidate_ids(items, id_fn)
    ranks = [0] * n
    for position, index in enumerate(order, 1):
        ranks[index] = position
    codes = bytearray(n)
    for index in order[k:]:
        codes[index] = 1
    decisions = [
        _decision(ids[i], p < k, None if p < k else BELOW_TOP_K, items[i], label_fn, scores[i], p + 1)
        for p, i in ((p, order[p]) for p in _ranked_picks(k, n, capture))
    ]
    s._set_decisions(decisions, capture, n - len(decisions))
    s._set_outcomes(Outcomes(ids, [BELOW_TOP_K] if n > k else [], codes, ranks))


def _record_scores(s: Step, items: Sequence[Any], scores: list[Any], capture: str,
                   id_fn: Callable[[Any], Any] | None, label_fn: Callable[[Any], Any] | None) -> None:
    n = len(items)
    s.set_counts(n, n, {})
    if capture == "summary":
        s._set_decisions([], "summary", n)
        s._set_outcomes(None)
        return
    ids = _candidate_ids(items, id_fn)
    cap = MAX_DECISIONS if capture == "full" else MAX_SAMPLED_ACCEPTED
    key = _sort_key(scores)
    best = heapq.nlargest(cap, range(n), key=key) if cap < n else sorted(range(n), key=key, reverse=True)
    decisions = [_decision(ids[i], True, None, items[i], label_fn, scores[i]) for i in best]
    s._set_decisions(decisions, capture, n - len(decisions))
    s._set_outcomes(Outcomes(ids, [], bytes(n), None))


def _sort_key(scores: list[Any]) -> Callable[[int], Any]:
    """Order by score; a score that does not compare (None, text) sorts last rather than failing."""
    if all(isinstance(x, (int, float)) for x in scores):
        return scores.__getitem__
    return lambda i: scores[i] if isinstance(scores[i], (int, float)) else -math.inf


def _ranked_picks(k: int, n: int, capture: str) -> list[int]:
    """Positions in the ranking whose decisions are recorded."""
    if capture == "summary":
        return []
    if capture == "full":
        return list(range(min(n, MAX_DECISIONS)))
    return [*range(min(k, MAX_SAMPLED_ACCEPTED)), *range(k, min(n, k + SAMPLES_PER_REASON))]


def _check_capture(capture: str) -> None:
    if capture not in CAPTURE_MODES:
        raise ValueError(f"capture must be one of {CAPTURE_MODES}, got {capture!r}")


def _target_step(step_name: str | None, default_name: str, step_type: str) -> contextlib.AbstractContextManager[Step]:
    """The open step to annotate, or a new step when named (or when no step is open)."""
    open_step = None if step_name else current_step()
    if open_step is not None:
        return contextlib.nullcontext(open_step)
    return step(step_name or default_name, step_type=step_type)


# --- the loops ---------------------------------------------------------------------------------

def _filter_counting(items: Sequence[T], filter_fn: Callable[[T], Any]) -> tuple[list[T], dict[Any, int]]:
    """The summary loop: survivors and rejection counts, nothing else."""
    survivors: list[T] = []
    keep_item = survivors.append
    rejections: dict[Any, int] = {}
    for item in items:
        result = filter_fn(item)
        keep, reason = (result[0], result[1]) if isinstance(result, (tuple, list)) else (result, None)
        if keep:
            keep_item(item)
        else:
            rejections[reason] = rejections.get(reason, 0) + 1
    return survivors, rejections


def _filter_coding(items: Sequence[T], filter_fn: Callable[[T], Any]
                   ) -> tuple[list[T], list[str], bytearray | array, dict[str, int]]:
    """The outcomes loop: survivors, and a code per candidate (0 kept, r dropped for ``reasons[r - 1]``).

    Codes are bytes until a 256th reason, then 16-bit. Past MAX_REASONS distinct reasons a candidate
    gets the code of OTHER_REASONS, and ``others`` counts it under its own reason.
    """
    survivors: list[T] = []
    keep_item = survivors.append
    codes: bytearray | array = bytearray()
    code = codes.append
    code_of: dict[Any, int] = {}  # reason as returned -> code
    reasons: list[str] = []
    others: dict[str, int] = {}
    for item in items:
        result = filter_fn(item)
        keep, reason = (result[0], result[1]) if isinstance(result, (tuple, list)) else (result, None)
        if keep:
            keep_item(item)
            code(0)
        else:
            r = code_of.get(reason)
            if r is None:  # a reason not seen yet (rare): find or make its code
                r = _new_code(reason, code_of, reasons, others)
                if r > 255 and type(codes) is bytearray:
                    codes = array("H", list(codes))  # (from bytes it would read pairs)
                    code = codes.append
            code(r)
    return survivors, reasons, codes, others


def _new_code(reason: Any, code_of: dict[Any, int], reasons: list[str], others: dict[str, int]) -> int:
    """The code of a reason not met yet as returned. ``code_of`` also holds each reason's text, so that
    returns of the same text share a code (None and "" both read "rejected")."""
    text = _reason(reason)
    r = code_of.get(text)
    if r is None and len(reasons) < MAX_REASONS:
        reasons.append(text)
        r = code_of[text] = len(reasons)
    if r is not None:
        code_of[reason] = r
        return r
    if not others:
        reasons.append(OTHER_REASONS)
        _warn_once("reasons", "xray-otel: a step dropped candidates for more than %d distinct reasons; their "
                   "outcomes name the rest %r (the histogram keeps every reason)", MAX_REASONS, OTHER_REASONS)
    others[text] = others.get(text, 0) + 1  # given no code of its own: every such candidate passes here
    return MAX_REASONS + 1


def _code_counts(codes: bytearray | array, n_reasons: int) -> list[int]:
    """Candidates per code."""
    if type(codes) is bytearray and n_reasons <= 16:
        return [codes.count(r) for r in range(n_reasons + 1)]
    counted = Counter(codes)
    return [counted.get(r, 0) for r in range(n_reasons + 1)]


def _sampled_indices(codes: bytearray | array, n_reasons: int, max_kept: int, per_reason: int) -> list[int]:
    """In input order: the first ``max_kept`` survivors and the first ``per_reason`` of each reason."""
    picks: list[int] = []
    if type(codes) is bytearray:
        for r in range(n_reasons + 1):
            start, limit = 0, max_kept if r == 0 else per_reason
            while limit:
                start = codes.find(r, start) + 1
                if not start:
                    break
                picks.append(start - 1)
                limit -= 1
        picks.sort()
        return picks
    left = [max_kept] + [per_reason] * n_reasons
    for i, r in enumerate(codes):
        if left[r]:
            left[r] -= 1
            picks.append(i)
    return picks


def _histogram(rejections: Iterable[tuple[Any, int]]) -> dict[str, int]:
    histogram: dict[str, int] = {}
    for reason, count in rejections:
        text = _reason(reason)
        histogram[text] = histogram.get(text, 0) + count
    return histogram


def _reason(reason: Any) -> str:
    return DEFAULT_REASON if reason is None or reason == "" else str(reason)[:MAX_REASON_CHARS]


# --- ids, labels, decisions --------------------------------------------------------------------

def _candidate_ids(items: Sequence[Any], id_fn: Callable[[Any], Any] | None) -> list[str]:
    """Every candidate's id: ``id_fn``, else its ``id`` key or attribute, else its position; at most MAX_ID_CHARS."""
    try:
        if id_fn is not None:
            ids = [str(id_fn(item)) for item in items]
        else:
            ids = [str(item.get("id", i)) if isinstance(item, dict) else str(getattr(item, "id", i))
                   for i, item in enumerate(items)]
    except Exception:  # a broken id_fn costs the ids it cannot give, not the pipeline
        ids = [_candidate_id(item, i, id_fn) for i, item in enumerate(items)]
    if ids and max(map(len, ids)) > MAX_ID_CHARS:
        _warn_once("long ids", "xray-otel: candidate ids longer than %d characters are cut to that length",
                   MAX_ID_CHARS)
        ids = [i[:MAX_ID_CHARS] for i in ids]
    return ids


def _candidate_id(item: Any, index: int, id_fn: Callable[[Any], Any] | None) -> str:
    try:
        if id_fn is not None:
            value = id_fn(item)
        elif isinstance(item, dict):
            value = item.get("id", index)
        else:
            value = getattr(item, "id", index)
        return str(value)
    except Exception:
        log.debug("xray-otel: id_fn failed; using the position", exc_info=True)
        return str(index)


def _decision(candidate_id: str, accepted: bool, reason: str | None, item: Any,
              label_fn: Callable[[Any], Any] | None, score: Any = None, rank: int | None = None) -> dict[str, Any]:
    decision = {
        c.DECISION_ID: candidate_id,
        c.DECISION_ACCEPTED: accepted,
        c.DECISION_REASON: None if accepted else reason,  # (keep, "too_expensive") names the rejection
        c.DECISION_SCORE: score,
        c.DECISION_RANK: rank,
    }
    if label_fn is not None:
        decision[DECISION_LABEL] = _label(item, label_fn)
    return decision


def _label(item: Any, label_fn: Callable[[Any], Any]) -> str | None:
    try:
        value = label_fn(item)
    except Exception:
        log.debug("xray-otel: label_fn failed", exc_info=True)
        return None
    return None if value is None else str(value)[:MAX_LABEL_CHARS]


def _warn_once(key: str, message: str, *args: Any) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)
