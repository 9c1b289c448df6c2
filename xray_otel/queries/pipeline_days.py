"""Per-day step summaries of one pipeline: read in one snapshot, refreshed in the background.

A read splits its window into whole UTC days and the part-days at either end. In one
REPEATABLE READ snapshot it finds the stored days whose runs changed since they were
summarised (a signature of the runs, read from an index), then adds up the other stored days
and what it summarises from the step rows for everything else (part-days, changed or missing
days): the answer is that snapshot's and never waits for a writer. The changed days are
handed to a background refresher, so the next read finds them stored.
"""

from __future__ import annotations

import asyncio
import logging
import time as clock
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import asyncpg

from . import sql

log = logging.getLogger(__name__)
_DAY = timedelta(days=1)
# Days are stored a week per transaction: short transactions, and work done is kept if a later
# week fails.
DAYS_PER_TRANSACTION = 7
# A database the server may read but not write (a replica, a read-only role): reads still answer
# (from the step rows for days not stored), and storing is retried this much later.
_CANNOT_WRITE = (asyncpg.ReadOnlySQLTransactionError, asyncpg.InsufficientPrivilegeError)
_WRITE_RETRY_S = 600.0


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
    added up (queries/sql.py PIPELINE_STEP_FIGURES; pipeline_stats.py reads them), and the whole
    days that need storing again. Call inside a REPEATABLE READ transaction, so both statements
    read one snapshot."""
    # A day still going on is never whole: it would be out of date at every read during ingest.
    first, last = whole_days(since, min(until, datetime.now(timezone.utc)))
    try:
        async with conn.transaction():  # a savepoint: a role that cannot read the summaries
            stale = [row["day"] for row in await conn.fetch(sql.STALE_PIPELINE_DAYS, name, first, last)]
            rows = await conn.fetch(sql.PIPELINE_STEP_FIGURES, name, since, until, first, last, stale,
                                    top_reasons, limit)
    except asyncpg.InsufficientPrivilegeError as exc:  # ...is answered from the step rows alone
        log.warning("pipeline day summaries not readable; reading step rows",
                    extra={"pipeline": name[:64], "error": str(exc)[:200]})
        return await conn.fetch(sql.PIPELINE_ROW_FIGURES, name, since, until, top_reasons, limit), []
    return rows, stale


class Refresher:
    """Stores the summaries of days reads found missing or out of date, one pipeline and one pool
    connection at a time, so ingest and reads never wait for it. A pipeline another process is
    refreshing (its advisory lock taken) is left to that process."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._pending: dict[str, set[date]] = {}
        self._task: asyncio.Task | None = None
        self._write_after = 0.0

    def request(self, name: str, days: list[date]) -> None:
        if clock.monotonic() < self._write_after:
            return
        self._pending.setdefault(name, set()).update(days)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _drain(self) -> None:
        while self._pending:
            name = next(iter(self._pending))
            days = sorted(self._pending.pop(name))
            try:
                stored = 0
                for i in range(0, len(days), DAYS_PER_TRANSACTION):
                    async with self._pool.acquire() as conn:  # given back between weeks, for ingest
                        stored += await _store(conn, name, days[i:i + DAYS_PER_TRANSACTION])
                if stored:
                    log.info("pipeline days summarised", extra={"pipeline": name[:64], "days": stored})
            except _CANNOT_WRITE as exc:
                log.warning("pipeline day summaries cannot be stored; reads use step rows meanwhile",
                            extra={"error": str(exc)[:200], "retry_in_s": _WRITE_RETRY_S})
                self._write_after = clock.monotonic() + _WRITE_RETRY_S
                self._pending.clear()
            except Exception:  # the next read that needs these days asks again
                log.exception("storing pipeline day summaries failed", extra={"pipeline": name[:64]})


async def _store(conn: asyncpg.Connection, name: str, days: list[date]) -> int:
    """Summarise those of ``days`` still out of date, in one transaction under the pipeline's lock;
    returns how many it stored."""
    start = datetime.combine(days[0], time(), timezone.utc)
    end = datetime.combine(days[-1], time(), timezone.utc) + _DAY
    async with conn.transaction():
        if not await conn.fetchval(sql.TRY_LOCK_PIPELINE, name):
            return 0
        wanted = set(days)  # not the other stale days between them: a week at most
        days = [row["day"] for row in await conn.fetch(sql.STALE_PIPELINE_DAYS, name, start, end)
                if row["day"] in wanted]
        if days:
            await conn.execute(sql.LOCK_PIPELINE_DAYS, name, days)
            await conn.execute(sql.FORGET_PIPELINE_DAYS, name, days)
            await conn.execute(sql.STORE_PIPELINE_DAYS, name, start, end, days)
    return len(days)
