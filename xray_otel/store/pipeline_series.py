"""A pipeline's step figures per time bucket (GET /pipelines/{name}/series, the change tests of
xray_otel/health): the SQL and the reads, on the per-day and per-hour summaries (pipeline_days.py,
pipeline_hours.py).

A window is read from the stored summaries of the whole UTC days that are up to date (by day: the
same check, in the same snapshot, as /pipelines/{name}), then of the whole UTC hours that are up to
date in what those days leave (the part-days at either end, changed days; every hour by hour), and
only the part-hours at the ends and the changed or missing hours are summarised from the step rows.
Either way a bucket's figures are those of the runs that started in it, never a stale copy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import asyncpg

from . import pipeline_hours
from .pipeline_days import (RUN_DAY, STALE_PIPELINE_DAYS, SUMMARY_COLUMNS, summarise_sql, utc_day,
                            whole_days)
from .pipeline_hours import HOUR, STALE_PIPELINE_HOURS, aware, ceil_hour, floor_hour

log = logging.getLogger(__name__)

RUN_HOUR = pipeline_hours.RUN_HOUR
_STEPS = "($8::text[] IS NULL OR s.name = ANY($8::text[]))"
_HOUR_STEPS = "($8::text[] IS NULL OR h.step = ANY($8::text[]))"


# The summary columns as series read them: numerics as double precision, the value Sums.add makes of
# them anyway (both round correctly), which spares asyncpg a Decimal per figure and per reason.
_FLOATS = {"cost_sum": "cost_sum::float8 AS cost_sum", "input_sum": "input_sum::float8 AS input_sum",
           "output_sum": "output_sum::float8 AS output_sum", "reason_counts": "reason_counts::float8[] AS reason_counts"}
READ_COLUMNS = ", ".join(_FLOATS.get(c.strip(), c.strip()) for c in SUMMARY_COLUMNS.split(","))
# What a chart's point shows (queries/series.py): the summary columns but the sums of squares and
# per-reason spreads the change tests need. A month by hour is 7,000 rows; three arrays fewer per row
# is a third less to decode.
_POINT_ONLY = {"drop_sq_sum", "cost_sq_sum", "rejecting_rows", "reason_runs", "reason_share_sum", "reason_share_sq"}
POINT_COLUMNS = ", ".join(_FLOATS.get(c.strip(), c.strip()) for c in SUMMARY_COLUMNS.split(",")
                          if c.strip() not in _POINT_ONLY)


def _series_sql(run_bucket: str, hour_bucket: str, columns: str = READ_COLUMNS) -> str:
    """Per bucket and step of pipeline $1, steps $8 (NULL: all): the stored summaries of the whole
    days [$2, $3) but days $4, the stored hours in the intervals $5/$6 but hours $7, and the runs
    started in the intervals $9/$10 summarised from their step rows."""
    return f"""
WITH {summarise_sql("TRUE", run_bucket, _STEPS, segments=("$9", "$10"))}
SELECT {columns} FROM pipeline_step_days
WHERE name = $1 AND day >= {utc_day('$2')} AND day < {utc_day('$3')} AND day <> ALL($4::date[])
  AND ($8::text[] IS NULL OR step = ANY($8::text[]))
UNION ALL
{pipeline_hours.stored_hours_sql(hour_bucket, "$5", "$6", "$7", _HOUR_STEPS, columns.split(",", 1)[1])}
UNION ALL
SELECT {columns} FROM summary
"""


# The same from the step rows alone, per UTC day or hour; $4 the steps (NULL: all).
_ROW_STEPS = "($4::text[] IS NULL OR s.name = ANY($4::text[]))"


def _rows_sql(run_bucket: str, columns: str) -> str:
    return f"WITH {summarise_sql('TRUE', run_bucket, _ROW_STEPS)} SELECT {columns} FROM summary"


# (stored and rows, rows alone) per (hourly, points only)
_STATEMENTS = {(hourly, points): (_series_sql(RUN_HOUR if hourly else RUN_DAY, "h.hour" if hourly else "h.hour::date",
                                              POINT_COLUMNS if points else READ_COLUMNS),
                                  _rows_sql(RUN_HOUR if hourly else RUN_DAY, POINT_COLUMNS if points else READ_COLUMNS))
               for hourly in (False, True) for points in (False, True)}

# Runs and failed runs of pipeline $1 per UTC day / hour over [$2, $3): from runs_name_started_idx.
_RUNS_PER = """SELECT {bucket} AS day, count(*) AS runs, count(*) FILTER (WHERE r.status = 'FAILED') AS failed
FROM runs r WHERE r.name = $1 AND r.started_at >= $2 AND r.started_at < $3 GROUP BY 1"""
RUNS_BY_DAY = _RUNS_PER.format(bucket=RUN_DAY)
RUNS_BY_HOUR = _RUNS_PER.format(bucket=RUN_HOUR)

# Run names with runs started in [$1, $2), most runs first, at most $3.
ACTIVE_PIPELINES = """SELECT r.name FROM runs r
WHERE r.started_at >= $1 AND r.started_at < $2 AND r.name IS NOT NULL
GROUP BY r.name ORDER BY count(*) DESC, r.name LIMIT $3"""

# Per (step, reason) asked ($4, $5 aligned; reason '' for any), the newest run of pipeline $1 started
# in [$2, $3) that has that step (naming that reason): the example runs of a change.
EXAMPLE_RUNS = """
SELECT u.step, u.reason, (
    SELECT r.id FROM runs r JOIN steps s ON s.run_id = r.id AND NOT s.run_span AND s.name = u.step
    WHERE r.name = $1 AND r.started_at >= $2 AND r.started_at < $3
      AND (u.reason = '' OR (jsonb_typeof(s.rejections) = 'object' AND s.rejections ? u.reason))
    ORDER BY r.started_at DESC LIMIT 1) AS run_id
