"""The per-hour candidate index (migrations/0010_candidate_hours.sql): all of its SQL, and reading and
storing it. candidate_index.py works out and packs what it holds.

As with the per-day summaries (pipeline_days.py): a read checks, in its snapshot, each stored hour of its
window against a signature of that hour's runs (their ids, step counts, run spans, start times, and how
many writes their outcome parts have had), uses the hours that still match, and reads the runs of every
other hour from their own rows. The other hours are handed to a background refresher, so the next read
finds them. An hour still going on is never stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

import asyncpg

from . import read_sql as sql
from .candidate_index import pack, run_fates, shard_count
from .outcomes import Part
from .pipeline_days import RUN_SIGNATURE, stale_sql

HOUR_S = 3600
RUNS_PER_READ = 50
_HOUR = "floor(extract(epoch FROM r.started_at) / 3600)::bigint"
# What an hour's index depends on, per run: its rows (as pipeline_days signs them) and its outcome parts, by
# the count of writes to them kept on the run's row (migrations/0015): a part stored or marked incomplete
# after the hour was indexed changes it.
_SIGNATURE = f"({RUN_SIGNATURE} # hashint8extended(r.outcome_writes, 0))"

# The whole hours [$4, $5) (as timestamps [$2, $3)) of pipeline $1 whose stored index is missing, out of
# date, or of an hour with no runs left; with the hour's current runs and signature.
STALE_HOURS = stale_sql(
    "hour", _HOUR, "FROM runs r WHERE r.name = $1 AND r.started_at >= $2 AND r.started_at < $3",
    "SELECT hour, runs, signature FROM candidate_hours WHERE name = $1 AND hour >= $4 AND hour < $5",
    signature=_SIGNATURE, shown=", current.runs, current.signature")
# The stored hours [$2, $3) of pipeline $1 but the hours $4, newest first, each with the shard row of the
# candidate whose id's crc32 is $5 (NULL when no candidate of that shard was in the hour).
READ_HOURS = """
SELECT h.hour, h.run_ids, h.run_started, h.per_run, h.fate_steps, h.fate_reasons, s.ids, s.postings
FROM candidate_hours h
LEFT JOIN candidate_hour_shards s ON s.name = h.name AND s.hour = h.hour AND s.shard = ($5::bigint % h.shards)
WHERE h.name = $1 AND h.hour >= $2 AND h.hour < $3 AND h.hour <> ALL($4::bigint[])
ORDER BY h.hour DESC
"""
HOUR_RUNS = """
SELECT r.id FROM runs r
WHERE r.name = $1 AND r.started_at >= $2 AND r.started_at < $3
ORDER BY r.started_at DESC, r.id DESC
"""
RUN_STARTS = "SELECT id, started_at FROM runs WHERE id = ANY($1::uuid[])"
TRY_LOCK = "SELECT pg_try_advisory_xact_lock(hashtextextended('xray candidate hours ' || $1, 0))"
FORGET = """
WITH shards AS (DELETE FROM candidate_hour_shards WHERE name = $1 AND hour = ANY($2::bigint[]))
DELETE FROM candidate_hours WHERE name = $1 AND hour = ANY($2::bigint[])
"""
STORE_HOUR = """
INSERT INTO candidate_hours (name, hour, runs, signature, run_ids, run_started, per_run, fate_steps, fate_reasons,
                             shards)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""
STORE_SHARD = "INSERT INTO candidate_hour_shards (name, hour, shard, ids, postings) VALUES ($1, $2, $3, $4, $5)"
# Hours wholly before the cutoff $1 (epoch hour), for retention once their runs are gone.
FORGET_BEFORE = """
WITH shards AS (DELETE FROM candidate_hour_shards WHERE hour < $1)
DELETE FROM candidate_hours WHERE hour < $1
"""


