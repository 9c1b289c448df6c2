"""GET /pipelines/{name}/series: each step's figures per UTC hour or day, for charts of a pipeline over time."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from ..store.pipeline_series import bucket_key
from ..store.pipeline_stats import Sums, drop_value, duration_value, percentile
from ..store.reads import Series
from ..web import PROJECT, json_ok
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
                                                 steps=p["step"] or None)
    if found is None:
        raise QueryError(404, f"no run named {name[:64]!r}")
    body = await asyncio.to_thread(series_body, found[0], since, until, p["bucket"], starts)  # histograms: off the loop
    return json_ok({"pipeline": name, "since": since, "until": until, "bucket": p["bucket"],
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
    runs = {bucket_key(row["day"]): row for row in found.runs}
    steps: dict[str, dict[datetime, Sums]] = {}
    for row in found.rows:
        steps.setdefault(row["step"], {}).setdefault(bucket_key(row["day"]), Sums()).add(row)
    buckets = [{"start": start, "end": start + size, "partial": start < since or start + size > until,
                "run_count": runs[start]["runs"] if start in runs else 0,
                "failed_count": runs[start]["failed"] if start in runs else 0} for start in starts]
    totals = {name: _total(points.values()) for name, points in steps.items()}
    order = sorted(steps, key=lambda name: (totals[name].offset_s, name))
    return {"buckets": buckets, "steps": [
        {"name": name, "type": totals[name].type, "points": [_point(start, steps[name].get(start)) for start in starts]}
        for name in order]}


def _total(parts: Any) -> Sums:
    total = Sums()
    for part in parts:
        total.offset_n += part.offset_n
        total.offset_sum += part.offset_sum
        for kind, n in part.types.items():
            total.types[kind] += n
    return total


def _point(start: datetime, sums: Sums | None) -> dict[str, Any]:
    """One step's figures in one bucket; a bucket where it did not run has count 0 and no figures."""
    if sums is None:
        return {"start": start, "count": 0, "failed_count": 0, "input_count": 0, "output_count": 0,
                "drop_rate": {"mean": None, "p95": None}, "rejections": {}, "cost": {"total": 0.0, "mean": None},
                "duration_ms": {"p50": None, "p95": None}}
    drops, durations = sums.drops(), sums.durations()
    return {
        "start": start,
        "count": sums.count,
        "failed_count": sums.failed,
        "input_count": _number(sums.input_sum),
        "output_count": _number(sums.output_sum),
        "drop_rate": {"mean": _round(sums.drop_sum / sums.drop_n if sums.drop_n else None),
                      "p95": _round(percentile(*drops, 0.95, drop_value))},
        "rejections": {reason: _number(values[0]) for reason, values in
                       sorted(sums.reasons.items(), key=lambda item: (-item[1][0], item[0]))},
        "cost": {"total": _round(sums.cost_sum, 9), "mean": _round(sums.cost_sum / sums.count, 9) if sums.count else None},
        "duration_ms": {"p50": _round(percentile(*durations, 0.5, duration_value), 3),
                        "p95": _round(percentile(*durations, 0.95, duration_value), 3)},
    }


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)