FROM unnest($4::text[], $5::text[]) AS u(step, reason)
"""


def bucket_key(value: date | datetime) -> datetime:
    """A row's day (date) or hour (naive UTC timestamp) as the aware UTC time its bucket starts."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc)
    return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)


Interval = tuple[datetime, datetime]


@dataclass
class Plan:
    """Where each part of a window is read from: stored whole days [first, last) but ``stale_days``,
    stored hours in ``hours`` but ``stale_hours``, and the step rows of runs started in ``rows``."""
    first: datetime
    last: datetime
    stale_days: list[date] = field(default_factory=list)
    hours: list[Interval] = field(default_factory=list)
    stale_hours: list[datetime] = field(default_factory=list)  # naive UTC, as stored
    rows: list[Interval] = field(default_factory=list)


def split(since: datetime, until: datetime, now: datetime, plan: Plan) -> None:
    """Fill ``plan.hours`` and ``plan.rows``: what no fresh stored day covers in [since, until) goes to
    its whole hours (the hour going on at ``now`` never is one) and the part-hours at their ends to
    the rows."""
    gaps = [(since, plan.first), (plan.last, until)]
    gaps += [(d, d + timedelta(days=1)) for d in map(bucket_key, plan.stale_days)]
    for lo, hi in sorted(gaps):
        if lo >= hi:
            continue
        a, b = ceil_hour(lo), floor_hour(min(hi, now))
        if a < b:
            plan.hours.append((a, b))
            plan.rows += [(lo, a), (b, hi)]
        else:
            plan.rows.append((lo, hi))


def merged(intervals: list[Interval]) -> list[Interval]:
    """The non-empty intervals, sorted, those that touch joined: fewer index scans."""
    out: list[Interval] = []
    for lo, hi in sorted(i for i in intervals if i[0] < i[1]):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _columns(intervals: list[Interval]) -> tuple[list[datetime], list[datetime]]:
    return [lo for lo, _ in intervals], [hi for _, hi in intervals]


async def plan(conn: asyncpg.Connection, name: str, since: datetime, until: datetime, hourly: bool) -> Plan:
    """Which stored days and hours of pipeline ``name`` still match their runs, in this snapshot, and
    so where each part of [since, until) is read from."""
    now = datetime.now(timezone.utc)
    found = Plan(since, since)
    if not hourly:
        found.first, found.last = whole_days(since, min(until, now))  # today is never whole
        found.stale_days = [row["day"] for row in await conn.fetch(STALE_PIPELINE_DAYS, name, found.first, found.last)]
    split(since, until, now, found)
    if found.hours:
        found.stale_hours = [row["hour"] for row in await conn.fetch(STALE_PIPELINE_HOURS, name,
                                                                      *_columns(found.hours))]
    found.rows = merged(found.rows + [(aware(h), aware(h) + HOUR) for h in found.stale_hours])
    return found


async def series(conn: asyncpg.Connection, name: str, since: datetime, until: datetime, hourly: bool,
                 steps: list[str] | None, *, points: bool = False) -> tuple[list[Any], list[Any], Plan | None]:
    """Pipeline ``name``'s summary rows per UTC day (or hour) and step over runs started in [since,
    until) (a bucket may come in several rows: pipeline_stats.Sums adds them up), its runs per
    bucket, and the plan it read by (its stale days and hours need storing again; None when read from
    the step rows alone). ``points``: only POINT_COLUMNS. Call inside a REPEATABLE READ transaction:
    every statement reads one snapshot."""
    stored_and_rows, rows_alone = _STATEMENTS[hourly, points]
    runs = await conn.fetch(RUNS_BY_HOUR if hourly else RUNS_BY_DAY, name, since, until)
    try:
        async with conn.transaction():  # a savepoint: a role that cannot read the summaries...
            p = await plan(conn, name, since, until, hourly)
            rows = await conn.fetch(stored_and_rows, name, p.first, p.last, p.stale_days, *_columns(p.hours),
                                    p.stale_hours, steps, *_columns(p.rows))
    except asyncpg.InsufficientPrivilegeError as exc:  # ...is answered from the step rows alone
        log.warning("pipeline summaries not readable; reading step rows",
                    extra={"pipeline": name[:64], "error": str(exc)[:200]})
        return await conn.fetch(rows_alone, name, since, until, steps), runs, None
    return rows, runs, p
