"""Store: the PostgreSQL pool, schema set-up, writing one batch in one transaction, and the reads
(``Store.reads``, reads.py).

A batch costs the same round trips whatever its size: BEGIN, upsert runs (one
statement over arrays), COPY the steps into a per-connection staging table, move
them into ``steps`` with ON CONFLICT DO NOTHING and add what was new to the run totals
(one statement), the same for candidate outcome parts when the batch has any (COPY,
one statement; packed first by outcomes.py), COMMIT. Only if PostgreSQL refuses the batch's data does it fall back to
one savepoint per row, so one bad span is rejected and reported while the rest is stored.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Iterable, Sequence

import asyncpg

from ..mapping.rows import Batch, RunRow, StepRow
from . import sql
from .migrate import migrate
from .alerts import AlertStore
from .outcomes import PackedOutcomes, pack
from .reads import Reads

log = logging.getLogger(__name__)

# Errors that mean "the database cannot take this now": the client should retry.
UNAVAILABLE_ERRORS = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # 57xxx: shutdown, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # 53xxx: disk full, too many connections
    asyncpg.exceptions.TransactionRollbackError,  # 40xxx: serialization failure, deadlock
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a standby
    asyncpg.exceptions.InternalClientError,  # the protocol state broke as the server went away
)
# A pooled connection that PostgreSQL closed (restart, admin shutdown): worth one retry on a fresh one.
_STALE_CONNECTION = (
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # e.g. "cannot switch to state 15" when the server dies mid-COPY
)
# Worth one more try on a fresh transaction: a dead pooled connection, or PostgreSQL breaking a
# lock cycle with another writer (writers lock runs in one order, but an operator's statement may not).
_RETRY_ONCE = _STALE_CONNECTION + (asyncpg.exceptions.DeadlockDetectedError,)
# Outcomes past this many in a batch are packed in a thread (zlib lets go of the GIL), so the loop goes on.
PACK_IN_THREAD = 50_000
# Errors that mean "PostgreSQL refused this data": reject the rows, keep the rest.
_BAD_DATA = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.exceptions.ProgramLimitExceededError,
)


class StoreUnavailable(Exception):
    """The database is down, overloaded or unreachable; retrying later may succeed."""


class Store:
    """Owns the connection pool. Create with :meth:`open`."""

    def __init__(self, pool: asyncpg.Pool, acquire_timeout: float) -> None:
        self.pool = pool
        self.reads = Reads(pool)
        self.alerts = AlertStore(pool)
        self._acquire_timeout = acquire_timeout

    @classmethod
    async def open(cls, dsn: str, *, pool_size: int = 8, acquire_timeout: float = 10.0,
                   connect_timeout: float = 30.0) -> Store:
        """Connect (retrying until ``connect_timeout``), migrate the schema, and open the pool."""
        conn = await _connect_with_retry(dsn, connect_timeout)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=pool_size, init=_init_connection, command_timeout=60
        )
        return cls(pool, acquire_timeout)

    async def close(self) -> None:
        await self.reads.close()
        await self.pool.close()

    async def ready(self) -> bool:
        """True when the database answers a trivial query within a second."""
        try:
            async with self.pool.acquire(timeout=1.0) as conn:
                await conn.fetchval("SELECT 1", timeout=1.0)
            return True
        except (*UNAVAILABLE_ERRORS, asyncpg.PostgresError):
            return False

    async def write(self, batch: Batch) -> tuple[int, list[str]]:
        """Store a batch atomically; returns (rows PostgreSQL refused, why) — normally (0, []).

        A connection that died under the pool (PostgreSQL restarted) is dropped by asyncpg; the
        write is tried once more on a fresh one before the client is told to retry. Safe: the
        failed transaction was rolled back, and the write is idempotent anyway.
        """
        if not batch.steps and not batch.runs:  # legacy run events come without steps
            return 0, []
        runs = sorted(batch.runs.values())
        outcomes = await _packed(batch)
        for attempt in (1, 2):
            try:
                return await self._write_once(runs, batch.steps, outcomes)
            except _RETRY_ONCE as exc:  # the transaction was rolled back whole: running it again is safe
                if attempt == 2:
                    raise StoreUnavailable(f"database unavailable: {type(exc).__name__}: {exc}") from exc
            except UNAVAILABLE_ERRORS as exc:
                raise StoreUnavailable(f"database unavailable: {type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")

    async def _write_once(self, runs: Sequence[RunRow], steps: Sequence[StepRow],
                          outcomes: Sequence[PackedOutcomes]) -> tuple[int, list[str]]:
        async with self.pool.acquire(timeout=self._acquire_timeout) as conn:
            try:
                async with conn.transaction():
                    await _write_set(conn, runs, steps, outcomes)
                return 0, []
            except _BAD_DATA as exc:
                log.warning("batch refused by PostgreSQL; storing row by row", extra={"error": str(exc)})
                async with conn.transaction():
                    return await _write_each(conn, runs, steps, outcomes)


async def _packed(batch: Batch) -> list[PackedOutcomes]:
    if sum(len(o.ids) for o in batch.outcomes) > PACK_IN_THREAD:
        return await asyncio.to_thread(lambda: [pack(o) for o in batch.outcomes])
    return [pack(o) for o in batch.outcomes]


_INSERT_STEPS = sql.INSERT_STEPS.format(columns=", ".join(StepRow._fields),
                                        staged=", ".join(sql.staged(name) for name in StepRow._fields))
_STAGE_STEP = sql.STAGE_STEP.format(columns=", ".join(StepRow._fields),
                                    values=", ".join(f"${i + 1}" for i in range(len(StepRow._fields))))


async def _write_set(conn: asyncpg.Connection, runs: Sequence[RunRow], steps: Sequence[StepRow],
                     outcomes: Sequence[PackedOutcomes] = ()) -> None:
    await conn.copy_records_to_table("steps_in", records=steps, columns=StepRow._fields)
    fresh = await _upsert_runs(conn, runs)
    await conn.execute(_INSERT_STEPS, [run.id for run in runs], fresh)
    if outcomes:
        await conn.execute(sql.CREATE_OUTCOME_STAGING)
        await conn.copy_records_to_table("outcomes_in", records=outcomes, columns=PackedOutcomes._fields)
        await conn.execute(sql.INSERT_OUTCOMES)


async def _upsert_runs(conn: asyncpg.Connection, runs: Sequence[RunRow]) -> list[Any]:
    """Insert the runs new to the database (totals from the staged steps), merge the others;
    returns the ids inserted."""
    fresh = [row["id"] for row in await conn.fetch(sql.INSERT_NEW_RUNS, *_columns(runs, len(RunRow._fields)))]
    if len(fresh) < len(runs):
        inserted = set(fresh)
        stored = [run for run in runs if run.id not in inserted]
        await conn.execute(sql.UPSERT_RUNS, *_columns(stored, len(RunRow._fields)))
    return fresh


async def _write_each(conn: asyncpg.Connection, runs: Sequence[RunRow], steps: Sequence[StepRow],
                      outcomes: Sequence[PackedOutcomes] = ()) -> tuple[int, list[str]]:
    refused: set[Any] = set()
    errors: list[str] = []
    fresh: set[Any] = set()
    # The lock order of _upsert_runs, or the two paths deadlock: new runs first, then stored ones,
    # each in id order. Nothing is staged yet: a new run starts at zero, its steps add to it below.
    for run in runs:
        inserted = await _try(conn, [(sql.INSERT_NEW_RUNS, _columns([run], len(RunRow._fields)))], errors)
        if inserted is None:
            refused.add(run.id)
        elif inserted:
            fresh.add(run.id)
    for run in runs:
        if run.id not in refused | fresh and await _try(
                conn, [(sql.UPSERT_RUNS, _columns([run], len(RunRow._fields)))], errors) is None:
            refused.add(run.id)
    rejected = 0
    for step in steps:
        if step.run_id in refused or await _try(
                conn, [(_STAGE_STEP, step), (_INSERT_STEPS, [[step.run_id], []]), (sql.UNSTAGE, [])], errors) is None:
            rejected += 1
    # Runs whose run span changed though none of their spans went in (a legacy run event alone,
    # or every step refused): their totals follow the new run span too.
    await conn.execute(_INSERT_STEPS, [run.id for run in runs if run.id not in refused], [])
    for part in sorted(outcomes, key=lambda o: (o.run_id, o.span_id, o.part)):
        if part.run_id not in refused:
            await _try(conn, [(sql.INSERT_OUTCOME, part)], errors)  # its step is counted, stored or not
    return rejected, errors[:5]


async def _try(conn: asyncpg.Connection, statements: Iterable[tuple[str, Iterable[Any]]],
               errors: list[str]) -> list[asyncpg.Record] | None:
    """The statements in a savepoint: the last one's rows, or None when PostgreSQL refused the data."""
    rows: list[asyncpg.Record] = []
    try:
        async with conn.transaction():  # a savepoint inside the outer transaction
            for query, args in statements:
                rows = await conn.fetch(query, *args)
        return rows
    except _BAD_DATA as exc:
        errors.append(f"refused by the database: {exc}")
        return None


def _columns(rows: Sequence[tuple], width: int) -> list[list[Any]]:
    return [list(col) for col in zip(*rows)] if rows else [[] for _ in range(width)]


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.execute(sql.CREATE_STAGING)


async def _connect_with_retry(dsn: str, timeout: float) -> asyncpg.Connection:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await asyncpg.connect(dsn, timeout=min(10.0, timeout))
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.exceptions.CannotConnectNowError) as exc:
            if loop.time() >= deadline:
                raise StoreUnavailable(
                    f"cannot connect to PostgreSQL within {timeout:.0f}s ({type(exc).__name__}: {exc}); "
                    "check XRAY_DATABASE_URL, or unset it to use the embedded database"
                ) from exc
            await asyncio.sleep(0.5)
