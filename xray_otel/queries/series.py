"""GET /pipelines/{name}/series: each step's figures per UTC hour or day, for charts of a pipeline over time."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from ..store.pipeline_stats import Sums, drop_value, duration_value, histogram, percentile
from ..store.reads import Series
from ..web import PROJECT, json_large_ok
from .common import QueryError, reads
from .params import Param, convert, parse
from .pipelines import NAME

MAX_BUCKETS = 1000  # 41 days by hour; the charts show a few hundred points at most
_SIZES = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
_DEFAULT_SPAN = {"hour": timedelta(hours=24), "day": timedelta(days=30)}

PARAMS = (
    Param("since", "datetime", "window start (ISO-8601 or relative like `30d`; default 24 hours before `until` "
          "by hour, 30 days by day)"),
    Param("until", "datetime", "window end, exclusive (ISO-8601 or relative; default now)"),
    Param("bucket", "string", "bucket size, aligned in UTC (default day)", enum=("hour", "day"), default="day"),
    Param("step", "string", "only this step name; repeat for several", repeat=True),
)


async def get_series(request: web.Request) -> web.Response:
    if request.get(PROJECT) is not None:  # as /pipelines/{name}: its figures span every service that ran it
        raise QueryError(403, "a project-bound API key reads pipelines through /pipelines?service=<project>")
    name = convert(NAME, request.match_info["name"])
    p = parse(request.query, PARAMS)
    until = p["until"] or datetime.now(timezone.utc)
    since = p["since"] or until - _DEFAULT_SPAN[p["bucket"]]
    starts = bucket_starts(since, until, _SIZES[p["bucket"]])
    found = await reads(request).pipeline_series(name, [(since, until)], hourly=p["bucket"] == "hour",
                                                 steps=p["step"] or None, points=True)
    if found is None:
        raise QueryError(404, f"no run named {name[:64]!r}")
    body = await asyncio.to_thread(series_body, found[0], since, until, p["bucket"], starts)  # histograms: off the loop
    return json_large_ok({"pipeline": name, "since": since, "until": until, "bucket": p["bucket"],
                          "step": p["step"] or None, **body})


def bucket_starts(since: datetime, until: datetime, size: timedelta) -> list[datetime]:
    """The UTC-aligned starts of the buckets covering [since, until); 400 when there are too many."""
    if since >= until:
        raise QueryError(400, "since must be before until")
    first = _floor(since, size)
    count = -(-(until - first) // size)
    if count > MAX_BUCKETS:
        raise QueryError(400, f"since..until holds {count} buckets of a {'day' if size.days else 'hour'}; "
                              f"at most {MAX_BUCKETS}: narrow the window or use bucket=day")
    return [first + i * size for i in range(count)]


def _floor(moment: datetime, size: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    return epoch + ((moment - epoch) // size) * size


def series_body(found: Series, since: datetime, until: datetime, bucket: str,
                starts: list[datetime]) -> dict[str, Any]:
    """Pure: buckets (every one, run_count 0 where no run started) and per step its points, one per bucket."""
    size = _SIZES[bucket]
    # Rows key their bucket as stored: a naive UTC hour, or a date. Looked up so, not converted per row.
    keys = [start.replace(tzinfo=None) if bucket == "hour" else start.date() for start in starts]
    runs = {row["day"]: row for row in found.runs}
    steps: dict[str, dict[Any, list[Any]]] = {}
    for row in found.rows:
        points = steps.get(row["step"])
        if points is None:
            points = steps[row["step"]] = {}
        same = points.get(row["day"])
        if same is None:
            points[row["day"]] = [row]
        else:
            same.append(row)
    buckets = [{"start": start, "end": start + size, "partial": start < since or start + size > until,
                "run_count": runs[key]["runs"] if key in runs else 0,
                "failed_count": runs[key]["failed"] if key in runs else 0} for start, key in zip(starts, keys)]
    totals = {name: _total(points.values()) for name, points in steps.items()}
    order = sorted(steps, key=lambda name: (totals[name].offset_s, name))
    return {"buckets": buckets, "steps": [
        {"name": name, "type": totals[name].type,
         "points": [_point(start, steps[name].get(key)) for start, key in zip(starts, keys)]}
        for name in order]}


def _total(parts: Any) -> Sums:
    """What orders the steps and names their type: offsets and types added up over every bucket."""
    total = Sums()
    for rows in parts:
        for row in rows:
            total.offset_n += row["offset_n"]
            total.offset_sum += row["offset_sum"] or 0.0
            for kind, n in zip(row["types"], row["type_counts"]):
                total.types[kind] += n
    return total


_EMPTY = {"count": 0, "failed_count": 0, "input_count": 0, "output_count": 0, "drop_rate": {"mean": None, "p95": None},
          "rejections": {}, "cost": {"total": 0.0, "mean": None}, "duration_ms": {"p50": None, "p95": None}}


def _point(start: datetime, rows: list[Any] | None) -> dict[str, Any]:
    """One step's figures in one bucket; a bucket where it did not run has count 0 and no figures."""
    if rows is None:
        return {"start": start, **_EMPTY}
    row = rows[0] if len(rows) == 1 else _merged(rows)  # one row, as a rule: every hour, and whole days by day
    count, cost, drop_n = row["count"], row["cost_sum"], row["drop_n"]
    inputs, outputs, p50, p95 = row["input_sum"], row["output_sum"], row["duration_p50"], row["duration_p95"]
    drop_p95 = row["drop_p95"]
    if drop_p95 is None and row.get("drop_histogram"):  # stored by a process older than migration 0014
        drop_p95 = percentile(*histogram(row["drop_histogram"]), 0.95, drop_value)
    if p50 is None and row.get("duration_histogram"):
        durations = histogram(row["duration_histogram"])
        p50, p95 = percentile(*durations, 0.5, duration_value), percentile(*durations, 0.95, duration_value)
    return {  # reasons come most rejected first (pipeline_days.py day_reasons, _merged)
        "start": start,
        "count": count,
        "failed_count": row["failed"],
        "input_count": 0 if inputs is None else int(inputs) if inputs.is_integer() else inputs,
        "output_count": 0 if outputs is None else int(outputs) if outputs.is_integer() else outputs,
        "drop_rate": {"mean": round(row["drop_sum"] / drop_n, 6) if drop_n else None,
                      "p95": None if drop_p95 is None else round(drop_p95, 6)},
        "rejections": {reason: int(n) if n.is_integer() else n
                       for reason, n in zip(row["reasons"] or (), row["reason_counts"] or ())},
        "cost": {"total": round(cost, 9), "mean": round(cost / count, 9) if count else None},
        "duration_ms": {"p50": None if p50 is None else round(p50, 3), "p95": None if p95 is None else round(p95, 3)},
    }


