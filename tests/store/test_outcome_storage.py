"""Candidate outcomes on disk (issue 18 item 4): at most 12 bytes an outcome for ids of about ten characters,
everything counted (heap, TOAST, indexes, free space and visibility maps), measured with
pg_total_relation_size on 10 steps of 5,000 candidates written through the mapper and the store."""

from __future__ import annotations

import asyncio
import random
import string
import uuid

import asyncpg
import pytest

from conftest import _with_database
from helpers import Array, export_request, make_span, new_ids
from xray_otel.mapping.spans import map_request
from xray_otel.store.store import Store

STEPS, CANDIDATES = 10, 5000
_ALNUM = string.ascii_uppercase + string.digits


def _ids(kind: str, rng: random.Random) -> list[str]:
    if kind == "random":  # ASIN-like: ten characters, eight of them random; the hardest to pack
        return ["B0" + "".join(rng.choices(_ALNUM, k=8)) for _ in range(CANDIDATES)]
    return [f"cand-{i:05d}" for i in rng.sample(range(100_000), CANDIDATES)]  # a catalogue's own numbering


async def _bytes_per_outcome(dsn: str, kind: str) -> tuple[float, float]:
    rng = random.Random(18)
    store = await Store.open(dsn, pool_size=2)
    try:
        trace, base = new_ids()
        catalogue = _ids(kind, rng)
        for s in range(STEPS):  # one request per step, as an exporter's batches would carry them
            codes = [0 if rng.random() < 0.1 else rng.choice((1, 2, 3)) for _ in range(CANDIDATES)]
            span = make_span(trace, base + s, f"filter_{s}", attrs={
                "xray.kind": "step", "xray.step.outcomes.ids": Array(catalogue),
                "xray.step.outcomes.codes": Array(codes),
                "xray.step.outcomes.reasons": Array(["price_too_high", "out_of_stock", "rating_too_low"])})
            batch = map_request(export_request([span]))
            assert len(batch.outcomes) == 1 and batch.outcome_notes == []
            assert await store.write(batch) == (0, [])
        async with store.pool.acquire() as conn:
            written = await conn.fetchval("SELECT pg_total_relation_size('step_outcomes')")
            await conn.execute("VACUUM ANALYZE step_outcomes")  # makes the free space and visibility maps too
            vacuumed = await conn.fetchval("SELECT pg_total_relation_size('step_outcomes')")
            assert await conn.fetchval("SELECT sum(n) FROM step_outcomes") == STEPS * CANDIDATES
        return written / (STEPS * CANDIDATES), vacuumed / (STEPS * CANDIDATES)
    finally:
        await store.close()


@pytest.mark.parametrize("kind", ["random", "numbered"])
def test_an_outcome_takes_at_most_12_bytes_on_disk(pg_dsn: str, kind: str) -> None:
    name = f"xray_scratch_{uuid.uuid4().hex[:10]}"

    async def go() -> tuple[float, float]:
        admin = await asyncpg.connect(pg_dsn)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            return await _bytes_per_outcome(_with_database(pg_dsn, name), kind)
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await admin.close()

    written, vacuumed = asyncio.run(go())
    print(f"\n{kind} ids: {written:.2f} bytes/outcome as written, {vacuumed:.2f} after VACUUM")
    assert max(written, vacuumed) <= 12
