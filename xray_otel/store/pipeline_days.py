"""The per-day step summaries of pipelines (migrations/0007_pipeline_days.sql), a cache of figures the
step rows hold: all of its SQL, and reading, storing, locking and forgetting it.

Read in one snapshot, refreshed in the background. A read splits its window into whole UTC days
and the part-days at either end. In one REPEATABLE READ snapshot it finds the stored days whose
runs changed since they were summarised (a signature of the runs, read from an index), then adds
up the other stored days and what it summarises from the step rows for everything else
(part-days, changed or missing days): the answer is that snapshot's and never waits for a writer.
The changed days are handed to a background refresher, so the next read finds them stored.
Retention forgets the days whose runs it deleted.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import asyncpg

from . import read_sql as sql
from .pipeline_stats import drop_key_sql, drop_value_sql, duration_key_sql, duration_value_sql

log = logging.getLogger(__name__)
_DAY = timedelta(days=1)
# Days are stored a week per transaction: short transactions, and work done is kept if a later
# week fails.
DAYS_PER_TRANSACTION = 7

# --- /pipelines/{name}: step figures from per-day summaries (migrations/0007_pipeline_days.sql) ---
# A run's UTC day, as the summaries key it, and a UTC day from a timestamptz parameter.
RUN_DAY = "(r.started_at AT TIME ZONE 'UTC')::date"


def utc_day(param: str) -> str:
    return f"({param} AT TIME ZONE 'UTC')::date"


# What a day's summary depends on, hashed per run and summed: step rows never change once
# stored but for the run span flag, so a run's rows are fixed by its id, step_count,
# steps_run_span and start (offsets are from it). Read from runs_name_started_idx alone.
# (Start times are hashed as epoch microseconds: PostgreSQL 15 has no timestamptz_hash_extended.)
RUN_SIGNATURE = ("(uuid_hash_extended(r.id, r.step_count) # hashtextextended(coalesce(r.steps_run_span, ''), 0)"
                  " # hashint8extended((extract(epoch FROM r.started_at) * 1000000)::int8, 0))")


def stale_sql(key: str, bucket: str, runs: str, stored: str, *, signature: str = RUN_SIGNATURE, shown: str = "") -> str:
    """SQL for the rule every summary cache (days, hours, the candidate index) keeps: the buckets whose
    stored (runs, signature) differ from the runs' own now, or are missing, or have no runs left.
    ``bucket`` keys a run (an expression of r), ``runs`` is the FROM/WHERE of the runs read (as r),
    ``stored`` selects (bucket, runs, signature) of the cache; each bucket comes back as column ``key``,
    with the columns of ``current`` that ``shown`` adds."""
    return f"""