def whole_hours(since: datetime, until: datetime) -> tuple[int, int]:
    """[first, last): the epoch hours wholly inside [since, until), and ended before now."""
    end = min(until, datetime.now(timezone.utc)).timestamp()
    first, last = -(-int(since.timestamp()) // HOUR_S), int(end // HOUR_S)
    return (first, last) if first < last else (first, first)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def hour_start(hour: int) -> datetime:
    return _EPOCH + timedelta(hours=hour)


class Hour(NamedTuple):
    """A stored hour as a read sees it: its runs newest first, which are answered per run, and the
    candidate's (ordinal, fate) pairs there."""
    hour: int
    run_ids: list[Any]
    run_started: list[datetime]
    per_run: list[int]
    fates: list[tuple[str, str]]
    shard: tuple[bytes, bytes] | None


async def read_hours(conn: asyncpg.Connection, name: str, first: int, last: int,
                     crc: int) -> tuple[list[Hour], list[int]]:
    """The stored hours in [first, last) still up to date, newest first, and the hours there to be stored
    (again). Call in a REPEATABLE READ transaction: both statements read one snapshot."""
    stale = await conn.fetch(STALE_HOURS, name, hour_start(first), hour_start(last), first, last)
    stale_hours = [row["hour"] for row in stale]
    rows = await conn.fetch(READ_HOURS, name, first, last, stale_hours, crc)
    hours = [Hour(r["hour"], list(r["run_ids"]), list(r["run_started"]), list(r["per_run"]),
                  list(zip(r["fate_steps"], r["fate_reasons"])),
                  (r["ids"], r["postings"]) if r["ids"] is not None else None) for r in rows]
    return hours, [row["hour"] for row in stale if row["runs"] is not None]


async def store_hours(conn: asyncpg.Connection, name: str, hours: list[int]) -> int:
    """Index those of ``hours`` still out of date, each in a transaction of its own under the pipeline's
    lock; returns how many it stored."""
    stored = 0
    for hour in hours:
        async with conn.transaction(isolation="repeatable_read"):
            if not await conn.fetchval(TRY_LOCK, name):
                return stored
            stale = await conn.fetch(STALE_HOURS, name, hour_start(hour), hour_start(hour + 1), hour, hour + 1)
            await conn.execute(FORGET, name, [hour])
            if not stale or stale[0]["runs"] is None:
                continue
            await _store_hour(conn, name, hour, stale[0]["runs"], stale[0]["signature"])
            stored += 1
    return stored


async def _store_hour(conn: asyncpg.Connection, name: str, hour: int, runs: int, signature: Any) -> None:
    run_ids = [r["id"] for r in await conn.fetch(HOUR_RUNS, name, hour_start(hour), hour_start(hour + 1))]
    fate_of: dict[tuple[str, str], int] = {}
    fates: list[dict[str, int] | None] = []
    for i in range(0, len(run_ids), RUNS_PER_READ):
        batch = run_ids[i:i + RUNS_PER_READ]
        steps: dict[Any, list[Any]] = {}
        parts: dict[Any, list[Part]] = {}
        for row in await conn.fetch(sql.RUNS_CANDIDATE_STEPS, batch):
            steps.setdefault(row["run_id"], []).append(row)
        for row in await conn.fetch(sql.RUNS_OUTCOME_PARTS, batch):
            parts.setdefault(row["run_id"], []).append(Part(row))
        fates += await asyncio.to_thread(lambda: [
            run_fates(steps.get(run, []), parts.get(run, []), fate_of) if run in steps else {} for run in batch])
    starts = {r["id"]: r["started_at"] for r in await conn.fetch(RUN_STARTS, run_ids)}
    per_run = [ordinal for ordinal, f in enumerate(fates, 1) if f is None]
    shards = shard_count(sum(len(f) for f in fates if f))
    packed = await asyncio.to_thread(pack, fates, shards)
    named = sorted(fate_of, key=fate_of.__getitem__)
    await conn.execute(STORE_HOUR, name, hour, runs, signature, run_ids, [starts[r] for r in run_ids], per_run,
                       [step for step, _ in named], [reason for _, reason in named], shards)
    await conn.executemany(STORE_SHARD, [(name, hour, s.shard, s.ids, s.postings) for s in packed])


async def forget_hours_before(conn: asyncpg.Connection | asyncpg.Pool, cutoff: datetime) -> None:
    """Drop the index of the hours wholly before ``cutoff``: retention deleted their runs."""
    await conn.execute(FORGET_BEFORE, int(cutoff.timestamp() // HOUR_S))


def ordinals_before(hour: Hour, before: Sequence[Any] | None) -> int:
    """How many of the hour's runs (newest first) come at or after the key (started_at, id) ``before``:
    the ordinals past that are the ones still to read."""
    if before is None:
        return 0
    for i, (started, run_id) in enumerate(zip(hour.run_started, hour.run_ids)):
        if (started, run_id) < (before[0], before[1]):
            return i
    return len(hour.run_ids)
