"""Query latency at scale: load runs through the real OTLP/HTTP path, then time every endpoint.

    python bench/queries.py                    # 100,000 runs / 1,000,000 steps (+ run spans)
    python bench/queries.py --runs 5000        # a quick smoke run

Starts an embedded PostgreSQL in a temporary directory (or uses XRAY_DATABASE_URL) and the
receiver as its own process, sends protobuf OTLP over 4 connections, VACUUM ANALYZEs, then
GETs each endpoint --repeat times in turn and prints the median and p95. It ends with
EXPLAIN (ANALYZE, BUFFERS) of the /steps drop-rate query as the endpoint builds it, and the
cost a GIN index over decisions would add (the lineage storage decision in migration 0003).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid
import warnings
from pathlib import Path

import aiohttp
import asyncpg
from multidict import MultiDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import Receiver  # noqa: E402  (bench/ingest.py: the receiver as its own process)

from xray_otel.queries.steps import step_query  # noqa: E402
from xray_otel.store import filters  # noqa: E402
from xray_otel.store.embedded import given_or_embedded  # noqa: E402

PIPELINES = [f"pipeline_{i}" for i in range(10)]
SERVICES = [f"svc-{i}" for i in range(5)]
DAY_NS = 86_400 * 10**9
MS = 10**6


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    if not isinstance(value, str):
        value = json.dumps(value)
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _span(trace: bytes, sid: int, parent: int | None, name: str, start: int, dur: int, attrs: dict,
          error: str | None = None) -> Span:
    span = Span(trace_id=trace, span_id=sid.to_bytes(8, "big"), name=name, start_time_unix_nano=start,
                end_time_unix_nano=start + dur, kind=Span.SPAN_KIND_INTERNAL,
                attributes=[_kv(k, v) for k, v in attrs.items()])
    if parent is not None:
        span.parent_span_id = parent.to_bytes(8, "big")
    if error:
        span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=error))
    return span


def run_spans(rng: random.Random, now: int, days: int, steps: int, decisions: int = 20) -> tuple[bytes, list[Span]]:
    """One run: a run span and ``steps`` steps (llm, retrieval, filters, rank, logic), funnel figures,
    sampled decisions on filters and the ranker."""
    trace = rng.randbytes(16)
    base = rng.getrandbits(40) << 8 | 1
    t0 = now - rng.randrange(days * DAY_NS)
    failed = rng.random() < 0.02
    spans = []
    n = rng.randrange(200, 5000)
    t, candidates = t0 + MS, [f"c{rng.getrandbits(32):08x}" for _ in range(decisions)]
    kinds = ["llm", "retrieval"] + ["filter"] * max(1, steps - 4) + ["rank", "logic"]
    for i, kind in enumerate(kinds[:steps]):
        dur = rng.randrange(1, 200) * MS
        attrs: dict = {"xray.kind": "step", "xray.step.type": kind}
        if kind == "llm":
            attrs |= {"xray.step.cost": round(rng.uniform(0.0005, 0.05), 5), "gen_ai.request.model": "gpt-4o-mini"}
        elif kind == "retrieval":
            attrs["xray.step.output_count"] = n
        elif kind in ("filter", "rank"):
            rate = rng.choice((rng.uniform(0, 0.5), rng.uniform(0.5, 0.9), rng.uniform(0.9, 0.999))) \
                if kind == "filter" else 1 - 1 / max(n, 1)
            out = max(1, int(n * (1 - rate))) if kind == "filter" else 1
            reason = rng.choice(("price_too_high", "out_of_stock", "low_rating", "wrong_category"))
            attrs |= {"xray.step.input_count": n, "xray.step.output_count": out,
                      "xray.step.rejections": {reason: n - out}, "xray.step.reasoning": f"threshold {i}",
                      "xray.step.decisions": [{"id": c, "accepted": rng.random() > rate, "reason": reason,
                                               "score": round(rng.random(), 3), "rank": None} for c in candidates]}
            n = out
        spans.append(_span(trace, base + 1 + i, base, f"{kind}_{i}", t, dur, attrs,
                           error="boom" if failed and i == steps - 1 else None))
        t += dur
    tags = {"xray.tag.env": rng.choice(("prod", "staging")), "xray.tag.customer": f"cust-{rng.randrange(500)}"}
    spans.insert(0, _span(trace, base, None, rng.choice(PIPELINES), t0, t - t0 + MS,
                          {"xray.kind": "run", **tags}, error="boom" if failed else None))
    return trace, spans


def big_lineage_run(now: int, candidates: int = 5000) -> tuple[bytes, list[Span]]:
    """One run that recorded every decision (5,000 candidates through three filters)."""
    trace, base = os.urandom(16), 0x10_0000
    ids = [f"item-{i}" for i in range(candidates)]
    spans = [_span(trace, base, None, "lineage_probe", now - 60 * 10**9, 500 * MS, {"xray.kind": "run"})]
    alive = ids
    for step in range(3):
        kept = alive[: len(alive) // 2]
        decisions = [{"id": c, "accepted": c in set(kept), "reason": None if c in set(kept) else f"rule_{step}",
                      "score": 0.5, "rank": None} for c in alive]
        spans.append(_span(trace, base + 1 + step, base, f"filter_{step}", now - 60 * 10**9 + step * 100 * MS,
                           100 * MS, {"xray.kind": "step", "xray.step.type": "filter",
                                      "xray.step.input_count": len(alive), "xray.step.output_count": len(kept),
                                      "xray.step.decisions": decisions}))
        alive = kept
    return trace, spans


def _request(spans: list[Span], service: str) -> bytes:
    rs = ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])
    rs.resource.attributes.append(_kv("service.name", service))
    return ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()


async def load(url: str, args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    now = time.time_ns()
    queue: asyncio.Queue = asyncio.Queue(maxsize=16)
    sample: dict = {}
    sent = {"spans": 0}

    async def producer() -> None:
        for first in range(0, args.runs, args.runs_per_request):
            spans: list[Span] = []
            for _ in range(min(args.runs_per_request, args.runs - first)):
                trace, run = run_spans(rng, now, args.days, args.steps)
                spans += run
                if len(sample.setdefault("runs", [])) < 2:
                    sample["runs"].append(str(uuid.UUID(bytes=trace)))
            await queue.put(_request(spans, rng.choice(SERVICES)))
            sent["spans"] += len(spans)
        trace, spans = big_lineage_run(now)
        sample["lineage_run"] = str(uuid.UUID(bytes=trace))
        await queue.put(_request(spans, "svc-lineage"))
        for _ in range(args.connections):
            await queue.put(None)

    async def sender(session: aiohttp.ClientSession) -> None:
        while (body := await queue.get()) is not None:
            async with session.post(url + "/v1/traces", data=body,
                                    headers={"Content-Type": "application/x-protobuf"}) as resp:
                if resp.status != 200:
                    raise SystemExit(f"ingest refused: {resp.status} {await resp.text()}")

    started = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        await asyncio.gather(producer(), *(sender(session) for _ in range(args.connections)))
    elapsed = time.perf_counter() - started
    print(f"loaded {args.runs:,} runs, {sent['spans']:,} spans in {elapsed:.0f} s "
          f"({sent['spans'] / elapsed:,.0f} spans/s, generation included)", flush=True)
    return sample


async def time_endpoints(url: str, paths: list[tuple[str, str]], repeat: int) -> list[tuple[str, str, float, float, int]]:
    results = []
    async with aiohttp.ClientSession() as session:
        for label, path in paths:
            times, status, count = [], 0, 0
            for _ in range(repeat):
                t = time.perf_counter()
                async with session.get(url + path) as resp:
                    body = await resp.read()
                    status = resp.status
                times.append((time.perf_counter() - t) * 1000)
            if status != 200:
                raise SystemExit(f"{path}: {status} {body[:300]!r}")
            data = json.loads(body)
            count = len(data) if isinstance(data, list) else len(data.get("pipelines", data.get("steps", data.get(
                "path", data.get("funnel", [])))))
            times.sort()
            results.append((label, path, statistics.median(times), times[int(len(times) * 0.95) - 1], count))
            print(f"  {label:<38} median {statistics.median(times):7.1f} ms   p95 {times[int(len(times) * 0.95) - 1]:7.1f} ms"
                  f"   {count:>4} rows   {path}", flush=True)
    return results


async def first_reads(url: str, names: list[str]) -> None:
    """/pipelines/{name}?since=30d when none of its days is stored yet (the loop above reads
    pipeline_0 warm): the first read summarises every step row of the window, then the days are
    stored in the background for the next (migrations/0007)."""
    async with aiohttp.ClientSession() as session:
        for name in names:
            t = time.perf_counter()
            async with session.get(f"{url}/pipelines/{name}?since=30d") as resp:
                await resp.read()
                if resp.status != 200:
                    raise SystemExit(f"/pipelines/{name}: {resp.status}")
            print(f"  first read, no day stored yet:       {(time.perf_counter() - t) * 1000:7.1f} ms   "
                  f"/pipelines/{name}?since=30d", flush=True)


async def bench(args: argparse.Namespace, dsn: str, tmp: Path) -> None:
    receiver = Receiver(dsn, tmp / "receiver.log")
    try:
        await receiver.wait_ready()
        sample = await load(receiver.url, args)
        conn = await asyncpg.connect(dsn)
        try:
            t = time.perf_counter()
            await conn.execute("VACUUM ANALYZE runs")
            await conn.execute("VACUUM ANALYZE steps")
            counts = await conn.fetchrow("SELECT (SELECT count(*) FROM runs) AS runs, (SELECT count(*) FROM steps) AS steps")
            print(f"VACUUM ANALYZE {time.perf_counter() - t:.0f} s; {counts['runs']:,} runs, {counts['steps']:,} step rows "
                  f"(run spans included); PostgreSQL {conn.get_server_version().major}", flush=True)
            run_a, run_b = sample["runs"][0], sample["runs"][1]
            big = sample["lineage_run"]
            small_candidate = await conn.fetchval(
                "SELECT decisions -> 0 ->> 'id' FROM steps WHERE run_id = $1 AND decisions IS NOT NULL LIMIT 1",
                uuid.UUID(run_a))
            q = urllib.parse.quote
            paths = [
                ("/runs", "/runs"),
                ("/runs name", f"/runs?name={PIPELINES[3]}"),
                ("/runs tag", "/runs?tag=customer:cust-42"),
                ("/runs service + since 7d", f"/runs?service={SERVICES[1]}&since=7d"),
                ("/runs text search", "/runs?q=line_7"),
                ("/runs min_cost", "/runs?min_cost=0.045"),
                ("/runs has_error", "/runs?has_error=true"),
                ("/runs sort -duration, since 24h", "/runs?sort=-duration&since=24h"),
                ("/runs sort -cost, since 24h", "/runs?sort=-cost&since=24h"),
                ("/runs sort -cost (all time)", "/runs?sort=-cost"),
                ("/runs sort -step_count (all time)", "/runs?sort=-step_count"),
                ("/runs/{id}", f"/runs/{run_a}"),
                ("/analyze/{id}", f"/analyze/{run_a}"),
                ("/steps", "/steps"),
                ("/steps filter >90% by drop rate", "/steps?type=filter&min_drop_rate=0.9&sort=-drop_rate"),
                ("/steps filter >90% newest", "/steps?type=filter&min_drop_rate=0.9"),
                ("/steps run_name + tag", f"/steps?run_name={PIPELINES[2]}&tag=env:prod"),
                ("/steps has_error", "/steps?has_error=true"),
                ("/steps min_input_count, since 24h", "/steps?min_input_count=4000&since=24h"),
                ("/steps sort -cost, type llm, 24h", "/steps?type=llm&sort=-cost&since=24h"),
                ("/steps sort -duration (all)", "/steps?sort=-duration"),
                ("/runs/{id}/candidates/{c}", f"/runs/{run_a}/candidates/{q(small_candidate)}"),
                ("/runs/{id}/candidates (5k/step run)", f"/runs/{big}/candidates?accepted=false&step=filter_1"),
                ("/runs/{id}/candidates/{c} (5k/step)", f"/runs/{big}/candidates/item-3000"),
                ("/compare", f"/compare?base={run_a}&other={run_b}"),
                ("/pipelines (24h)", "/pipelines"),
                ("/pipelines since 30d", "/pipelines?since=30d"),
                ("/pipelines/{name} (24h)", f"/pipelines/{PIPELINES[0]}"),
                ("/pipelines/{name} since 30d", f"/pipelines/{PIPELINES[0]}?since=30d"),
            ]
            print(f"\nmedian of {args.repeat} sequential GETs each (client on the same machine):", flush=True)
            await time_endpoints(receiver.url, paths, args.repeat)
            await first_reads(receiver.url, PIPELINES[1:4])

            statement, values = filters.search_steps(*step_query(MultiDict(type="filter", min_drop_rate="0.9",
                                                                          sort="-drop_rate")))
            plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *values)
            text = "\n".join(r[0] for r in plan)
            print("\nEXPLAIN (ANALYZE, BUFFERS) GET /steps?type=filter&min_drop_rate=0.9&sort=-drop_rate\n" + text)
            print(f"uses steps_drop_rate_idx: {'steps_drop_rate_idx' in text}")

            t = time.perf_counter()
            await conn.execute("CREATE INDEX bench_decisions_gin ON steps USING gin (decisions jsonb_path_ops)")
            built = time.perf_counter() - t
            size = await conn.fetchval("SELECT pg_size_pretty(pg_relation_size('bench_decisions_gin'))")
            table = await conn.fetchval("SELECT pg_size_pretty(pg_relation_size('steps'))")
            await conn.execute("DROP INDEX bench_decisions_gin")
            print(f"\nlineage storage: a GIN index over steps.decisions would take {built:.1f} s to build and {size} "
                  f"(steps heap {table}); every lineage query is for one run, which the primary key narrows, "
                  "so it is not created (timings above are without it)")
        finally:
            await conn.close()
    finally:
        receiver.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=10, help="steps per run, besides the run span (default 10)")
    parser.add_argument("--days", type=int, default=30, help="spread run start times over this many days")
    parser.add_argument("--runs-per-request", type=int, default=50)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", module="platformdirs")
    with tempfile.TemporaryDirectory(prefix="xray-bench-q-") as tmp, given_or_embedded(Path(tmp) / "pgdata") as dsn:
        asyncio.run(bench(args, dsn, Path(tmp)))


if __name__ == "__main__":
    main()
