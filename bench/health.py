"""Pipeline health read speed (issue 20): /pipelines/{name}/series and /changes over a month of runs.

    python bench/health.py                 # 30 days x 333 runs/day x 10 steps, one pipeline
    python bench/health.py --days 7        # a quick smoke run

Starts an embedded PostgreSQL in a temporary directory (or uses XRAY_DATABASE_URL) and the receiver
as its own process, sends backdated runs as protobuf OTLP/HTTP, VACUUM ANALYZEs, reads each endpoint
once cold (no day summary stored yet), waits for the background refresher to store the days, then
GETs each endpoint --repeat times and prints p50 and p95 beside the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import aiohttp
import asyncpg
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import PROTOBUF, Receiver, get_timed, send_all  # noqa: E402  (bench/ingest.py: the receiver, the sender)

from xray_otel.store.embedded import given_or_embedded  # noqa: E402

NAME = "health_bench"
MS, DAY_NS = 10**6, 86_400 * 10**9
TARGETS = {"series 30d by day": 100, "series 30d by hour": 300, "changes (pipeline)": 200, "changes (all)": 200}


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value if isinstance(value, str) else json.dumps(value)))


def run_spans(rng: random.Random, start_ns: int, steps: int) -> list[Span]:
    """A run of NAME: ``steps`` filter-like steps, each with counts, two or three reasons, a cost and a duration."""
    trace = rng.randbytes(16)
    base = rng.getrandbits(48) << 8
    spans = [Span(trace_id=trace, span_id=base.to_bytes(8, "big"), name=NAME, start_time_unix_nano=start_ns,
                  end_time_unix_nano=start_ns + 900 * MS, attributes=[_kv("xray.kind", "run")])]
    n = rng.randrange(500, 5000)
    for i in range(steps):
        p = rng.betavariate(20 * (0.1 + 0.04 * i), 20 * (0.9 - 0.04 * i))
        out = round(n * (1 - p))
        reasons = {f"reason_{i}_{k}": round((n - out) * w) for k, w in enumerate((0.6, 0.3, 0.1)[:2 + i % 2])}
        attrs = [_kv("xray.kind", "step"), _kv("xray.step.type", "filter"), _kv("xray.step.input_count", n),
                 _kv("xray.step.output_count", out), _kv("xray.step.rejections", reasons),
                 _kv("xray.step.cost", round(rng.uniform(0, 0.002), 6))]
        t0 = start_ns + (i + 1) * 50 * MS
        spans.append(Span(trace_id=trace, span_id=(base + i + 1).to_bytes(8, "big"), parent_span_id=spans[0].span_id,
                          name=f"step_{i}", start_time_unix_nano=t0,
                          end_time_unix_nano=t0 + int(rng.lognormvariate(3, 0.5) * MS), attributes=attrs))
        n = max(out, 1)
    return spans


def _request(spans: list[Span]) -> bytes:
    rs = ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])
    rs.resource.attributes.append(_kv("service.name", "health-bench"))
    return ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()


async def load(url: str, args: argparse.Namespace) -> None:
    rng, now = random.Random(args.seed), time.time_ns()
    total = args.days * args.runs_per_day
    starts = sorted(now - rng.randrange(0, args.days * DAY_NS) for _ in range(total))
    bodies = [_request([s for start in starts[first:first + 50] for s in run_spans(rng, start, args.steps)])
              for first in range(0, total, 50)]
    seconds, _ = await send_all(url + "/v1/traces", bodies, PROTOBUF, 4)
    print(f"loaded {total:,} runs x {args.steps} steps over {args.days} days in {seconds:.0f} s", flush=True)


FORGET_SUMMARIES = """DELETE FROM pipeline_step_days; DELETE FROM pipeline_days;
DELETE FROM pipeline_step_hours; DELETE FROM pipeline_hours"""
# Whole UTC days and hours before the current one that have runs of NAME, and how many of each are stored.
STORED = """SELECT count(DISTINCT date_trunc('day', started_at AT TIME ZONE 'UTC'))
         FILTER (WHERE started_at < date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS days,
       count(DISTINCT date_trunc('hour', started_at AT TIME ZONE 'UTC'))
         FILTER (WHERE started_at < date_trunc('hour', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS hours,
       (SELECT count(*) FROM pipeline_days WHERE name = $1) AS stored_days,
       (SELECT count(*) FROM pipeline_hours WHERE name = $1) AS stored_hours
FROM runs WHERE name = $1"""


async def wait_stored(conn: asyncpg.Connection, days: int) -> None:
    """Until the background refresher has stored the whole days the reads asked for (all but the first,
    a part-day) and every whole hour (the hourly read asked for them all); says so when it gives up."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        row = await conn.fetchrow(STORED, NAME)
        if row["stored_days"] >= min(row["days"], days) - 1 and row["stored_hours"] >= row["hours"] - 1:
            print(f"stored: {row['stored_days']} days, {row['stored_hours']} hours", flush=True)
            return
        await asyncio.sleep(0.5)
    print(f"not all summaries stored after 5 minutes: {dict(row)}; timing anyway", flush=True)


async def bench(args: argparse.Namespace, dsn: str, tmp: Path) -> None:
    receiver = Receiver(dsn, tmp / "receiver.log")
    try:
        await receiver.wait_ready()
        conn = await asyncpg.connect(dsn)
        try:
            if args.reuse and await conn.fetchval("SELECT count(*) FROM runs WHERE name = $1", NAME):
                print("reusing the runs loaded before (--reuse); forgetting stored summaries", flush=True)
                await conn.execute(FORGET_SUMMARIES)
            else:
                await load(receiver.url, args)
            await conn.execute("VACUUM ANALYZE")
            paths = {"series 30d by day": f"/pipelines/{NAME}/series?since={args.days}d&bucket=day",
                     "series 30d by hour": f"/pipelines/{NAME}/series?since={args.days}d&bucket=hour",
                     "changes (pipeline)": f"/pipelines/{NAME}/changes",
                     "changes (all)": "/changes"}
            async with aiohttp.ClientSession() as session:
                for label, path in paths.items():
                    try:
                        seconds, _ = await get_timed(session, receiver.url + path)
                    except SystemExit as exc:  # a read the server gave up on: say so, time the rest
                        print(f"  first read, no day stored yet: {label:<20} failed: {exc}", flush=True)
                        continue
                    print(f"  first read, no day stored yet: {label:<20} {seconds * 1000:7.1f} ms   {path}", flush=True)
                await wait_stored(conn, args.days)
                print(f"\n{args.repeat} sequential GETs each, days stored (client on the same machine):")
                print(f"  {'':<22}{'p50 ms':>9}{'p95 ms':>9}{'target p50':>12}")
                for label, path in paths.items():
                    times = []
                    try:
                        for _ in range(args.repeat):
                            seconds, body = await get_timed(session, receiver.url + path)
                            times.append(seconds * 1000)
                    except SystemExit as exc:
                        print(f"  {label:<22} failed: {exc}", flush=True)
                        continue
                    times.sort()
                    p95 = times[max(0, int(len(times) * 0.95) - 1)]
                    extra = (f"{len(body['buckets'])} buckets" if "buckets" in body
                             else f"{sum(c['significant'] for c in body['changes'])} significant of {len(body['changes'])}")
                    print(f"  {label:<22}{statistics.median(times):9.1f}{p95:9.1f}{'< ' + str(TARGETS[label]):>12}"
                          f"   {extra}", flush=True)
        finally:
            await conn.close()
    finally:
        receiver.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs-per-day", type=int, default=333)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--reuse", action="store_true",
                        help="with XRAY_DATABASE_URL: keep runs a previous run loaded (their times age with the clock)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", module="platformdirs")
    with tempfile.TemporaryDirectory(prefix="xray-bench-h-") as tmp, given_or_embedded(Path(tmp) / "pgdata") as dsn:
        asyncio.run(bench(args, dsn, Path(tmp)))


if __name__ == "__main__":
    main()
