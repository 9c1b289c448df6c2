"""Storing caches that reads found missing or out of date, in the background: the per-day pipeline
summaries (pipeline_days.py) and the per-hour candidate index (candidate_hours.py).

One pipeline and one pool connection at a time, so ingest and reads never wait for it; the storing
function takes the pipeline's lock and leaves a pipeline another process is storing to that process.
"""

from __future__ import annotations

import asyncio
import logging
import time as clock
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

log = logging.getLogger(__name__)
# A database the server may read but not write (a replica, a read-only role): reads still answer
# (from the rows the cache summarises), and storing is retried this much later.
CANNOT_WRITE = (asyncpg.ReadOnlySQLTransactionError, asyncpg.InsufficientPrivilegeError)
WRITE_RETRY_S = 600.0

Store = Callable[[asyncpg.Connection, str, list[Any]], Awaitable[int]]


class Refresher:
    """Calls ``store(conn, pipeline, keys)`` for the keys (days, hours) reads asked for, ``batch`` keys
    per call (a transaction each), giving the connection back between calls for ingest."""

    def __init__(self, pool: asyncpg.Pool, store: Store, batch: int, what: str) -> None:
        self._pool, self._store, self._batch, self._what = pool, store, batch, what
        self._pending: dict[str, set[Any]] = {}
        self._task: asyncio.Task | None = None
        self._write_after = 0.0

    def request(self, name: str, keys: list[Any]) -> None:
        if clock.monotonic() < self._write_after:
            return
        self._pending.setdefault(name, set()).update(keys)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())

    async def wait(self) -> None:
        """Until everything asked so far is stored (tests and benchmarks)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _drain(self) -> None:
        while self._pending:
            name = next(iter(self._pending))
            keys = sorted(self._pending.pop(name))
            try:
                stored = 0
                for i in range(0, len(keys), self._batch):
                    async with self._pool.acquire() as conn:
                        stored += await self._store(conn, name, keys[i:i + self._batch])
                if stored:
                    log.info(f"{self._what} stored", extra={"pipeline": name[:64], "count": stored})
            except CANNOT_WRITE as exc:
                log.warning(f"{self._what} cannot be stored; reads use the rows meanwhile",
                            extra={"error": str(exc)[:200], "retry_in_s": WRITE_RETRY_S})
                self._write_after = clock.monotonic() + WRITE_RETRY_S
                self._pending.clear()
            except Exception:  # the next read that needs these asks again
                log.exception(f"storing {self._what} failed", extra={"pipeline": name[:64]})
