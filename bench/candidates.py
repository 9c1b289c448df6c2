"""Candidate outcomes at scale (issue 18): ingest, storage and the answers, measured side by side.

Loads ``--runs`` runs (default 10,000) of a pipeline of 3 filter steps, each deciding on 5,000
candidates (ids of 10 characters, like ASINs, drawn from a pool), through the real ingest path: a
``python -m xray_otel serve`` process, OTLP/HTTP protobuf, 4 connections. Then it times:

- ingest: candidate outcomes per second, first send to last acknowledgement (target >= 1,000,000/s);
- storage: bytes per outcome on disk, everything counted (step_outcomes with TOAST and indexes;
  target <= 12);
- one candidate in one run, ``/runs/{id}/candidates/{cid}`` (target p50 < 20 ms);
- one id's history across the runs, ``/pipelines/{name}/candidates/{cid}``: the first page, and the
  whole walk following the cursor, for an id in every run and for one in about 1 run in 100
  (target p50 < 300 ms for "one id's history across all those runs");
- ``/pipelines/{name}/never-survives`` over its default 200 runs.

    python bench/candidates.py            # 10,000 runs: about 10 minutes on the 2-core dev machine
    python bench/candidates.py --runs 500 # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import string
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).parent))

from ingest import PROTOBUF, CpuMeter, Receiver, get_timed, postmaster_pid, send_all  # noqa: E402  (the same receiver and sender)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue  # noqa: E402
from opentelemetry.proto.resource.v1.resource_pb2 import Resource  # noqa: E402
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span  # noqa: E402

from xray_otel import conventions as c  # noqa: E402
from xray_otel.store.embedded import given_or_embedded  # noqa: E402

PIPELINE = "competitor_selection_bench"
CANDIDATES, STEPS = 5_000, ("filter_by_price", "filter_by_rating", "filter_by_stock")
REASONS = {"filter_by_price": ["price_too_high", "price_too_low"], "filter_by_rating": ["rating_below_4"],
           "filter_by_stock": ["out_of_stock", "ships_late", "seller_blocked"]}
VARIANTS = 64  # distinct candidate draws; runs cycle through them (ids differ per draw)
EVERYWHERE = "B0EVERYRUN"  # in every run
MS = 1_000_000
SIZE = """SELECT pg_total_relation_size('step_outcomes') AS bytes, coalesce(sum(n), 0)::bigint AS outcomes
          FROM step_outcomes"""


def _ids(rng: random.Random, n: int) -> list[str]:
    alphabet = string.ascii_uppercase + string.digits
    return ["B0" + "".join(rng.choices(alphabet, k=8)) for _ in range(n)]


def _array(values: list[Any], kind: str) -> AnyValue:
    return AnyValue(array_value=ArrayValue(values=[AnyValue(**{kind: v}) for v in values]))


def _variants(rng: random.Random, pool: list[str], rare: str) -> tuple[list[list[bytes]], list[list[str]]]:
    """Per variant, per step, the serialized outcome attributes (appended to a span's own bytes: repeated
    fields of a protobuf message concatenate); and per variant its ids."""
    variants, drawn = [], []
    for v in range(VARIANTS):
        ids = rng.sample(pool, CANDIDATES - 1) + [EVERYWHERE]
        if v == 0:
            ids[17] = rare  # variant 0 runs once in 64: about 1 run in 64 holds it
        rng.shuffle(ids)
        drawn.append(ids)
        steps = []
        for name in STEPS:
            reasons = REASONS[name]
            codes = [0 if rng.random() < 0.6 else rng.randint(1, len(reasons)) for _ in ids]
            attrs = [KeyValue(key=c.OUTCOME_IDS, value=_array(ids, "string_value")),
                     KeyValue(key=c.OUTCOME_CODES, value=_array(codes, "int_value")),
                     KeyValue(key=c.OUTCOME_REASONS, value=_array(reasons, "string_value")),
                     KeyValue(key=c.OUTCOME_TOTAL, value=AnyValue(int_value=len(ids))),
                     KeyValue(key=c.STEP_INPUT_COUNT, value=AnyValue(int_value=len(ids))),
                     KeyValue(key=c.STEP_OUTPUT_COUNT, value=AnyValue(int_value=codes.count(0)))]
            steps.append(Span(attributes=attrs).SerializeToString())
        variants.append(steps)
    return variants, drawn


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    size, head = len(payload), bytearray([number << 3 | 2])
    while True:
        byte, size = size & 0x7F, size >> 7
        head.append(byte | (0x80 if size else 0))
        if not size:
            return bytes(head) + payload


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _body(runs: list[tuple[int, float]], variants: list[list[bytes]], traces: dict[str, int]) -> bytes:
    """One OTLP request holding the runs given as (index, start in seconds); each run's id (its trace id)
    goes into ``traces`` with its index."""
    spans = []
    for index, start in runs:
        trace = random.randbytes(16)
        traces[str(uuid.UUID(bytes=trace))] = index
        t0 = int(start * 1e9)
        root = (index << 8 | 1).to_bytes(8, "big")
        spans.append(Span(trace_id=trace, span_id=root, name=PIPELINE, start_time_unix_nano=t0,
                          end_time_unix_nano=t0 + 10 * MS, attributes=[_kv(c.KIND, c.KIND_RUN)]).SerializeToString())
        for k, name in enumerate(STEPS):
            head = Span(trace_id=trace, span_id=(index << 8 | (k + 2)).to_bytes(8, "big"), parent_span_id=root,
                        name=name, start_time_unix_nano=t0 + (k + 1) * MS, end_time_unix_nano=t0 + (k + 2) * MS,
                        attributes=[_kv(c.KIND, c.KIND_STEP), _kv(c.STEP_TYPE, "filter")]).SerializeToString()
            spans.append(head + variants[index % VARIANTS][k])
    scope = ScopeSpans(scope={"name": "xray-bench"}).SerializeToString() + b"".join(_field(2, s) for s in spans)
    resource = ResourceSpans(resource=Resource(attributes=[_kv("service.name", "candidates-bench")])).SerializeToString()
    return _field(1, resource + _field(2, scope))


def _timed(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"p50 {statistics.median(ordered) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   (n={len(ordered)})"


async def _walk(session: aiohttp.ClientSession, url: str) -> tuple[float, int, int, int]:
    """Follow the cursor to the end: (seconds, pages, runs with the candidate, runs read)."""
    started, pages, found, read, cursor = time.perf_counter(), 0, 0, 0, None
    while True:
        _, page = await get_timed(session, url + (f"&cursor={quote(cursor)}" if cursor else ""))
        pages, found, read = pages + 1, found + len(page["runs"]), read + page["summary"]["runs_read"]
        cursor = page["next_cursor"]
        if cursor is None:
            return time.perf_counter() - started, pages, found, read


async def _indexed(dsn: str, session: aiohttp.ClientSession, base: str) -> None:
    """Wait until every whole hour of the pipeline is indexed (the first read asked for them), and print
    what building the index took: background work, after ingest, never during it."""
    started = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        wanted = await conn.fetchval("""SELECT count(DISTINCT floor(extract(epoch FROM started_at) / 3600))
                                        FROM runs WHERE name = $1 AND started_at < date_trunc('hour', now())""",
                                     PIPELINE)
        while (done := await conn.fetchval("SELECT count(*) FROM candidate_hours WHERE name = $1", PIPELINE)) < wanted:
            await asyncio.sleep(1)
        size = await conn.fetchval("""SELECT pg_total_relation_size('candidate_hours')
                                          + pg_total_relation_size('candidate_hour_shards')""")
        outcomes = await conn.fetchval("SELECT sum(n) FROM step_outcomes")
    finally:
        await conn.close()
    took = time.perf_counter() - started
    print(f"index:    {done} hours indexed in {took:.0f} s after the first read; {size / 2**20:,.0f} MiB, "
          f"{size / outcomes:.2f} bytes per outcome on top of the outcomes")


async def bench(args: argparse.Namespace, dsn: str, tmp: Path) -> None:
    rng = random.Random(7)
    pool = _ids(rng, args.pool)
    rare = _ids(rng, 1)[0]
    variants, drawn = _variants(rng, pool, rare)
    now = time.time()
    span = 6 * 86400 / args.runs  # spread over the 6 days before now: inside the endpoints' default window
    starts = [(i, now - 6 * 86400 + i * span) for i in range(args.runs)]
    traces: dict[str, int] = {}
    bodies = [_body(starts[i:i + args.runs_per_request], variants, traces)
              for i in range(0, args.runs, args.runs_per_request)]
    outcomes = args.runs * len(STEPS) * CANDIDATES
    print(f"workload: {args.runs:,} runs x {len(STEPS)} filter steps x {CANDIDATES:,} candidates = {outcomes:,} "
          f"outcomes; ids of 10 characters from a pool of {args.pool:,}; {len(bodies):,} requests of "
          f"{args.runs_per_request} runs ({sum(map(len, bodies)) / len(bodies) / 2**20:.2f} MiB each)")
    receiver = Receiver(dsn, tmp / "receiver.log", workers=args.workers)
    try:
        await receiver.wait_ready()
        conn = await asyncpg.connect(dsn)
        meter = CpuMeter(receiver.proc.pid, await postmaster_pid(conn))
        await conn.close()
        before = meter.sample()
        elapsed, _ = await send_all(receiver.url + "/v1/traces", bodies, PROTOBUF, args.connections)
        used = {k: v - before[k] for k, v in meter.sample().items()}
        del bodies
        print(f"ingest:   {outcomes / elapsed:,.0f} outcomes/s with {args.workers} receiver process(es) ({elapsed:.1f} s; "
              f"target >= 1,000,000/s); CPU s per "
              f"million outcomes: receiver {used['receiver'] / outcomes * 1e6:.2f}, PostgreSQL "
              f"{used['postgres'] / outcomes * 1e6:.2f}, load generator {used['loadgen'] / outcomes * 1e6:.2f} (2 cores)")
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("VACUUM ANALYZE step_outcomes")
            size = await conn.fetchrow(SIZE)
            runs = [str(r["id"]) for r in await conn.fetch("SELECT id FROM runs WHERE name = $1", PIPELINE)]
        finally:
            await conn.close()
        if size["outcomes"] != outcomes or len(runs) != args.runs:
            raise SystemExit(f"stored {size['outcomes']:,} outcomes of {len(runs):,} runs, sent {outcomes:,}")
        print(f"storage:  {size['bytes'] / size['outcomes']:.2f} bytes per outcome, everything counted "
              f"({size['bytes'] / 2**20:,.0f} MiB; target <= 12)")
        base = f"{receiver.url}/pipelines/{PIPELINE}"
        async with aiohttp.ClientSession() as session:
            cold, _ = await get_timed(session, f"{base}/candidates/{EVERYWHERE}?limit=10000")
            print(f"history before the index, first page   {cold * 1000:7.0f} ms (reads at most 1,000 runs from rows)")
            await _indexed(dsn, session, base)
            picks = [rng.choice(runs) for _ in range(args.samples)]
            one = [(await get_timed(session, f"{receiver.url}/runs/{run}/candidates/"
                                        f"{rng.choice(drawn[traces[run] % VARIANTS])}"))[0] for run in picks]
            print(f"one candidate, one run          {_timed(one)}   (target p50 < 20 ms)")
            first = [(await get_timed(session, f"{base}/candidates/{EVERYWHERE}?limit=50"))[0] for _ in range(args.samples)]
            print(f"history, first page (50 runs)   {_timed(first)}")
            for who, cid in (("in every run", EVERYWHERE), ("in 1 run of 64", rare)):
                walks = [await _walk(session, f"{base}/candidates/{cid}?limit=10000") for _ in range(args.walks)]
                _, pages, found, read = walks[0]
                print(f"history, whole, id {who:15} {_timed([w[0] for w in walks])}   "
                      f"({pages} page(s), {found:,} runs with it of {read:,} read; target p50 < 300 ms)")
            never = [(await get_timed(session, f"{base}/never-survives"))[0] for _ in range(max(3, args.samples // 5))]
            print(f"never-survives (100 runs)       {_timed(never)}")
        print(f"receiver peak RSS {receiver.peak_rss_mb():,.0f} MiB")
    finally:
        receiver.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--pool", type=int, default=20_000, help="distinct candidate ids (default 20,000)")
    parser.add_argument("--runs-per-request", type=int, default=4)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="receiver processes (serve --workers)")
    parser.add_argument("--samples", type=int, default=30, help="GETs per timed question")
    parser.add_argument("--walks", type=int, default=3, help="whole history walks per id")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="xray-bench-") as tmp, given_or_embedded(Path(tmp) / "pgdata") as dsn:
        asyncio.run(bench(args, dsn, Path(tmp)))


if __name__ == "__main__":
    main()