WITH current AS (
    SELECT {bucket} AS bucket, count(*) AS runs, sum({signature}) AS signature
    {runs}
    GROUP BY 1
), stored (bucket, runs, signature) AS (
    {stored}
)
SELECT coalesce(current.bucket, stored.bucket) AS {key}{shown}
FROM current FULL JOIN stored ON stored.bucket = current.bucket
WHERE (current.runs, current.signature) IS DISTINCT FROM (stored.runs, stored.signature)
ORDER BY 1
"""


# The whole UTC days in [$2, $3) of pipeline $1 whose stored summary is missing, out of date,
# or of a day that no longer has runs.
STALE_PIPELINE_DAYS = stale_sql(
    "day", RUN_DAY, "FROM runs r WHERE r.name = $1 AND r.started_at >= $2 AND r.started_at < $3",
    f"SELECT day, runs, signature FROM pipeline_days WHERE name = $1 AND day >= {utc_day('$2')} AND day < {utc_day('$3')}")

SUMMARY_COLUMNS = """day, step, count, failed, cost_sum, drop_n, drop_sum, offset_n, offset_sum, types,
    type_counts, drop_histogram, duration_histogram, reasons, reason_counts, input_sum, output_sum,
    drop_sq_sum, cost_sq_sum, rejecting_rows, reason_runs, reason_share_sum, reason_share_sq,
    drop_p95, duration_p50, duration_p95"""


def _histogram(column: str, key: str, of: str) -> str:
    """Per day and step, the histogram of ``key`` over rows of s where ``of`` is not null: its
    (key, count) pairs in key order, each an int8 in network order (pipeline_stats.histogram).
    Packed bytes, because arrays cost ~30 ns per element to read back; and histograms of several
    days merge by concatenating them."""
    return f"""SELECT day, step, string_agg(int8send(k) || int8send(n), ''::bytea ORDER BY k) AS {column}
    FROM (SELECT day, step, {key} AS k, count(*) AS n FROM s WHERE {of} IS NOT NULL GROUP BY 1, 2, 3) c
    GROUP BY 1, 2"""


_NO_DAY = "'infinity'::date"  # not NULL: the aggregates are joined USING (day, step)


def summarise_sql(runs: str, day: str, steps: str = "TRUE", *, segments: tuple[str, str] | None = None) -> str:
    """CTEs ending in ``summary``: per ``day`` (the run's UTC day, or _NO_DAY for one row per
    step, or any other bucket of the run's start) and step name, the figures of pipeline $1's
    steps whose run started in [$2, $3) and passes ``runs``, of the steps passing ``steps``. One
    pass over the step rows (materialised), then one aggregate per figure. With ``segments``
    (two timestamptz[] parameters, starts and ends) the runs started in those intervals instead of
    [$2, $3): an index range scan each, so a few part-hours cost their own rows only."""
    # With segments the planner cannot tell how few runs they hold (a few part-hours, as a rule) and
    # would hash-join every step row; a lateral join looks up each run's steps by the primary key
    # (OFFSET 0 keeps the planner from flattening it back into that hash join).
    join = (f"JOIN steps s ON s.run_id = r.id AND {sql.IS_STEP} AND {steps}" if segments is None else
            f"CROSS JOIN LATERAL (SELECT * FROM steps s WHERE s.run_id = r.id AND {sql.IS_STEP} AND {steps}"
            " OFFSET 0) s")
    where = (f"FROM runs r WHERE r.name = $1 AND r.started_at >= $2 AND r.started_at < $3 AND {runs}"
             if segments is None else
             f"FROM unnest({segments[0]}::timestamptz[], {segments[1]}::timestamptz[]) AS seg(lo, hi)"
             f" JOIN runs r ON r.name = $1 AND r.started_at >= seg.lo AND r.started_at < seg.hi WHERE {runs}")
    return f"""
r AS MATERIALIZED (
    SELECT r.id, r.started_at, {day} AS day
    {where}
), s AS MATERIALIZED (
    SELECT r.day, s.run_id, s.span_id, s.name AS step, s.type, s.cost, s.rejections,
           {sql.STEP_HAS_ERROR} AS failed, s.input_count, s.output_count,
           {sql.DROP_RATE} AS drop_rate, {sql.STEP_DURATION_MS} AS duration_ms,
           extract(epoch FROM s.started_at - r.started_at)::double precision AS offset_s
    FROM r {join}
), day_totals AS (
    SELECT day, step, count(*) AS count, count(*) FILTER (WHERE failed) AS failed,
           sum(cost::numeric) AS cost_sum, count(drop_rate) AS drop_n, sum(drop_rate) AS drop_sum,
           count(offset_s) AS offset_n, sum(offset_s) AS offset_sum,
           sum(input_count::numeric) AS input_sum, sum(output_count::numeric) AS output_sum,
           sum(drop_rate * drop_rate) AS drop_sq_sum, sum((cost::double precision) ^ 2) AS cost_sq_sum,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY {drop_value_sql("drop_rate")}) AS drop_p95,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY {duration_value_sql("duration_ms")}) AS duration_p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY {duration_value_sql("duration_ms")}) AS duration_p95
    FROM s GROUP BY day, step
), day_types AS (
    SELECT day, step, array_agg(type ORDER BY type) AS types, array_agg(n ORDER BY type) AS type_counts
    FROM (SELECT day, step, type, count(*) AS n FROM s GROUP BY 1, 2, 3) t GROUP BY 1, 2
), day_drops AS (
    {_histogram("drop_histogram", drop_key_sql("drop_rate"), "drop_rate")}
), day_durations AS (
    {_histogram("duration_histogram", duration_key_sql("duration_ms"), "duration_ms")}
), reason_rows AS MATERIALIZED (
    SELECT s.day, s.step, s.run_id, s.span_id, j.key AS reason, (j.value)::numeric AS n
    FROM s CROSS JOIN LATERAL jsonb_each(
        CASE WHEN jsonb_typeof(s.rejections) = 'object' THEN s.rejections ELSE '{{}}'::jsonb END) AS j
    WHERE jsonb_typeof(j.value) = 'number'
), row_rejects AS (  -- per step row, its rejections added up over its reasons (t)
    SELECT day, step, run_id, span_id, sum(n)::double precision AS t FROM reason_rows GROUP BY 1, 2, 3, 4
), day_rejects AS (
    SELECT day, step, count(*) FILTER (WHERE t > 0) AS rejecting_rows FROM row_rejects GROUP BY 1, 2
), day_reasons AS (
    SELECT day, step, array_agg(reason ORDER BY n DESC, reason COLLATE "C") AS reasons,  -- "C": Python's order
           array_agg(n ORDER BY n DESC, reason COLLATE "C") AS reason_counts,
           array_agg(runs ORDER BY n DESC, reason COLLATE "C") AS reason_runs,
           array_agg(share ORDER BY n DESC, reason COLLATE "C") AS reason_share_sum,
           array_agg(share_sq ORDER BY n DESC, reason COLLATE "C") AS reason_share_sq
    FROM (SELECT day, step, reason, sum(n) AS n, count(*) AS runs,
                 coalesce(sum(n::double precision / t) FILTER (WHERE t > 0), 0) AS share,
                 coalesce(sum((n::double precision / t) ^ 2) FILTER (WHERE t > 0), 0) AS share_sq
          FROM reason_rows JOIN row_rejects USING (day, step, run_id, span_id)
          GROUP BY 1, 2, 3) t GROUP BY 1, 2
), summary AS (
    SELECT {SUMMARY_COLUMNS}
    FROM day_totals JOIN day_types USING (day, step) LEFT JOIN day_drops USING (day, step)
    LEFT JOIN day_durations USING (day, step) LEFT JOIN day_reasons USING (day, step)
    LEFT JOIN day_rejects USING (day, step)
)"""


def _step_figures(parts: str, top: str, limit: str) -> str:
    """Per step name, the summaries ``parts`` (a SELECT of summary columns) added up: counts and
    sums exactly, the most frequent type, the ``top`` reasons, histograms concatenated. In the
    order steps sit in their runs (mean offset from the run's start), at most ``limit``."""
    return f""", parts AS (
    {parts}
), totals AS (
    SELECT step, sum(count)::bigint AS count, sum(failed)::bigint AS failed, sum(cost_sum) AS cost_sum,
           sum(drop_n)::bigint AS drop_n, sum(drop_sum) AS drop_sum,
           sum(offset_sum) / nullif(sum(offset_n), 0) AS offset_s,
           string_agg(drop_histogram, ''::bytea) AS drop_histogram,
           string_agg(duration_histogram, ''::bytea) AS duration_histogram
    FROM parts GROUP BY step
), step_types AS (
    SELECT DISTINCT ON (step) step, type
    FROM (SELECT step, u.type, sum(u.n) AS n FROM parts, unnest(types, type_counts) AS u(type, n)
          GROUP BY 1, 2) t
    ORDER BY step, n DESC, type
), step_reasons AS (
    SELECT step, array_agg(reason ORDER BY n DESC, reason) AS reasons,
           array_agg(n::double precision ORDER BY n DESC, reason) AS reason_counts
    FROM (SELECT step, reason, n, row_number() OVER (PARTITION BY step ORDER BY n DESC, reason) AS i
          FROM (SELECT step, u.reason, sum(u.n) AS n FROM parts, unnest(reasons, reason_counts) AS u(reason, n)
                GROUP BY 1, 2) t) ranked
    WHERE i <= {top} GROUP BY 1
)
SELECT step, type, count, failed, cost_sum, drop_n, drop_sum, drop_histogram, duration_histogram,
       reasons, reason_counts
FROM totals JOIN step_types USING (step) LEFT JOIN step_reasons USING (step)
ORDER BY offset_s NULLS LAST, step
LIMIT {limit}"""


# Per step name of pipeline $1 over runs that started in [$2, $3), the top $7 reasons, at most
# $8 steps: the stored summaries of the whole days [$4, $5) but days $6 (out of date or not
# stored), and the rest of the window (part-days and those days) summarised from the step rows.
_STORED_AND_ROWS = f"""SELECT {SUMMARY_COLUMNS} FROM pipeline_step_days
    WHERE name = $1 AND day >= {utc_day('$4')} AND day < {utc_day('$5')} AND day <> ALL($6::date[])
    UNION ALL
    SELECT {SUMMARY_COLUMNS} FROM summary"""
PIPELINE_STEP_FIGURES = f"""
WITH {summarise_sql(f"(NOT (r.started_at >= $4 AND r.started_at < $5) OR {RUN_DAY} = ANY($6::date[]))", _NO_DAY)}
{_step_figures(_STORED_AND_ROWS, "$7", "$8")}
"""
# The same from the step rows alone (top $4 reasons, at most $5 steps), for a role that may not
# read the stored summaries.
PIPELINE_ROW_FIGURES = f"""
WITH {summarise_sql("TRUE", _NO_DAY)}
{_step_figures(f"SELECT {SUMMARY_COLUMNS} FROM summary", "$4", "$5")}
"""

# Store the summaries of days $4 of pipeline $1 (runs started in [$2, $3)) with the signature
# of the runs they come from: one statement, so both are read from one snapshot. The caller
# holds TRY_LOCK_PIPELINE and has run FORGET_PIPELINE_DAYS for the same days.
STORE_PIPELINE_DAYS = f"""
WITH signed AS (
    INSERT INTO pipeline_days (name, day, runs, signature)
    SELECT $1, {RUN_DAY}, count(*), sum({RUN_SIGNATURE})
    FROM runs r
    WHERE r.name = $1 AND r.started_at >= $2 AND r.started_at < $3 AND {RUN_DAY} = ANY($4::date[])
    GROUP BY 2
), {summarise_sql(f"{RUN_DAY} = ANY($4::date[])", RUN_DAY)}
INSERT INTO pipeline_step_days (name, {SUMMARY_COLUMNS})
SELECT $1, {SUMMARY_COLUMNS} FROM summary
"""
# The days' pipeline_days rows are locked first (LOCK_PIPELINE_DAYS), in key order, as retention
# locks them (FORGET_DAYS_BEFORE), so the two never wait for each other in a cycle.
LOCK_PIPELINE_DAYS = "SELECT day FROM pipeline_days WHERE name = $1 AND day = ANY($2::date[]) ORDER BY day FOR UPDATE"
FORGET_PIPELINE_DAYS = """
WITH steps AS (DELETE FROM pipeline_step_days WHERE name = $1 AND day = ANY($2::date[]))
DELETE FROM pipeline_days WHERE name = $1 AND day = ANY($2::date[])
"""
# One refresher per pipeline at a time, across processes; a second one leaves it to the first.
TRY_LOCK_PIPELINE = "SELECT pg_try_advisory_xact_lock(hashtextextended('xray.pipeline_days:' || $1, 0))"

# Per-day summaries of UTC days wholly before the cutoff $1, for retention (retention.py) once their
# runs are gone. A summary of the cutoff's own day is found out of date by its next read. Rows are
# locked in key order, as LOCK_PIPELINE_DAYS locks them, skipping those a refresh holds (the next
# sweep takes them).
FORGET_DAYS_BEFORE = """
WITH doomed AS (
    SELECT name, day FROM pipeline_days WHERE day < ($1 AT TIME ZONE 'UTC')::date
    ORDER BY name, day FOR UPDATE SKIP LOCKED
), steps AS (
    DELETE FROM pipeline_step_days s USING doomed d WHERE s.name = d.name AND s.day = d.day
)
DELETE FROM pipeline_days p USING doomed d WHERE p.name = d.name AND p.day = d.day
"""


def whole_days(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    """[first, last): the UTC midnights bounding the whole days inside [since, until); first ==
    last when there are none."""
    first = _midnight(since)
    if first < since:
        first += _DAY
    last = _midnight(until)
    return (first, last) if first < last else (since, since)


def _midnight(moment: datetime) -> datetime:
    return datetime.combine(moment.astimezone(timezone.utc).date(), time(), timezone.utc)


async def step_figures(conn: asyncpg.Connection, name: str, since: datetime, until: datetime,
                       top_reasons: int, limit: int) -> tuple[list[Any], list[date]]:
    """Per step name of pipeline ``name``, over runs that started in [since, until), its figures
    added up (PIPELINE_STEP_FIGURES; pipeline_stats.py reads them), and the whole
    days that need storing again. Call inside a REPEATABLE READ transaction, so both statements
    read one snapshot."""
    # A day still going on is never whole: it would be out of date at every read during ingest.
    first, last = whole_days(since, min(until, datetime.now(timezone.utc)))
    try:
        async with conn.transaction():  # a savepoint: a role that cannot read the summaries
            stale = [row["day"] for row in await conn.fetch(STALE_PIPELINE_DAYS, name, first, last)]
            rows = await conn.fetch(PIPELINE_STEP_FIGURES, name, since, until, first, last, stale,
                                    top_reasons, limit)
    except asyncpg.InsufficientPrivilegeError as exc:  # ...is answered from the step rows alone
        log.warning("pipeline day summaries not readable; reading step rows",
                    extra={"pipeline": name[:64], "error": str(exc)[:200]})
        return await conn.fetch(PIPELINE_ROW_FIGURES, name, since, until, top_reasons, limit), []
    return rows, stale


async def store_days(conn: asyncpg.Connection, name: str, days: list[date]) -> int:
    """Summarise those of ``days`` still out of date, in one transaction under the pipeline's lock;
    returns how many it stored."""
    start = datetime.combine(days[0], time(), timezone.utc)
    end = datetime.combine(days[-1], time(), timezone.utc) + _DAY
    async with conn.transaction():
        if not await conn.fetchval(TRY_LOCK_PIPELINE, name):
            return 0
        wanted = set(days)  # not the other stale days between them: a week at most
        days = [row["day"] for row in await conn.fetch(STALE_PIPELINE_DAYS, name, start, end)
                if row["day"] in wanted]
        if days:
            await conn.execute(LOCK_PIPELINE_DAYS, name, days)
            await conn.execute(FORGET_PIPELINE_DAYS, name, days)
            await conn.execute(STORE_PIPELINE_DAYS, name, start, end, days)
    return len(days)


async def forget_days_before(conn: asyncpg.Connection | asyncpg.Pool, cutoff: datetime) -> None:
    """Drop the summaries of the UTC days wholly before ``cutoff``: retention deleted their runs."""
    await conn.execute(FORGET_DAYS_BEFORE, cutoff)
