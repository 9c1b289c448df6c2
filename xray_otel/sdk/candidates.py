"""process_candidates(), rank_candidates(), score_candidates(): funnel figures, every candidate's
outcome, and a sample of decisions.

What each capture mode records (counts and the rejection histogram are always exact):
  summary  counts and the histogram only;
  sampled  (default) the outcome of every candidate (``xray.step.outcomes.*``: id, kept or the
           reason it was dropped, rank in a ranking; exact, no cap), and a sample of decisions chosen
           for debugging (``xray.step.decisions``, sampling.py: watched ids, the decision boundary,
           survivors up to a cap, a few of each reason at random), each saying why it is there;
  full     every outcome, and every decision up to MAX_DECISIONS (and watched ids past it).
Outcomes are parallel arrays (docs/conventions.md, "Candidate outcomes"); a step of more than
PART_SIZE candidates sends them in parts (outcomes.py). ``xray.step.decisions_dropped`` counts the
decisions left out of the sample, ``xray.step.sample.*`` says how it was drawn. The filter loop
stays tight: it only appends a small code (and the compared value) per candidate; ids are built
in one comprehension after it.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import math
import random
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from .. import conventions as c
from . import sampling
from .outcomes import MAX_ID_CHARS, MAX_REASON_CHARS, Outcomes, warn_once
from .runs import Step, current_step, step
from .serialize import to_json

log = logging.getLogger("xray_otel")

T = TypeVar("T")
CAPTURE_MODES = ("summary", "sampled", "full")
MAX_SAMPLED_ACCEPTED = sampling.MAX_SURVIVORS
SAMPLES_PER_REASON = sampling.PER_REASON
MAX_DECISIONS = 10_000
"""Most decisions in ``xray.step.decisions`` with capture="full" (outcomes have no cap)."""
MAX_DECISIONS_CHARS = 1_000_000
"""Most characters of the decisions attribute, under the receiver's 1 MiB value cap: past it, payloads are
left out (watched and boundary ones last) with one warning, rather than the receiver cutting the text."""
_PRIORITY = {c.SAMPLED_WATCHED: 0, c.SAMPLED_BOUNDARY: 1, c.SAMPLED_SURVIVOR: 2, c.SAMPLED_RESERVOIR: 3}
MAX_LABEL_CHARS = 200
MAX_REASONS = 1_000
"""Most distinct reasons in one step's outcomes; candidates dropped for further reasons get OTHER_REASONS."""
OTHER_REASONS = f"(one of the reasons past the first {MAX_REASONS:,}: see xray.step.rejections)"
DECISION_LABEL = c.DECISION_LABEL
DEFAULT_REASON = "rejected"
"""The histogram key when ``filter_fn`` returns a bare False (or no reason)."""
BELOW_TOP_K = "below_top_k"


def process_candidates(
    candidates: Iterable[T],
    filter_fn: Callable[[T], Any],
    step_name: str | None = None,
    capture: str = "sampled",
    id_fn: Callable[[T], Any] | None = None,
    label_fn: Callable[[T], Any] | None = None,
    *,
    watch: Iterable[Any] | None = None,
    funnel: str | None = None,
) -> list[T]:
    """Keep the candidates ``filter_fn`` accepts, recording why the others went.

    ``filter_fn`` returns ``(keep, reason)``, ``(keep, reason, value)`` or a bool; ``value`` (the
    number the filter compared, e.g. the price) lets the sample hold the candidates nearest the
    threshold. With ``step_name`` (or outside any step) a ``filter`` step of that name is recorded;
    otherwise the open step is annotated. ``id_fn`` names a candidate (default: its ``id`` key or
    attribute, else its position); ``label_fn`` gives the short text shown beside the id in sampled
    decisions (a title, a category path); ``watch`` lists ids whose payload is always sampled;
    ``funnel`` names the candidate stream the step belongs to. Returns the survivors, in order,
    exactly as without instrumentation.
    """
    _check_capture(capture)
    items = candidates if isinstance(candidates, Sequence) else list(candidates)
    with _target_step(step_name, "process_candidates", "filter") as s:
        if s.recording and funnel is not None:
            _set_funnel(s, funnel)
        if capture == "summary" or not s.recording:
            survivors, rejections = _filter_counting(items, filter_fn)
            if s.recording:
                _record_summary(s, len(items), len(survivors), _histogram(rejections.items()))
            return survivors
        survivors, reasons, codes, others, values = _filter_coding(items, filter_fn)
        _guarded(_record_filter, s, items, capture, id_fn, label_fn, reasons, codes, others, len(survivors),
                 values, watch)
    return survivors