def _merged(rows: list[Any]) -> dict[str, Any]:
    """Several summary rows of one bucket (stored hours and rows of a part-day) as one: counts and sums
    added, percentiles from the merged histograms (the stored ones are each row's own)."""
    added: dict[str, float] = {}
    for row in rows:
        for reason, n in zip(row["reasons"] or (), row["reason_counts"] or ()):
            added[reason] = added.get(reason, 0.0) + n
    reasons = sorted(added, key=lambda reason: (-added[reason], reason))
    drops = histogram(b"".join(row["drop_histogram"] or b"" for row in rows))
    durations = histogram(b"".join(row["duration_histogram"] or b"" for row in rows))
    merged: dict[str, Any] = {key: sum(row[key] or 0 for row in rows) for key in _ADDED}
    return merged | {"input_sum": float(merged["input_sum"]), "output_sum": float(merged["output_sum"]),
                     "reasons": reasons, "reason_counts": [float(added[reason]) for reason in reasons],
                     "drop_p95": percentile(*drops, 0.95, drop_value),
                     "duration_p50": percentile(*durations, 0.5, duration_value),
                     "duration_p95": percentile(*durations, 0.95, duration_value)}


_ADDED = ("count", "failed", "cost_sum", "drop_n", "drop_sum", "input_sum", "output_sum")
