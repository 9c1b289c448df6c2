"""Per-day step summaries of one pipeline, kept fresh at read time (migrations/0007).

A window is split into whole UTC days, read from stored summaries, and the parts before
the first and after the last whole day, summarised from the step rows (one statement). Before reading,
the whole days whose runs changed since they were summarised (a signature over the runs,
read from an index) are summarised again, so a summary is never older than the read.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import asyncpg

from . import sql

log = logging.getLogger(__name__)
_DAY = timedelta(days=1)
# The first read of a long window summarises its days a week at a time: each week commits on its
# own, so work done is kept even if the read is cut short (the pool's 60 s command timeout).
DAYS_PER_TRANSACTION = 7
# A database the server may read but not write (a replica, a read-only role) still answers:
# every figure then comes from the step rows, as slowly as that is.
_CANNOT_WRITE = (asyncpg.ReadOnlySQLTransactionError, asyncpg.InsufficientPrivilegeError)


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


async def summaries(conn: asyncpg.Connection, name: str, since: datetime, until: datetime) -> list[Any]:
    """The step summaries of pipeline ``name`` over runs that started in [since, until), for
    queries/pipeline_stats.py to merge."""
    first, last = whole_days(since, until)
    if first < last:
        try:
            await _refresh(conn, name, first, last)
        except _CANNOT_WRITE as exc:
            log.warning("pipeline day summaries not stored; reading step rows instead",
                        extra={"pipeline": name[:64], "error": type(exc).__name__})
            first = last = since
    return await conn.fetch(sql.PIPELINE_DAY_SUMMARIES, name, since, until, first, last)


async def _refresh(conn: asyncpg.Connection, name: str, first: datetime, last: datetime) -> None:
    """Summarise again the days in [first, last) whose runs changed."""
    stale: list[date] = [row["day"] for row in await conn.fetch(sql.STALE_PIPELINE_DAYS, name, first, last)]
    for i in range(0, len(stale), DAYS_PER_TRANSACTION):
        await _store(conn, name, stale[i:i + DAYS_PER_TRANSACTION])


async def _store(conn: asyncpg.Connection, name: str, days: list[date]) -> None:
    """Summarise ``days`` in one transaction, under the pipeline's lock. Checked again under it:
    another reader may have stored them meanwhile."""
    start = datetime.combine(days[0], time(), timezone.utc)
    end = datetime.combine(days[-1], time(), timezone.utc) + _DAY
    async with conn.transaction():
        await conn.execute(sql.LOCK_PIPELINE, name)
        days = [row["day"] for row in await conn.fetch(sql.STALE_PIPELINE_DAYS, name, start, end)]
        if days:
            await conn.execute(sql.FORGET_PIPELINE_DAYS, name, days)
            await conn.execute(sql.STORE_PIPELINE_DAYS, name, start, end, days)
    if days:
        log.info("pipeline days summarised", extra={"pipeline": name[:64], "days": len(days)})
