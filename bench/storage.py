"""Storage footprint: rows per run and bytes per stored span, for ARCHITECTURE.md's scaling plan.

Loads the ingest benchmark's workload (1 run span + 5 steps per trace) through the
receiver's own mapping and store into an embedded PostgreSQL (or XRAY_DATABASE_URL),
then reports table and index sizes per span and what a given daily volume needs.

    python bench/storage.py [--traces 20000] [--per-day 1000000000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from ingest import build_requests  # noqa: E402  (the same workload as bench/ingest.py)

from xray_otel.mapping.spans import map_request  # noqa: E402
from xray_otel.store.embedded import given_or_embedded  # noqa: E402
from xray_otel.store.store import Store  # noqa: E402

SIZES = """
SELECT relname, pg_relation_size(c.oid) AS heap, pg_total_relation_size(c.oid) AS total, reltuples::bigint AS rows
FROM pg_class c WHERE relname IN ('runs', 'steps')
"""


async def measure(dsn: str, traces: int, per_day: int) -> None:
    store = await Store.open(dsn, pool_size=2)
    try:
        requests = build_requests(traces, 512, "storage-bench", "storage_run")
        started = time.perf_counter()
        for request in requests:
            await store.write(map_request(request))
        elapsed = time.perf_counter() - started
        async with store.pool.acquire() as conn:
            await conn.execute("VACUUM ANALYZE runs")
            await conn.execute("VACUUM ANALYZE steps")
            sizes = {r["relname"]: r for r in await conn.fetch(SIZES)}
            spans = await conn.fetchval("SELECT count(*) FROM steps")
            runs = await conn.fetchval("SELECT count(*) FROM runs")
    finally:
        await store.close()
    total = sum(r["total"] for r in sizes.values())
    heap = sum(r["heap"] for r in sizes.values())
    per_span = total / spans
    print(f"loaded {spans:,} spans ({runs:,} runs) in {elapsed:.1f} s through map_request + Store.write")
    print(f"rows per run: 1 runs row + {spans / runs:.1f} steps rows (the run span is kept as a step row too)")
    for name, r in sorted(sizes.items()):
        print(f"  {name:5}  heap {r['heap'] / 2**20:8.1f} MiB   with indexes and TOAST {r['total'] / 2**20:8.1f} MiB")
    print(f"bytes per span stored: {per_span:,.0f} ({heap / spans:,.0f} heap, {(total - heap) / spans:,.0f} indexes/TOAST)")
    day = per_day * per_span
    print(f"{per_day:,} spans/day: {day / 2**40:.2f} TiB/day, {30 * day / 2**40:.1f} TiB for 30 days' retention; "
          f"{per_day / 86400:,.0f} spans/s on average")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--per-day", type=int, default=1_000_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xray-storage-") as tmp, given_or_embedded(Path(tmp) / "pgdata") as dsn:
        asyncio.run(measure(dsn, args.traces, args.per_day))


if __name__ == "__main__":
    main()