def rank_candidates(
    candidates: Iterable[T],
    score_fn: Callable[[T], float],
    top_k: int | None,
    step_name: str | None = None,
    capture: str = "sampled",
    id_fn: Callable[[T], Any] | None = None,
    label_fn: Callable[[T], Any] | None = None,
    *,
    watch: Iterable[Any] | None = None,
    funnel: str | None = None,
) -> list[T]:
    """The ``top_k`` candidates by descending ``score_fn`` (ties keep input order; None keeps all).

    Records every candidate's rank and whether it made the cut, and in the sample the best kept, the
    last kept and first cut (the boundary), a random few of the cut and any watched id, with scores,
    so "why did this one win" has an answer. ``watch`` and ``funnel`` as in process_candidates.
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
            if funnel is not None:
                _set_funnel(s, funnel)
            _guarded(_record_rank, s, items, scores, order, k, capture, id_fn, label_fn, watch)
    return [items[i] for i in order[:k]]


def score_candidates(
    candidates: Iterable[T],
    score_fn: Callable[[T], Any],
    step_name: str | None = None,
    capture: str = "sampled",
    id_fn: Callable[[T], Any] | None = None,
    label_fn: Callable[[T], Any] | None = None,
    *,
    watch: Iterable[Any] | None = None,
    funnel: str | None = None,
) -> list[Any]:
    """Score every candidate and drop none: returns ``score_fn``'s scores, in input order.

    Records every candidate as kept (outcomes) and, in the decisions sample, the scores of the
    MAX_SAMPLED_ACCEPTED best, a random few others and any watched id (every one up to MAX_DECISIONS
    with ``capture="full"``). With ``step_name`` (or outside any step) a ``score`` step of that name
    is recorded; otherwise the open step is annotated (an LLM step that scores, say).
    """
    _check_capture(capture)
    items = candidates if isinstance(candidates, Sequence) else list(candidates)
    with _target_step(step_name, "score_candidates", "score") as s:
        scores = [score_fn(item) for item in items]
        if s.recording:
            if funnel is not None:
                _set_funnel(s, funnel)
            _guarded(_record_scores, s, items, scores, capture, id_fn, label_fn, watch)
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
    s._set_decisions(None, "summary", n, {c.STEP_SAMPLE_RULE: c.SAMPLE_RULE_NONE, c.STEP_SAMPLE_RATE: 0.0})
    s._set_outcomes(None)


def _record_filter(s: Step, items: Sequence[Any], capture: str, id_fn: Callable[[Any], Any] | None,
                   label_fn: Callable[[Any], Any] | None, reasons: list[str], codes: bytearray | array,
                   others: dict[str, int], kept: int, values: list[Any] | None, watch: Iterable[Any] | None) -> None:
    n = len(items)
    counts = _code_counts(codes, len(reasons))
    histogram: dict[str, int] = {}
    for code, text in enumerate(reasons, 1):
        if text != OTHER_REASONS and counts[code]:
            histogram[text] = counts[code]
    histogram.update(others)
    s.set_counts(n, kept, histogram)
    ids = _candidate_ids(items, id_fn)
    watched = sampling.watched_ids(watch)
    seed = sampling.seed_for(s.name, n)
    if capture == "full":
        picks = _all_picks(n, ids, watched, s.name)
    else:
        picks = sampling.filter_picks(codes, counts, values, ids, watched, random.Random(seed))
    shown = sorted(picks)  # input order
    decisions = [_decision(ids[i], not codes[i], reasons[codes[i] - 1] if codes[i] else None, items[i], label_fn,
                           value=None if values is None else values[i], sampled_as=picks[i]) for i in shown]
    _set_sample(s, decisions, capture, n, seed, lambda kept: sampling.sample_counts(codes, reasons, counts, kept),
                shown)
    s._set_outcomes(Outcomes(ids, reasons, codes, None))


def _record_rank(s: Step, items: Sequence[Any], scores: list[Any], order: list[int], k: int, capture: str,
                 id_fn: Callable[[Any], Any] | None, label_fn: Callable[[Any], Any] | None,
                 watch: Iterable[Any] | None) -> None:
    n = len(items)
    reasons = [BELOW_TOP_K] if n > k else []
    if capture == "summary":
        _record_summary(s, n, k, {BELOW_TOP_K: n - k} if n > k else {})
        return
    s.set_counts(n, k, {BELOW_TOP_K: n - k} if n > k else {})
    ids = _candidate_ids(items, id_fn)
    ranks = [0] * n
    for position, index in enumerate(order, 1):
        ranks[index] = position
    codes = bytearray(n)
    for index in order[k:]:
        codes[index] = 1
    watched = sampling.watched_ids(watch)
    seed = sampling.seed_for(s.name, n)
    if capture == "full":
        by_index = _all_picks(n, [ids[i] for i in order], watched, s.name)  # positions in the ranking
    else:
        by_index = sampling.rank_picks(order, k, ids, watched, random.Random(seed))
    positions = sorted(by_index)
    decisions = [
        _decision(ids[i], p < k, None if p < k else BELOW_TOP_K, items[i], label_fn, scores[i], p + 1,
                  sampled_as=by_index[p])
        for p, i in ((p, order[p]) for p in positions)
    ]
    counts = [k, n - k] if n > k else [n]
    _set_sample(s, decisions, capture, n, seed,
                lambda shown: sampling.sample_counts(codes, reasons, counts, shown), [order[p] for p in positions])
    s._set_outcomes(Outcomes(ids, reasons, codes, ranks))


def _record_scores(s: Step, items: Sequence[Any], scores: list[Any], capture: str,
                   id_fn: Callable[[Any], Any] | None, label_fn: Callable[[Any], Any] | None,
                   watch: Iterable[Any] | None) -> None:
    n = len(items)
    if capture == "summary":
        _record_summary(s, n, n, {})
        return
    s.set_counts(n, n, {})
    ids = _candidate_ids(items, id_fn)
    watched = sampling.watched_ids(watch)
    seed = sampling.seed_for(s.name, n)
    key = _sort_key(scores)
    if capture == "full":
        picks = _all_picks(n, ids, watched, s.name)
    else:
        best = heapq.nlargest(MAX_SAMPLED_ACCEPTED, range(n), key=key) if MAX_SAMPLED_ACCEPTED < n else list(range(n))
        picks = sampling.score_picks(best, n, ids, watched, random.Random(seed))
    shown = sorted(picks, key=key, reverse=True)  # best first
    decisions = [_decision(ids[i], True, None, items[i], label_fn, scores[i], sampled_as=picks[i]) for i in shown]
    codes = bytes(n)
    _set_sample(s, decisions, capture, n, seed, lambda picked: sampling.sample_counts(codes, [], [n], picked), shown)
    s._set_outcomes(Outcomes(ids, [], codes, None))


def _all_picks(n: int, ids: Sequence[str], watched: frozenset[str], name: str) -> dict[int, str | None]:
    """capture="full": every position up to MAX_DECISIONS, and watched ids past it."""
    picks: dict[int, str | None] = dict.fromkeys(range(min(n, MAX_DECISIONS)))
    if n > MAX_DECISIONS:
        warn_once("full cap", "xray-otel: capture='full' records at most %d decisions a step; step %r had %d "
                  "candidates (every outcome is still exact; watch=[...] keeps chosen ids' payloads)",
                  MAX_DECISIONS, name, n)
        picks.update(dict.fromkeys(sampling.watched_positions(ids, watched), c.SAMPLED_WATCHED))
    return picks


def _set_sample(s: Step, decisions: list[dict[str, Any]], capture: str, n: int, seed: int,
                count: Callable[[list[int]], dict[str, Any]], indices: list[int]) -> None:
    """The decisions attribute, within MAX_DECISIONS_CHARS, and how the sample was drawn."""
    text, kept = _fit(decisions, s.name)
    shown = indices if kept is None else [indices[j] for j in kept]
    s._set_decisions(text, capture, n - len(shown), {
        c.STEP_SAMPLE_RULE: c.SAMPLE_RULE_ALL if capture == "full" else c.SAMPLE_RULE_DEBUG,
        c.STEP_SAMPLE_RATE: len(shown) / n if n else 0.0,
        c.STEP_SAMPLE_COUNTS: to_json(count(shown), limit=None),
        c.STEP_SAMPLE_SEED: seed,
    })


def _fit(decisions: list[dict[str, Any]], name: str) -> tuple[str | None, list[int] | None]:
    """The decisions as JSON of at most MAX_DECISIONS_CHARS, and which of them it holds (None: all).

    Past the cap the least telling go first (reservoir, then survivors, boundary, watched, as
    ``sampled_as`` says; in full capture, the last in input order), with one warning."""
    if not decisions:
        return None, None
    text = to_json(decisions, limit=None)
    if len(text) <= MAX_DECISIONS_CHARS:
        return text, None
    ranked = sorted(range(len(decisions)), key=lambda j: _PRIORITY.get(decisions[j].get(c.DECISION_SAMPLED_AS), 4))
    keep = len(decisions)
    while len(text) > MAX_DECISIONS_CHARS and keep > 1:
        keep = max(1, min(keep - 1, int(keep * MAX_DECISIONS_CHARS / len(text) * 0.95)))
        chosen = sorted(ranked[:keep])
        text = to_json([decisions[j] for j in chosen], limit=None)
    warn_once("decisions size", "xray-otel: the decisions sample of step %r came to more than %d characters; %d of "
              "%d payloads are recorded (every outcome is still exact)", name, MAX_DECISIONS_CHARS, keep,
              len(decisions))
    return text, sorted(ranked[:keep])


def _set_funnel(s: Step, funnel: Any) -> None:
    try:
        s.span.set_attribute(c.STEP_FUNNEL, str(funnel))
    except Exception:
        log.warning("xray-otel: recording the funnel of step %r failed", s.name, exc_info=True)


def _sort_key(scores: list[Any]) -> Callable[[int], Any]:
    """Order by score; a score that does not compare (None, text) sorts last rather than failing."""
    if all(isinstance(x, (int, float)) for x in scores):
        return scores.__getitem__
    return lambda i: scores[i] if isinstance(scores[i], (int, float)) else -math.inf


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
                   ) -> tuple[list[T], list[str], bytearray | array, dict[str, int], list[Any] | None]:
    """The outcomes loop: survivors, a code per candidate (0 kept, r dropped for ``reasons[r - 1]``), and
    the value each ``(keep, reason, value)`` compared (None when no candidate's result gave one).

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
    values: list[Any] = []
    value = values.append
    for item in items:
        result = filter_fn(item)
        if isinstance(result, (tuple, list)):
            keep, reason = result[0], result[1]
            value(result[2] if len(result) > 2 else None)
        else:
            keep, reason = result, None
            value(None)
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
    return survivors, reasons, codes, others, None if values.count(None) == len(values) else values


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
        warn_once("reasons", "xray-otel: a step dropped candidates for more than %d distinct reasons; their "
                   "outcomes name the rest %r (the histogram keeps every reason)", MAX_REASONS, OTHER_REASONS)
    others[text] = others.get(text, 0) + 1  # given no code of its own: every such candidate passes here
    return MAX_REASONS + 1


def _code_counts(codes: bytearray | array, n_reasons: int) -> list[int]:
    """Candidates per code."""
    if type(codes) is bytearray and n_reasons <= 16:
        return [codes.count(r) for r in range(n_reasons + 1)]
    counted = Counter(codes)
    return [counted.get(r, 0) for r in range(n_reasons + 1)]


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
        warn_once("long ids", "xray-otel: candidate ids longer than %d characters are cut to that length",
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
              label_fn: Callable[[Any], Any] | None, score: Any = None, rank: int | None = None, *,
              value: Any = None, sampled_as: str | None = None) -> dict[str, Any]:
    decision: dict[str, Any] = {
        c.DECISION_ID: candidate_id,
        c.DECISION_ACCEPTED: accepted,
        c.DECISION_REASON: None if accepted else reason,  # (keep, "too_expensive") names the rejection
        c.DECISION_SCORE: score,
        c.DECISION_RANK: rank,
    }
    if label_fn is not None:
        decision[DECISION_LABEL] = _label(item, label_fn)
    if value is not None:
        decision[c.DECISION_VALUE] = value
    if sampled_as is not None:
        decision[c.DECISION_SAMPLED_AS] = sampled_as
    return decision


def _label(item: Any, label_fn: Callable[[Any], Any]) -> str | None:
    try:
        value = label_fn(item)
    except Exception:
        log.debug("xray-otel: label_fn failed", exc_info=True)
        return None
    return None if value is None else str(value)[:MAX_LABEL_CHARS]

