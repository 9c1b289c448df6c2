"""What changed in a pipeline's steps: the window's figures against the baseline's right before it,
tested by drift.py, as the API's entries (GET /changes, /pipelines/{name}/changes, the alert rules).

The figures come from the per-day summaries (store/pipeline_series.py: whole days stored, the rest
from the step rows, never stale), so a week of baseline costs a few hundred summary rows.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from ..store.pipeline_stats import Sums, duration_value, log_duration_moments, percentile
from ..store.reads import Reads, Series
from . import drift

MAX_PIPELINES = 200  # /changes across pipelines: the most active ones in the window


class UnknownPipeline(LookupError):
    """No run was ever named so."""


async def find_changes(reads: Reads, pipeline: str | None, window: timedelta, baseline: timedelta,
                       until: datetime, limit: int = 100,
                       settings: drift.Settings = drift.Settings()) -> list[dict[str, Any]]:
    """The changes of ``pipeline`` (every pipeline with runs in the window when None) between
    [until - window, until) and the ``baseline`` right before it, most significant first, at most
    ``limit``. Each entry is JSON-ready: pipeline, step, what, reason, baseline, window, delta,
    statistic, p_value, p_adjusted, significant, insufficient_data, runs {baseline, window},
    examples {baseline, window} (run ids) and compare (a /compare link, or None). The p-values
    are corrected per pipeline (drift.compare). UnknownPipeline when ``pipeline`` never ran."""
    start = until - window
    names = [pipeline] if pipeline is not None else await reads.active_pipelines(start, until, MAX_PIPELINES)
    found: list[tuple[str, drift.Finding, int, int]] = []
    for name in names:
        series = await reads.pipeline_series(name, [(start - baseline, start), (start, until)], hourly=False)
        if series is None:
            raise UnknownPipeline(name)
        sides = await asyncio.to_thread(lambda: [side(s) for s in series])  # histograms: off the event loop
        found += [(name, f, sides[0].runs, sides[1].runs) for f in drift.compare(sides[0], sides[1], settings)]
    found.sort(key=lambda item: drift.rank(item[1]))
    found = found[:limit]
    examples = await _examples(reads, found, (start - baseline, start), (start, until))
    return [_entry(name, f, runs_b, runs_w, examples) for name, f, runs_b, runs_w in found]


def side(series: Series) -> drift.Side:
    """One window's summary rows as drift's figures, per step."""
    sums: dict[str, Sums] = {}
    for row in series.rows:
        sums.setdefault(row["step"], Sums()).add(row)
    return drift.Side(sum(row["runs"] for row in series.runs), {name: step_stats(s) for name, s in sums.items()})


def step_stats(s: Sums) -> drift.StepStats:
    keys, cumulative = s.durations()
    n, mean, squares = log_duration_moments(keys, cumulative)
    return drift.StepStats(
        rows=s.count,
        drop=drift.Moments(s.drop_n, s.drop_sum, s.drop_sq),
        cost=drift.Moments(s.count, s.cost_sum, s.cost_sq),
        log_duration=drift.Moments(n, mean * n, squares) if n else None,
        duration_p50=percentile(keys, cumulative, 0.5, duration_value),
        rejecting_rows=s.rejecting_rows,
        reasons={reason: drift.Reason(v[0], int(v[1]), v[2], v[3]) for reason, v in s.reasons.items()},
    )


# Which run is an example of a change on each side: (step, reason it must name) or None for no example.
def _wanted(f: drift.Finding) -> tuple[tuple[str, str | None] | None, tuple[str, str | None] | None]:
    step = f.step
    if f.what == "step_new":
        return None, (step, None)
    if f.what == "step_gone":
        return (step, None), None
    if f.what == "reason_new":
        return (step, None), (step, f.reason)
    if f.what == "reason_gone":
        return (step, f.reason), (step, None)
    return (step, f.reason), (step, f.reason)


async def _examples(reads: Reads, found: list[tuple[str, drift.Finding, int, int]],
                    before: tuple[datetime, datetime], during: tuple[datetime, datetime]) -> dict[tuple, Any]:
    """(pipeline, side, step, reason) -> the newest run of that side showing it."""
    wanted: dict[tuple[str, int], set[tuple[str, str | None]]] = {}
    for name, f, _, _ in found:
        for i, key in enumerate(_wanted(f)):
            if key is not None:
                wanted.setdefault((name, i), set()).add(key)
    examples: dict[tuple, Any] = {}
    for (name, i), keys in wanted.items():
        since, until = (before, during)[i]
        for key, run_id in (await reads.example_runs(name, since, until, sorted(keys, key=str))).items():
            examples[(name, i, *key)] = run_id
    return examples


def _entry(name: str, f: drift.Finding, runs_b: int, runs_w: int, examples: dict[tuple, Any]) -> dict[str, Any]:
    ids = []
    for i, key in enumerate(_wanted(f)):
        run_id = examples.get((name, i, *key)) if key is not None else None
        ids.append([str(run_id)] if run_id is not None else [])
    return {
        "pipeline": name,
        "step": f.step,
        "what": f.what,
        "reason": f.reason,
        "baseline": _number(f.baseline),
        "window": _number(f.window),
        "delta": _number(f.delta),
        "statistic": _number(f.statistic, 3),
        "p_value": _p(f.p_value),
        "p_adjusted": _p(f.p_adjusted),
        "significant": f.significant,
        "insufficient_data": f.insufficient_data,
        "runs": {"baseline": runs_b, "window": runs_w},
        "examples": {"baseline": ids[0], "window": ids[1]},
        "compare": "/compare?" + urlencode({"base": ids[0][0], "other": ids[1][0]}) if ids[0] and ids[1] else None,
    }


def _number(value: float | None, digits: int = 6) -> float | None:
    return round(value, digits) if value is not None and math.isfinite(value) else None


def _p(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.3g}")
