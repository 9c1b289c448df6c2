"""The per-hour step summaries of pipelines (migrations/0013_pipeline_hours.sql), a cache of figures the
step rows hold, kept by the rule of the per-day one (pipeline_days.py): its SQL, and storing, locking
and forgetting it.

What a read cannot take from a stored day (/series by hour, the part-days at either end of a window,
a day whose runs changed) it takes per whole UTC hour from here while the hour's runs still have the
signature they were summarised from, checked in the read's own snapshot; only the part-hours at the
ends and the changed or missing hours are summarised from the step rows. The changed hours are handed
to a background refresher (refresher.py), never stored by ingest. The hour still going on is never
whole. Retention forgets the hours whose runs it deleted.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import asyncpg

from .pipeline_days import RUN_SIGNATURE, SUMMARY_COLUMNS, stale_sql, summarise_sql

HOUR = timedelta(hours=1)
# Hours are stored a day per transaction: short transactions, and work done is kept if a later one fails.
HOURS_PER_TRANSACTION = 24

# A run's UTC hour as the summaries key it (timestamp without time zone, read back as UTC).
RUN_HOUR = "date_trunc('hour', r.started_at AT TIME ZONE 'UTC')"


def utc_hour(param: str) -> str:
    """SQL: a timestamptz as the UTC timestamp without time zone the summaries key hours by."""
    return f"({param} AT TIME ZONE 'UTC')"


# Whole UTC hours in the intervals [$2[i], $3[i]) (hour-aligned) of pipeline $1 whose stored summary
# is missing, out of date, or of an hour that no longer has runs. Signatures from runs_name_started_idx.
STALE_PIPELINE_HOURS = stale_sql(
    "hour", RUN_HOUR,
    "FROM unnest($2::timestamptz[], $3::timestamptz[]) AS seg(lo, hi)"
    " JOIN runs r ON r.name = $1 AND r.started_at >= seg.lo AND r.started_at < seg.hi",
    "SELECT h.hour, h.runs, h.signature FROM unnest($2::timestamptz[], $3::timestamptz[]) AS seg(lo, hi)"
    f" JOIN pipeline_hours h ON h.name = $1 AND h.hour >= {utc_hour('seg.lo')} AND h.hour < {utc_hour('seg.hi')}")

# Everything of a summary row but its bucket ("day"): the hour table keys the bucket as "hour".
FIGURE_COLUMNS = SUMMARY_COLUMNS.split(",", 1)[1]


def stored_hours_sql(bucket: str, los: str, his: str, stale: str, steps: str, columns: str = FIGURE_COLUMNS) -> str:
    """SQL: pipeline $1's stored hour summaries in the intervals ``los``/``his`` (timestamptz[]
    parameters) but the hours ``stale`` (timestamp[]), of the steps passing ``steps`` (on ``h.step``),
    as summary rows whose ``day`` is ``bucket`` (an expression of ``h.hour``), then ``columns``."""
    return f"""SELECT {bucket} AS day, {columns}
FROM unnest({los}::timestamptz[], {his}::timestamptz[]) AS seg(lo, hi)
JOIN pipeline_step_hours h ON h.name = $1 AND h.hour >= {utc_hour('seg.lo')} AND h.hour < {utc_hour('seg.hi')}
WHERE h.hour <> ALL({stale}::timestamp[]) AND {steps}"""


# Store the summaries of hours $4 of pipeline $1 (runs started in [$2, $3)) with the signature of the
# runs they come from, in one statement (one snapshot). The caller holds TRY_LOCK_PIPELINE_HOURS and
# has run FORGET_PIPELINE_HOURS for the same hours.
STORE_PIPELINE_HOURS = f"""
WITH signed AS (
    INSERT INTO pipeline_hours (name, hour, runs, signature)
    SELECT $1, {RUN_HOUR}, count(*), sum({RUN_SIGNATURE})
    FROM runs r
    WHERE r.name = $1 AND r.started_at >= $2 AND r.started_at < $3 AND {RUN_HOUR} = ANY($4::timestamp[])
    GROUP BY 2
), {summarise_sql(f"{RUN_HOUR} = ANY($4::timestamp[])", RUN_HOUR)}
INSERT INTO pipeline_step_hours (name, hour, {FIGURE_COLUMNS})
SELECT $1, {SUMMARY_COLUMNS} FROM summary
"""
# Locked in key order, as retention locks them (FORGET_HOURS_BEFORE): the two never wait in a cycle.
LOCK_PIPELINE_HOURS = ("SELECT hour FROM pipeline_hours WHERE name = $1 AND hour = ANY($2::timestamp[])"
                       " ORDER BY hour FOR UPDATE")
FORGET_PIPELINE_HOURS = """
WITH steps AS (DELETE FROM pipeline_step_hours WHERE name = $1 AND hour = ANY($2::timestamp[]))
DELETE FROM pipeline_hours WHERE name = $1 AND hour = ANY($2::timestamp[])
"""
# One refresher per pipeline at a time, across processes; a second one leaves it to the first.
TRY_LOCK_PIPELINE_HOURS = "SELECT pg_try_advisory_xact_lock(hashtextextended('xray.pipeline_hours:' || $1, 0))"

# Hour summaries of UTC hours wholly before the cutoff $1, for retention once their runs are gone; the
# cutoff's own hour is found out of date by its next read. Rows a refresh holds are left to the next sweep.
FORGET_HOURS_BEFORE = f"""
WITH doomed AS (
    SELECT name, hour FROM pipeline_hours WHERE hour < date_trunc('hour', {utc_hour('$1')})
    ORDER BY name, hour FOR UPDATE SKIP LOCKED
), steps AS (
    DELETE FROM pipeline_step_hours s USING doomed d WHERE s.name = d.name AND s.hour = d.hour
)
DELETE FROM pipeline_hours p USING doomed d WHERE p.name = d.name AND p.hour = d.hour
"""


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floor = floor_hour(moment)
    return floor if floor == moment else floor + HOUR


def aware(hour: datetime) -> datetime:
    """A stored hour (naive UTC) as an aware time."""
    return hour.replace(tzinfo=timezone.utc)


async def store_hours(conn: asyncpg.Connection, name: str, hours: list[datetime]) -> int:
    """Summarise those of ``hours`` (naive UTC, as stored) still out of date, in one transaction
    under the pipeline's hour lock; returns how many it stored."""
    start, end = aware(hours[0]), aware(hours[-1]) + HOUR
    async with conn.transaction():
        if not await conn.fetchval(TRY_LOCK_PIPELINE_HOURS, name):
            return 0
        wanted = set(hours)
        hours = [row["hour"] for row in await conn.fetch(STALE_PIPELINE_HOURS, name, [start], [end])
                 if row["hour"] in wanted]
        if hours:
            await conn.execute(LOCK_PIPELINE_HOURS, name, hours)
            await conn.execute(FORGET_PIPELINE_HOURS, name, hours)
            await conn.execute(STORE_PIPELINE_HOURS, name, start, end, hours)
    return len(hours)


async def forget_hours_before(conn: asyncpg.Connection | asyncpg.Pool, cutoff: datetime) -> None:
    """Drop the summaries of the UTC hours wholly before ``cutoff``: retention deleted their runs."""
    await conn.execute(FORGET_HOURS_BEFORE, cutoff)
