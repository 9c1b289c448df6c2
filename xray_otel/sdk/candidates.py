"""process_candidates() and rank_candidates(): funnel figures and per-candidate decisions.

Capture modes (what lands in ``xray.step.decisions``):
  summary  counts and the rejection histogram only;
  sampled  (default) every survivor up to MAX_SAMPLED_ACCEPTED, the first
           SAMPLES_PER_REASON rejections of each reason, the best rejected in a ranking;
  full     every decision, up to MAX_DECISIONS.
Counts and the histogram are always exact; ``xray.step.decisions_dropped`` says how many
decisions were left out. The filter loop stays tight: ids are only computed for what is kept.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from .. import conventions as c
from .runs import Step, current_step, step

log = logging.getLogger("xray_otel")

T = TypeVar("T")
CAPTURE_MODES = ("summary", "sampled", "full")
MAX_SAMPLED_ACCEPTED = 100
SAMPLES_PER_REASON = 5
MAX_DECISIONS = 10_000
MAX_ID_CHARS = 200
DEFAULT_REASON = "rejected"
"""The histogram key when ``filter_fn`` returns a bare False (or no reason)."""
BELOW_TOP_K = "below_top_k"


def process_candidates(
    candidates: Iterable[T],
    filter_fn: Callable[[T], Any],
    step_name: str | None = None,
    capture: str = "sampled",
    id_fn: Callable[[T], Any] | None = None,
) -> list[T]:
    """Keep the candidates ``filter_fn`` accepts, recording why the others went.

    ``filter_fn`` returns ``(keep, reason)`` or a bool. With ``step_name`` (or outside any
    step) a ``filter`` step of that name is recorded; otherwise the open step is annotated.
    ``id_fn`` names a candidate in decisions (default: its ``id`` key or attribute, else its
    position). Returns the survivors, in order, exactly as without instrumentation.
    """
    _check_capture(capture)
    items = candidates if isinstance(candidates, Sequence) else list(candidates)
    with _target_step(step_name, "process_candidates", "filter") as s:
        mode = capture if s.recording else "summary"
        if mode == "summary":
            survivors, rejections, picked = *_filter_counting(items, filter_fn), []
        else:
            limits = (MAX_SAMPLED_ACCEPTED, SAMPLES_PER_REASON) if mode == "sampled" else (MAX_DECISIONS,) * 2
            survivors, rejections, picked = _filter_recording(items, filter_fn, *limits, MAX_DECISIONS)
        if s.recording:
            histogram = {_reason(k): v for k, v in rejections.items()}
            s.set_counts(len(items), len(survivors), histogram)
            decisions = [_decision(items[i], i, keep, reason, id_fn) for i, keep, reason in picked]
            s._set_decisions(decisions, mode, len(items) - len(decisions))
    return survivors


def rank_candidates(
    candidates: Iterable[T],
    score_fn: Callable[[T], float],
    top_k: int | None,
    step_name: str | None = None,
    capture: str = "sampled",
    id_fn: Callable[[T], Any] | None = None,
) -> list[T]:
    """The ``top_k`` candidates by descending ``score_fn`` (ties keep input order; None keeps all).

    Records each kept candidate's score and rank, and in ``sampled`` mode the
    SAMPLES_PER_REASON best rejected ones, so "why did this one win" has an answer.
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
            s.set_counts(len(items), k, {BELOW_TOP_K: len(items) - k} if len(items) > k else {})
            picks = [(p, order[p]) for p in _ranked_picks(k, len(items), capture)]
            decisions = [
                _decision(items[i], i, p < k, None if p < k else BELOW_TOP_K, id_fn, scores[i], p + 1) for p, i in picks
            ]
            s._set_decisions(decisions, capture, len(items) - len(decisions))
    return [items[i] for i in order[:k]]


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


def _filter_recording(items: Sequence[T], filter_fn: Callable[[T], Any], max_accepted: int, per_reason: int,
                      max_total: int) -> tuple[list[T], dict[Any, int], list[tuple[int, bool, Any]]]:
    """The sampled/full loop: also picks (index, keep, reason) of the decisions to record."""
    survivors: list[T] = []
    rejections: dict[Any, int] = {}
    picked: list[tuple[int, bool, Any]] = []
    for index, item in enumerate(items):
        result = filter_fn(item)
        keep, reason = (result[0], result[1]) if isinstance(result, (tuple, list)) else (result, None)
        if keep:
            survivors.append(item)
            if len(survivors) <= max_accepted and len(picked) < max_total:
                picked.append((index, True, reason))
        else:
            seen = rejections[reason] = rejections.get(reason, 0) + 1
            if seen <= per_reason and len(picked) < max_total:
                picked.append((index, False, reason))
    return survivors, rejections, picked


def _reason(reason: Any) -> str:
    return DEFAULT_REASON if reason is None or reason == "" else str(reason)


def _decision(item: Any, index: int, accepted: bool, reason: Any, id_fn: Callable[[Any], Any] | None,
              score: float | None = None, rank: int | None = None) -> dict[str, Any]:
    return {
        c.DECISION_ID: _candidate_id(item, index, id_fn),
        c.DECISION_ACCEPTED: accepted,
        c.DECISION_REASON: None if accepted else _reason(reason),  # (keep, "too_expensive") names the rejection
        c.DECISION_SCORE: score,
        c.DECISION_RANK: rank,
    }


def _candidate_id(item: Any, index: int, id_fn: Callable[[Any], Any] | None) -> str:
    try:
        if id_fn is not None:
            value = id_fn(item)
        elif isinstance(item, dict):
            value = item.get("id", index)
        else:
            value = getattr(item, "id", index)
        return str(value)[:MAX_ID_CHARS]
    except Exception:  # a broken id_fn costs the id, not the pipeline
        log.debug("xray-otel: id_fn failed; using the position", exc_info=True)
        return str(index)
