"""Times travel as int64 microseconds since the epoch and PostgreSQL makes them timestamptz
(store/sql.py from_micros): exact to the microsecond over every value the mappers produce, on the
batch path and the row-by-row fallback alike."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

from xray_otel.mapping.rows import SOURCE_RUN_SPAN, Batch, RunRow, StepRow
from xray_otel.store.store import Store

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
US = timedelta(microseconds=1)
EDGES = [
    0, -1, 1, 999_999, 1_000_000, -1_000_001,
    1_700_000_000_123_456,  # now-ish
    2**53 + 1,  # past float8's exact integers
    (2**64 - 1) // 1000,  # the largest OTLP fixed64 nanoseconds, year 2554
    (datetime.min.replace(tzinfo=timezone.utc) - EPOCH) // US,  # legacy /ingest's bounds
    (datetime.max.replace(tzinfo=timezone.utc) - EPOCH) // US,
]


def _rows(micros: int, bad: bool) -> tuple[RunRow, StepRow]:
    run_id = uuid.uuid4()
    run = RunRow(run_id, SOURCE_RUN_SPAN, "r", "times", "COMPLETED", "svc", "{}", None, None, None, micros, micros)
    step = StepRow(run_id, "s", None, "s", "llm", "COMPLETED", "{not json" if bad else None, None, None, None, 0.0,
                   None, None, None, None, None, None, None, micros, micros, None, "svc", "{}", "{}", "{}", "none")
    return run, step


@pytest.mark.parametrize("fallback", [False, True], ids=["batch", "row-by-row"])
def test_times_are_exact_to_the_microsecond(pg_dsn: str, fallback: bool) -> None:
    batch = Batch()
    for micros in EDGES:
        run, step = _rows(micros, bad=False)
        batch.add_run(run)
        batch.steps.append(step)
    if fallback:  # one refused row sends the whole batch down the row-by-row path
        run, step = _rows(0, bad=True)
        batch.add_run(run)
        batch.steps.append(step)

    async def go() -> dict[uuid.UUID, tuple]:
        store = await Store.open(pg_dsn, pool_size=1)
        try:
            assert (await store.write(batch))[0] == (1 if fallback else 0)
            async with store.pool.acquire() as conn:
                return await _read(conn, list(batch.runs))
        finally:
            await store.close()

    stored = asyncio.run(go())
    assert len(stored) == len(EDGES)  # every row but the refused one
    for run_id, row in batch.runs.items():
        if run_id in stored:
            expected = EPOCH + row.started_at * US
            assert stored[run_id] == (expected, expected, expected, expected), row.started_at


async def _read(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple]:
    rows = await conn.fetch("""SELECT r.id, r.started_at, r.completed_at, s.started_at AS s_start,
                                      s.completed_at AS s_end
                               FROM runs r JOIN steps s ON s.run_id = r.id WHERE r.id = ANY($1::uuid[])""", ids)
    return {r["id"]: (r["started_at"], r["completed_at"], r["s_start"], r["s_end"]) for r in rows}
