"""A pipeline's step figures per time bucket (GET /pipelines/{name}/series, the change tests of
xray_otel/health): the SQL and the reads, on the per-day summaries of pipeline_days.py.

Day buckets take the stored summaries of whole UTC days that are up to date (the same check,
in the same snapshot, as /pipelines/{name}) and summarise part-days and out-of-date days from the
step rows; hour buckets are summarised from the step rows. Either way a bucket's figures are those
of the runs that started in it, never a stale copy.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timezone
from typing import Any

import asyncpg

from .pipeline_days import (RUN_DAY, STALE_PIPELINE_DAYS, SUMMARY_COLUMNS, summarise_sql, utc_day,
                            whole_days)

log = logging.getLogger(__name__)

# The UTC hour a run started in (timestamp without time zone, read back as UTC).
RUN_HOUR = "date_trunc('hour', r.started_at AT TIME ZONE 'UTC')"
_STEPS = "($7::text[] IS NULL OR s.name = ANY($7::text[]))"

# Per UTC day and step of pipeline $1 over runs started in [$2, $3), steps $7 (NULL: all): the
# stored summaries of the whole days [$4, $5) but days $6, and the rest summarised from the rows.
SERIES_BY_DAY = f"""
WITH {summarise_sql(f"(NOT (r.started_at >= $4 AND r.started_at < $5) OR {RUN_DAY} = ANY($6::date[]))",
                    RUN_DAY, _STEPS)}
SELECT {SUMMARY_COLUMNS} FROM pipeline_step_days
WHERE name = $1 AND day >= {utc_day('$4')} AND day < {utc_day('$5')} AND day <> ALL($6::date[])
  AND ($7::text[] IS NULL OR step = ANY($7::text[]))
UNION ALL
SELECT {SUMMARY_COLUMNS} FROM summary
"""
# The same from the step rows alone, per UTC day or hour; $4 the steps (NULL: all).
_ROW_STEPS = "($4::text[] IS NULL OR s.name = ANY($4::text[]))"
SERIES_ROWS_BY_DAY = f"WITH {summarise_sql('TRUE', RUN_DAY, _ROW_STEPS)} SELECT {SUMMARY_COLUMNS} FROM summary"
SERIES_ROWS_BY_HOUR = f"WITH {summarise_sql('TRUE', RUN_HOUR, _ROW_STEPS)} SELECT {SUMMARY_COLUMNS} FROM summary"

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


async def series(conn: asyncpg.Connection, name: str, since: datetime, until: datetime, hourly: bool,
                 steps: list[str] | None) -> tuple[list[Any], list[Any], list[date]]:
    """Pipeline ``name``'s summary rows per UTC day (or hour) and step over runs started in [since,
    until), its runs per bucket, and the whole days whose stored summary needs storing again. Call
    inside a REPEATABLE READ transaction: every statement reads one snapshot."""
    runs = await conn.fetch(RUNS_BY_HOUR if hourly else RUNS_BY_DAY, name, since, until)
    if hourly:
        return await conn.fetch(SERIES_ROWS_BY_HOUR, name, since, until, steps), runs, []
    first, last = whole_days(since, min(until, datetime.now(timezone.utc)))  # today is never whole
    try:
        async with conn.transaction():  # a savepoint: a role that cannot read the summaries...
            stale = [row["day"] for row in await conn.fetch(STALE_PIPELINE_DAYS, name, first, last)]
            rows = await conn.fetch(SERIES_BY_DAY, name, since, until, first, last, stale, steps)
    except asyncpg.InsufficientPrivilegeError as exc:  # ...is answered from the step rows alone
        log.warning("pipeline day summaries not readable; reading step rows",
                    extra={"pipeline": name[:64], "error": str(exc)[:200]})
        return await conn.fetch(SERIES_ROWS_BY_DAY, name, since, until, steps), runs, []
    return rows, runs, stale
