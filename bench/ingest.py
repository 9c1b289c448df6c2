"""Ingest benchmark (issue 7): spans/s through a running receiver into PostgreSQL, side by
side with what PostgreSQL itself takes for the same rows.

    python bench/ingest.py            # about 1-2 minutes
    python bench/ingest.py --quick    # smoke run, well under a minute

Three processes share the machine: this load generator, the receiver (``python -m
xray_otel serve``) and PostgreSQL (embedded in a temporary directory, or
XRAY_DATABASE_URL). Every payload is built and serialised before a clock starts.
It prints figures and ratios; it fails only when data did not arrive intact.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import grpc
import psutil
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

import xray_otel
from xray_otel import conventions as c
from xray_otel.config import Settings
from xray_otel.mapping.rows import Batch, StepRow
from xray_otel.mapping.spans import map_request
from xray_otel.store import sql
from xray_otel.store.store import Store
from xray_otel.receiver.grpc import SERVICE
from xray_otel.store.embedded import given_or_embedded

ORIGINAL_BACKEND = 2_200  # events/s, the original X-Ray backend on this machine (issue 7)
TARGET_VS_REFERENCE, TARGET_VS_ORIGINAL, TARGET_TRANSPORTS = 0.35, 20, 0.75  # gRPC, JSON within 25%
TARGET_LEGACY = 10  # legacy /ingest: at least 10x the original backend
PROTOBUF, JSON = "application/x-protobuf", "application/json"
MS = 1_000_000

# --- workload: 1 run span + 5 steps per trace, ~300 B of JSON per step ------------------------
_COMMON = {"pipeline": "competitor-selection-v2", "region": "us-east-1"}
_STEPS = (
    ("llm", "extract_keywords", {
        c.STEP_INPUTS: {"title": "Stainless steel water bottle, 32 oz, vacuum insulated, leak-proof lid",
                        "category": "Kitchen & Dining", "temperature": 0.2},
        c.STEP_OUTPUTS: {"keywords": ["water bottle", "insulated", "stainless steel", "32 oz", "leak proof"]},
        c.STEP_METADATA: {**_COMMON, "prompt_version": "keywords-v7", "latency_ms": 412, "attempt": 1, "cached": False},
        c.GEN_AI_REQUEST_MODEL: "gpt-4o-mini", c.GEN_AI_INPUT_TOKENS: 180, c.GEN_AI_OUTPUT_TOKENS: 24,
        c.STEP_INPUT_COUNT: 1, c.STEP_OUTPUT_COUNT: 5}),
    ("retrieval", "search_catalog", {
        c.STEP_INPUTS: {"query": "insulated stainless steel water bottle 32 oz", "index": "products-v3", "k": 5000},
        c.STEP_OUTPUTS: {"top": [{"id": "B07A1", "score": 0.91}, {"id": "B07A2", "score": 0.88},
                                 {"id": "B07A3", "score": 0.86}], "total": 5000},
        c.STEP_METADATA: {**_COMMON, "shards": 4, "latency_ms": 38, "cache": "miss", "ranker": "bm25+vector"},
        c.STEP_INPUT_COUNT: 5, c.STEP_OUTPUT_COUNT: 5000}),
    ("filter", "filter_price", {
        c.STEP_INPUTS: {"max_price": 45.0, "currency": "USD", "candidates": 5000, "reference_id": "B0001"},
        c.STEP_OUTPUTS: {"kept": [{"id": "B07A1", "price": 29.99}, {"id": "B07A3", "price": 34.5}], "count": 300},
        c.STEP_METADATA: {**_COMMON, "rule": "price <= 1.5 * reference_price", "reference_price": 30.0, "version": 3},
        c.STEP_INPUT_COUNT: 5000, c.STEP_OUTPUT_COUNT: 300,
        c.STEP_REJECTIONS: {"price_too_high": 4650, "missing_price": 50}}),
    ("filter", "filter_rating", {
        c.STEP_INPUTS: {"min_rating": 4.0, "min_reviews": 50, "candidates": 300, "source": "reviews-db"},
        c.STEP_OUTPUTS: {"kept": [{"id": "B07A1", "rating": 4.7}, {"id": "B07A3", "rating": 4.4}], "count": 30},
        c.STEP_METADATA: {**_COMMON, "rule": "rating >= 4.0 and reviews >= 50", "snapshot": "2024-06-01", "version": 2},
        c.STEP_INPUT_COUNT: 300, c.STEP_OUTPUT_COUNT: 30,
        c.STEP_REJECTIONS: {"low_rating": 240, "few_reviews": 30}}),
    ("logic", "pick_best", {
        c.STEP_INPUTS: {"candidates": ["B07A1", "B07A3", "B07A7", "B07A9"], "strategy": "highest_score"},
        c.STEP_OUTPUTS: {"selected": "B07A1", "score": 0.93, "runner_up": "B07A3", "margin": 0.05},
        c.STEP_METADATA: {**_COMMON, "tie_break": "price", "weights": {"rating": 0.6, "price": 0.3, "brand": 0.1}},
        c.STEP_INPUT_COUNT: 30, c.STEP_OUTPUT_COUNT: 1, c.STEP_REASONING: "best rating per dollar"}),
)
SPANS_PER_TRACE = 1 + len(_STEPS)


def _set_attrs(span: Span, attrs: dict[str, Any]) -> None:
    for key, value in attrs.items():
        kv = span.attributes.add(key=key)
        if isinstance(value, (dict, list)):
            kv.value.string_value = json.dumps(value, separators=(",", ":"))
        elif isinstance(value, int):
            kv.value.int_value = value
        else:
            kv.value.string_value = value


def _templates(run_name: str) -> list[Span]:
    run = Span(name=run_name, kind=Span.SPAN_KIND_INTERNAL)
    _set_attrs(run, {c.KIND: c.KIND_RUN, c.RUN_INPUTS: {"product": "B0001"},
                     c.RUN_OUTPUTS: {"selected": "B07A1"}, c.TAG_PREFIX + "bench": run_name})
    spans = [run]
    for step_type, name, attrs in _STEPS:
        span = Span(name=name, kind=Span.SPAN_KIND_INTERNAL)
        _set_attrs(span, {c.KIND: c.KIND_STEP, c.STEP_TYPE: step_type, **attrs})
        spans.append(span)
    return spans


def build_requests(traces: int, batch: int, service: str, run_name: str) -> list[ExportTraceServiceRequest]:
    """``traces`` fresh traces in requests of ``batch`` spans (a trace may straddle two requests)."""
    templates = _templates(run_name)
    requests: list[ExportTraceServiceRequest] = []
    spans: Any = None
    start = time.time_ns() - traces * 10_000
    for i in range(traces):
        trace_id, base = os.urandom(16), int.from_bytes(os.urandom(6), "big") << 8 | 1
        t = start + i * 10_000
        for k, template in enumerate(templates):
            if spans is None or len(spans) == batch:
                request = ExportTraceServiceRequest()
                resource_spans = request.resource_spans.add()
                resource_spans.resource.attributes.add(key="service.name").value.string_value = service
                scope_spans = resource_spans.scope_spans.add()
                scope_spans.scope.name = "xray-bench"
                spans = scope_spans.spans
                requests.append(request)
            span = spans.add()
            span.CopyFrom(template)
            span.trace_id, span.span_id = trace_id, (base + k).to_bytes(8, "big")
            if k:
                span.parent_span_id = base.to_bytes(8, "big")
                span.start_time_unix_nano, span.end_time_unix_nano = t + k * MS, t + (k + 1) * MS
            else:
                span.start_time_unix_nano, span.end_time_unix_nano = t, t + (len(templates) + 1) * MS
    return requests


def otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON: protobuf's JSON mapping, but ids in hex and enums as integers."""
    document = MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(document, separators=(",", ":")).encode()


def legacy_bodies(traces: int, batch: int, run_name: str) -> list[bytes]:
    """The same traces as the original SDK's /ingest events: run_complete + step_complete each, ``batch`` a body."""
    events: list[dict[str, Any]] = []
    start = time.time() - traces / 100_000
    for i in range(traces):
        run_id, t = str(uuid.uuid4()), start + i / 100_000
        events.append({"type": "run_complete", "data": {
            "id": run_id, "name": run_name, "started_at": _iso(t), "completed_at": _iso(t + 0.006),
            "inputs": {"product": "B0001"}, "outputs": {"selected": "B07A1"}, "tags": {"bench": run_name}}})
        for k, (step_type, name, attrs) in enumerate(_STEPS, 1):
            metadata = {**attrs[c.STEP_METADATA], "input_count": attrs[c.STEP_INPUT_COUNT],
                        "output_count": attrs[c.STEP_OUTPUT_COUNT]}
            if c.STEP_REJECTIONS in attrs:
                metadata["rejections"] = attrs[c.STEP_REJECTIONS]
            events.append({"type": "step_complete", "data": {
                "id": str(uuid.uuid4()), "run_id": run_id, "name": name, "type": step_type,
                "inputs": attrs[c.STEP_INPUTS], "outputs": attrs[c.STEP_OUTPUTS], "metadata": metadata,
                "reasoning": attrs.get(c.STEP_REASONING), "started_at": _iso(t + k / 1000),
                "completed_at": _iso(t + (k + 1) / 1000)}})
    return [json.dumps({"events": events[i:i + batch]}, separators=(",", ":")).encode()
            for i in range(0, len(events), batch)]


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")


# --- load generator -------------------------------------------------------------------------
@dataclass
class Result:
    spans: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.spans / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


async def _post(session: aiohttp.ClientSession, url: str, body: bytes, content_type: str) -> None:
    async with session.post(url, data=body, headers={"Content-Type": content_type}) as resp:
        reply = await resp.read()
    if resp.status != 200:
        raise SystemExit(f"receiver answered {resp.status}: {reply[:300]!r}")
    if url.endswith("/ingest"):
        rejected = 0 if json.loads(reply).get("status") == "ok" else reply
    elif content_type == JSON:
        rejected = json.loads(reply).get("partialSuccess", {}).get("rejectedSpans", 0)
    else:
        rejected = ExportTraceServiceResponse.FromString(reply).partial_success.rejected_spans
    if rejected:
        raise SystemExit(f"receiver rejected {rejected} spans: {reply[:300]!r}")


async def send_all(url: str, bodies: list[bytes], content_type: str, connections: int) -> tuple[float, list[float]]:
    """Closed loop: ``connections`` keep-alive connections, each sending its next body when acknowledged."""
    latencies: list[float] = []
    pending = iter(bodies)

    async def worker(session: aiohttp.ClientSession) -> None:
        for body in pending:
            sent = time.perf_counter()
            await _post(session, url, body, content_type)
            latencies.append(time.perf_counter() - sent)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        return time.perf_counter() - started, latencies


async def get_timed(session: aiohttp.ClientSession, url: str) -> tuple[float, Any]:
    """One GET: (seconds until its body was read, the JSON body); a status other than 200 stops the bench."""
    started = time.perf_counter()
    async with session.get(url) as resp:
        body = await resp.read()
    if resp.status != 200:
        raise SystemExit(f"GET {url}: {resp.status} {body[:300]!r}")
    return time.perf_counter() - started, json.loads(body)


async def send_steady(url: str, bodies: list[bytes], interval: float, connections: int) -> tuple[float, list[float]]:
    """Open loop: one body every ``interval`` s; latency counts from the scheduled send, queueing included."""
    latencies: list[float] = []

    async def one(session: aiohttp.ClientSession, body: bytes, due: float) -> None:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        await _post(session, url, body, PROTOBUF)
        latencies.append(time.perf_counter() - due)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        started = time.perf_counter() + 0.05
        await asyncio.gather(*(one(session, b, started + i * interval) for i, b in enumerate(bodies)))
        return time.perf_counter() - started, latencies


async def probing(url: str, load: Any, latencies: list[float]) -> Any:
    """Await ``load`` while GETting ``url`` every 50 ms, each latency into ``latencies``: how long
    other clients wait on a receiver busy with it."""
    waiting: list[float] = []  # when the probe in flight was sent

    async def probe(session: aiohttp.ClientSession) -> None:
        while True:
            waiting[:] = [time.perf_counter()]
            async with session.get(url) as resp:
                await resp.read()
            latencies.append(time.perf_counter() - waiting.pop())
            await asyncio.sleep(0.05)

    async with aiohttp.ClientSession() as session:
        prober = asyncio.create_task(probe(session))
        try:
            return await load
        finally:
            prober.cancel()
            await asyncio.gather(prober, return_exceptions=True)
            latencies.extend(time.perf_counter() - sent for sent in waiting)  # unanswered so far: counts too


async def send_grpc(target: str, bodies: list[bytes], connections: int) -> tuple[float, list[float]]:
    """Closed loop over OTLP/gRPC: one channel (own TCP connection) per connection, bytes sent as serialised."""
    latencies: list[float] = []
    pending = iter(bodies)
    options = [("grpc.max_send_message_length", -1), ("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(connections)]

    async def worker(channel: grpc.aio.Channel) -> None:
        export = channel.unary_unary(f"/{SERVICE}/Export", response_deserializer=ExportTraceServiceResponse.FromString)
        for body in pending:
            sent = time.perf_counter()
            reply = await export(body)
            latencies.append(time.perf_counter() - sent)
            if reply.partial_success.rejected_spans:
                raise SystemExit(f"receiver rejected {reply.partial_success.rejected_spans} spans over gRPC")

    try:
        await asyncio.gather(*(channel.channel_ready() for channel in channels))
        started = time.perf_counter()
        await asyncio.gather(*(worker(channel) for channel in channels))
        return time.perf_counter() - started, latencies
    finally:
        await asyncio.gather(*(channel.close() for channel in channels))


# --- the three processes --------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """``python -m xray_otel serve`` in its own process."""

    def __init__(self, dsn: str, log_path: Path, workers: int = 1) -> None:
        self.port, self.grpc_port = _free_port(), _free_port()
        self.url, self.grpc_target = f"http://127.0.0.1:{self.port}", f"127.0.0.1:{self.grpc_port}"
        self._log = log_path.open("wb")
        # The same xray_otel this script imported, whatever the working directory holds.
        package_root = str(Path(xray_otel.__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "xray_otel", "serve", "--port", str(self.port), "--grpc-port", str(self.grpc_port),
             "--database-url", dsn, "--workers", str(workers)],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=log_path.parent, env=env)

    async def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise SystemExit(f"receiver exited with {self.proc.returncode}")
                try:
                    async with session.get(self.url + "/ready") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise SystemExit(f"receiver not ready after {timeout:.0f} s")

    def log_tail(self, lines: int = 20) -> str:
        self._log.flush()
        return "\n".join(Path(self._log.name).read_text(errors="replace").splitlines()[-lines:])

    def peak_rss_mb(self) -> float:
        """The largest peak RSS of the receiver's processes (with --workers, each worker's own)."""
        peaks = [float("nan")]
        for pid in [self.proc.pid, *(p.pid for p in psutil.Process(self.proc.pid).children(recursive=True))]:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        return max(peaks[1:], default=peaks[0])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


class CpuMeter:
    """CPU seconds used by the load generator, the receiver and (when local) PostgreSQL."""

    def __init__(self, receiver_pid: int, postgres_pid: int | None) -> None:
        self.receiver = psutil.Process(receiver_pid)
        self.postgres = psutil.Process(postgres_pid) if postgres_pid else None

    def sample(self) -> dict[str, float]:
        own = time.process_time()
        out = {"receiver": _tree_cpu(self.receiver), "postgres": float("nan"), "loadgen": own}
        if self.postgres is not None:
            p = self.postgres.cpu_times()
            total = p.user + p.system + p.children_user + p.children_system
            for child in self.postgres.children():
                try:
                    t = child.cpu_times()
                    total += t.user + t.system
                except psutil.NoSuchProcess:
                    pass
            out["postgres"] = total
        return out


def _tree_cpu(process: psutil.Process) -> float:
    """CPU seconds of a process and its live descendants (the workers of ``serve --workers N``)."""
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


async def postmaster_pid(conn: asyncpg.Connection) -> int | None:
    """The local postmaster (parent of our backend), or None when PostgreSQL is elsewhere."""
    try:
        backend = psutil.Process(await conn.fetchval("SELECT pg_backend_pid()"))
        parent = backend.parent()
        if "postgres" in backend.name() and parent is not None and "postgres" in parent.name():
            return parent.pid
    except (psutil.Error, asyncpg.PostgresError):
        pass
    return None


async def checkpoint(conn: asyncpg.Connection) -> None:
    """Start each timed phase with no checkpoint debt, so phases are comparable."""
    try:
        await conn.execute("CHECKPOINT")
    except asyncpg.PostgresError:
        pass


async def measured(meter: CpuMeter, conn: asyncpg.Connection, spans: int, coro: Any) -> Result:
    await checkpoint(conn)
    before = meter.sample()
    seconds, latencies = await coro
    after = meter.sample()
    return Result(spans, seconds, latencies, {k: after[k] - before[k] for k in after})


# --- verification: acknowledged means committed and visible ----------------------------------
async def verify(conn: asyncpg.Connection, url: str, run_name: str, traces: int,
                 rows_per_trace: int = SPANS_PER_TRACE) -> None:
    """Every span a step row (legacy /ingest: every step event; a run event makes no step row), every run
    complete and listed by /runs with its steps."""
    steps = await conn.fetchval("SELECT count(*) FROM steps s JOIN runs r ON r.id = s.run_id WHERE r.name = $1",
                                run_name)
    runs = await conn.fetchval("SELECT count(*) FROM runs WHERE name = $1 AND source = 2", run_name)
    listed, bad, cursor = 0, 0, None
    async with aiohttp.ClientSession() as session:
        while True:
            params = {"name": run_name, "limit": "1000", **({"cursor": cursor} if cursor else {})}
            async with session.get(url + "/runs", params=params) as resp:
                page = await resp.json()
                cursor = resp.headers.get("X-Next-Cursor")
            listed += len(page)
            bad += sum(1 for run in page if run["step_count"] != len(_STEPS) or run["status"] != c.STATUS_COMPLETED)
            if not cursor:
                break
    if (steps, runs, listed, bad) != (traces * rows_per_trace, traces, traces, 0):
        raise SystemExit(f"{run_name}: expected {traces * rows_per_trace} steps and {traces} complete runs; "
                         f"found {steps} step rows, {runs} run rows, {listed} runs via /runs ({bad} incomplete)")


# --- reference: the same step rows loaded by asyncpg directly --------------------------------
REF_PLAIN, REF_PK, REF_STAGING = "xray_bench_plain", "xray_bench_pk", "xray_bench_in"
_STEP_COLUMNS = ", ".join(StepRow._fields)
_STAGED = ", ".join(sql.staged(name) for name in StepRow._fields)  # as the receiver's INSERT_STEPS


async def reference(dsn: str, batches: list[list[StepRow]], connections: int, meter: CpuMeter,
                    admin: asyncpg.Connection) -> tuple[Result, Result]:
    """(a) COPY into an unindexed table; (b) COPY into staging + INSERT ... ON CONFLICT DO NOTHING
    into a table with the steps primary key, one transaction per batch. The rows carry times in
    microseconds, as the receiver stages them: (a) keeps them so, (b) converts them as the receiver does."""
    await admin.execute(f"DROP TABLE IF EXISTS {REF_PLAIN}, {REF_PK}")
    await admin.execute(f"CREATE TABLE {REF_PLAIN} (LIKE steps INCLUDING DEFAULTS)")
    await admin.execute(f"ALTER TABLE {REF_PLAIN} {sql.MICROS_COLUMNS}")
    await admin.execute(f"CREATE TABLE {REF_PK} (LIKE steps INCLUDING DEFAULTS, PRIMARY KEY (run_id, span_id))")
    conns = [await asyncpg.connect(dsn) for _ in range(connections)]
    rows = sum(len(b) for b in batches)
    try:
        for conn in conns:
            await conn.execute(f"CREATE TEMP TABLE {REF_STAGING} (LIKE steps INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
            await conn.execute(f"ALTER TABLE {REF_STAGING} {sql.MICROS_COLUMNS}")

        async def run(load: Any) -> tuple[float, list[float]]:
            pending = iter(batches)
            latencies: list[float] = []

            async def worker(conn: asyncpg.Connection) -> None:
                for batch in pending:
                    sent = time.perf_counter()
                    await load(conn, batch)
                    latencies.append(time.perf_counter() - sent)

            started = time.perf_counter()
            await asyncio.gather(*(worker(conn) for conn in conns))
            return time.perf_counter() - started, latencies

        async def plain(conn: asyncpg.Connection, batch: list[StepRow]) -> None:
            await conn.copy_records_to_table(REF_PLAIN, records=batch, columns=StepRow._fields)

        async def staged(conn: asyncpg.Connection, batch: list[StepRow]) -> None:
            async with conn.transaction():
                await conn.copy_records_to_table(REF_STAGING, records=batch, columns=StepRow._fields)
                await conn.execute(f"INSERT INTO {REF_PK} ({_STEP_COLUMNS}) SELECT {_STAGED} FROM {REF_STAGING} i "
                                   "ORDER BY run_id, span_id ON CONFLICT (run_id, span_id) DO NOTHING")

        return (await measured(meter, admin, rows, run(plain)), await measured(meter, admin, rows, run(staged)))
    finally:
        for conn in conns:
            await conn.close()
        await admin.execute(f"DROP TABLE IF EXISTS {REF_PLAIN}, {REF_PK}")


async def open_store(dsn: str, connections: int) -> Store:
    """The receiver's Store, in this process, with every pooled connection open (staging table made)."""
    store = await Store.open(dsn, pool_size=connections)
    held = [await store.pool.acquire() for _ in range(connections)]
    for conn in held:
        await store.pool.release(conn)
    return store


async def store_alone(store: Store, batches: list[Batch], connections: int) -> tuple[float, list[float]]:
    """(c) The receiver's own Store.write in this process (its CPU counts as the load generator's), fed
    batches mapped before the clock: what the storage design allows on this machine with no HTTP,
    decoding or mapping in front of it."""
    pending = iter(batches)
    latencies: list[float] = []

    async def worker() -> None:
        for batch in pending:
            sent = time.perf_counter()
            await store.write(batch)
            latencies.append(time.perf_counter() - sent)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - started, latencies


# --- main -----------------------------------------------------------------------------------
def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spans", type=int, default=150_000, help="spans in the protobuf run (default 150000; "
                   "the JSON and gRPC runs send a third as many)")
    p.add_argument("--quick", action="store_true", help="smoke run: 12000 spans, 3 s steady phase, "
                   "no maximum-size requests")
    p.add_argument("--batch", type=int, default=512, help="spans per request (default 512)")
    p.add_argument("--connections", type=int, default=4, help="concurrent connections (default 4)")
    p.add_argument("--rate", type=int, default=10_000, help="steady phase, spans/s (default 10000)")
    p.add_argument("--steady-seconds", type=float, default=10.0, help="steady phase length (default 10)")
    p.add_argument("--keep-receiver", action="store_true", help="print the receiver pid and wait for a line on "
                   "stdin before the protobuf run (to attach a profiler)")
    args = p.parse_args(argv)
    if args.quick:
        args.spans, args.steady_seconds = min(args.spans, 12_000), 3.0
    return args


def _line(label: str, result: Result, unit: str = "spans/s", extra: str = "") -> None:
    cpu = "  ".join(f"{k} {result.cpu[k]:4.1f}" for k in ("receiver", "postgres", "loadgen"))
    lat = f"p50 {result.percentile(0.50):4.0f} ms  p99 {result.percentile(0.99):4.0f} ms"
    print(f"{label:<34}{result.spans:>8,} in {result.seconds:5.2f} s = {result.rate:>7,.0f} {unit}  {lat}"
          f"  cpu s: {cpu}{extra}", flush=True)


class Workload:
    """Every payload of every phase, built and serialised before any clock starts."""

    def __init__(self, args: argparse.Namespace) -> None:
        started = time.perf_counter()
        tag = os.urandom(4).hex()
        phases = ("proto", "json", "grpc", "legacy", "store", "steady", "max", "workers")
        self.names = {p: (f"xray-bench-{p}-{tag}", f"bench-{p}-{tag}") for p in phases}  # (service, run name)
        self.traces = -(-args.spans // SPANS_PER_TRACE)
        self.json_traces = max(1, self.traces // 3)  # JSON and gRPC runs: a third as many spans
        self.steady_traces = -(-int(args.rate * args.steady_seconds) // SPANS_PER_TRACE)
        proto = build_requests(self.traces, args.batch, *self.names["proto"])
        self.proto = [r.SerializeToString() for r in proto]
        self.json = [otlp_json(r) for r in build_requests(self.json_traces, args.batch, *self.names["json"])]
        self.legacy = legacy_bodies(self.json_traces, args.batch, self.names["legacy"][1])
        self.workers = [r.SerializeToString() for r in build_requests(self.traces, args.batch, *self.names["workers"])]
        self.grpc = [r.SerializeToString() for r in build_requests(self.json_traces, args.batch, *self.names["grpc"])]
        self.steady = [r.SerializeToString() for r in build_requests(self.steady_traces, args.batch,
                                                                     *self.names["steady"])]
        self.warmup = [r.SerializeToString() for r in build_requests(
            2 * args.connections * args.batch // SPANS_PER_TRACE, args.batch, f"xray-bench-warmup-{tag}", "warmup")]
        self.reference = [map_request(r).steps for r in proto]  # the receiver's own rows, for the reference
        # Reference (c): fresh traces, mapped as the receiver maps them, for its store alone.
        self.store = [map_request(r) for r in build_requests(self.traces, args.batch, *self.names["store"])]
        # Requests as large as the receiver accepts by default, one per connection.
        span_bytes = sum(map(len, self.proto)) / self.spans
        per_request = int(0.9 * Settings().max_body_bytes / span_bytes) // SPANS_PER_TRACE
        self.max_traces = 0 if args.quick else per_request * args.connections
        self.max = [r.SerializeToString() for r in build_requests(
            self.max_traces, per_request * SPANS_PER_TRACE, *self.names["max"])]
        self.build_seconds = time.perf_counter() - started

    @property
    def spans(self) -> int:
        return self.traces * SPANS_PER_TRACE

    def describe(self, args: argparse.Namespace) -> str:
        steps = [s for s in self.reference[0] if s.type != "run"]
        attrs = sum(len(a) + 2 for _, _, a in _STEPS) / len(_STEPS)  # + xray.kind, xray.step.type
        json_bytes = sum(len(s.inputs) + len(s.outputs) + len(s.metadata) for s in steps) / len(steps)
        json_spans = self.json_traces * SPANS_PER_TRACE
        return (f"workload: traces of 1 run span + {len(_STEPS)} steps ({', '.join(t for t, _, _ in _STEPS)}); "
                f"{attrs:.1f} attributes and {json_bytes:.0f} B of JSON inputs/outputs/metadata per step\n"
                f"          requests of {args.batch} spans from {args.connections} connections; "
                f"{sum(map(len, self.proto)) / self.spans:.0f} B/span protobuf, "
                f"{sum(map(len, self.json)) / json_spans:.0f} B/span OTLP/JSON; "
                f"all built in {self.build_seconds:.1f} s before any clock")


async def bench(args: argparse.Namespace, dsn: str, workdir: Path) -> None:
    w = Workload(args)
    print(w.describe(args), flush=True)
    admin = await asyncpg.connect(dsn)
    try:
        results, rss = await _one_worker(args, w, dsn, admin, workdir)
        results["workers"] = await _two_workers(args, w, dsn, admin, workdir)
    finally:
        await admin.close()
    _summary(args, w, results, rss)


async def _one_worker(args: argparse.Namespace, w: Workload, dsn: str, admin: asyncpg.Connection,
                      workdir: Path) -> tuple[dict[str, Result], tuple[float, float]]:
    """Every phase against ``serve`` with one worker; returns the results and peak RSS (under load, max size)."""
    receiver = Receiver(dsn, workdir / "receiver.log")
    r: dict[str, Result] = {}
    try:
        await receiver.wait_ready()
        pg = await postmaster_pid(admin)
        meter = CpuMeter(receiver.proc.pid, pg)
        url, n, k = receiver.url + "/v1/traces", w.json_traces * SPANS_PER_TRACE, args.connections
        print(f"processes: load generator (this), receiver pid {receiver.proc.pid}, PostgreSQL "
              f"{admin.get_server_version().major} {f'pid {pg}' if pg else '(not local: no CPU figures)'}; "
              f"{os.cpu_count()} cores\n", flush=True)
        await send_all(url, w.warmup, PROTOBUF, k)
        if args.keep_receiver:
            print(f"receiver pid {receiver.proc.pid}: attach a profiler, then press Enter", flush=True)
            await asyncio.to_thread(sys.stdin.readline)

        async def phase(key: str, label: str, spans: int, traces: int, send: Any, rows: int = SPANS_PER_TRACE,
                        unit: str = "spans/s", extra: Any = lambda result: "") -> None:
            r[key] = await measured(meter, admin, spans, send)
            _line(label, r[key], unit, extra(r[key]))
            await verify(admin, receiver.url, w.names[key][1], traces, rows)

        await phase("proto", "OTLP/HTTP protobuf", w.spans, w.traces, send_all(url, w.proto, PROTOBUF, k))
        await phase("json", "OTLP/HTTP JSON", n, w.json_traces, send_all(url, w.json, JSON, k))
        await phase("grpc", "OTLP/gRPC", n, w.json_traces, send_grpc(receiver.grpc_target, w.grpc, k))
        await phase("legacy", "legacy /ingest (SDK events)", n, w.json_traces,
                    send_all(receiver.url + "/ingest", w.legacy, JSON, k), len(_STEPS), "events/s")
        rss_load = receiver.peak_rss_mb()

        r["plain"], r["staged"] = await reference(dsn, w.reference, k, meter, admin)
        _line("reference (a) COPY", r["plain"], "rows/s ")
        _line("reference (b) COPY, PK, ON CONFL.", r["staged"], "rows/s ")
        store = await open_store(dsn, k)
        try:
            await phase("store", "reference (c) Store.write alone", w.spans, w.traces, store_alone(store, w.store, k))
        finally:
            await store.close()

        await phase("steady", f"steady {args.rate:,} spans/s", w.steady_traces * SPANS_PER_TRACE, w.steady_traces,
                    send_steady(url, w.steady, args.batch / args.rate, k),
                    extra=lambda result: f"  max {max(result.latencies) * 1000:.0f} ms")
        if w.max:
            health: list[float] = []
            await phase("max", "maximum-size requests", w.max_traces * SPANS_PER_TRACE, w.max_traces,
                        probing(receiver.url + "/health", send_all(url, w.max, PROTOBUF, k), health),
                        extra=lambda _: f"  ({len(w.max)} x {len(w.max[0]) / 2**20:.0f} MiB; "
                        f"GET /health meanwhile: max {max(health) * 1000:.0f} ms of {len(health)})")
        return r, (rss_load, receiver.peak_rss_mb())
    except BaseException:
        print(f"--- receiver log (last lines) ---\n{receiver.log_tail()}", file=sys.stderr)
        raise
    finally:
        receiver.stop()


async def _two_workers(args: argparse.Namespace, w: Workload, dsn: str, admin: asyncpg.Connection,
                       workdir: Path) -> Result:
    """The protobuf phase again against ``serve --workers 2``, from twice the connections: SO_REUSEPORT
    spreads connections, not requests, so 4 could land 3 on one worker and 1 on the other."""
    receiver = Receiver(dsn, workdir / "receiver-2-workers.log", workers=2)
    try:
        await receiver.wait_ready()
        meter = CpuMeter(receiver.proc.pid, await postmaster_pid(admin))
        url, k = receiver.url + "/v1/traces", 2 * args.connections
        await send_all(url, w.warmup, PROTOBUF, k)
        result = await measured(meter, admin, w.spans, send_all(url, w.workers, PROTOBUF, k))
        _line(f"protobuf, 2 workers, {k} connections", result)
        await verify(admin, receiver.url, w.names["workers"][1], w.traces)
        return result
    except BaseException:
        print(f"--- receiver log (last lines) ---\n{receiver.log_tail()}", file=sys.stderr)
        raise
    finally:
        receiver.stop()


def _summary(args: argparse.Namespace, w: Workload, r: dict[str, Result], rss: tuple[float, float]) -> None:
    def row(name: str, value: str, target: str, ok: bool) -> str:
        return f"  {name:<34}{value:>10}   {target:<12}{'ok' if ok else 'BELOW TARGET'}"

    proto = r["proto"]
    vs_ref, vs_orig = proto.rate / r["staged"].rate, proto.rate / ORIGINAL_BACKEND
    json_ratio, grpc_ratio = r["json"].rate / proto.rate, r["grpc"].rate / proto.rate
    legacy, workers = r["legacy"].rate / ORIGINAL_BACKEND, r["workers"].rate / proto.rate
    p99 = r["steady"].percentile(0.99)
    cpu = {k: v / proto.spans * 1e6 for k, v in proto.cpu.items()}
    print("\n" + "\n".join([
        "all phases verified: every span a step row, every run complete and listed by /runs",
        row("end-to-end / reference (b)", f"{vs_ref:.2f}", f">= {TARGET_VS_REFERENCE}", vs_ref >= TARGET_VS_REFERENCE),
        row(f"end-to-end / original {ORIGINAL_BACKEND:,}/s", f"{vs_orig:.1f}x", f">= {TARGET_VS_ORIGINAL}x",
            vs_orig >= TARGET_VS_ORIGINAL),
        row("OTLP/gRPC / OTLP/HTTP protobuf", f"{grpc_ratio:.2f}", f">= {TARGET_TRANSPORTS}",
            grpc_ratio >= TARGET_TRANSPORTS),
        row("OTLP/JSON / OTLP/HTTP protobuf", f"{json_ratio:.2f}", f">= {TARGET_TRANSPORTS}",
            json_ratio >= TARGET_TRANSPORTS),
        row(f"legacy /ingest / original {ORIGINAL_BACKEND:,}/s", f"{legacy:.1f}x", f">= {TARGET_LEGACY}x",
            legacy >= TARGET_LEGACY),
        row(f"p99 at a steady {args.rate:,} spans/s", f"{p99:.0f} ms", "< 100 ms", p99 < 100),
        f"  2 workers / 1 worker (protobuf): {workers:.2f}",
        f"  end-to-end / reference (c), the receiver's own store with no HTTP, decoding or mapping: "
        f"{proto.rate / r['store'].rate:.2f}; (c) / (b): {r['store'].rate / r['staged'].rate:.2f}",
        f"  receiver peak RSS: {rss[0]:.0f} MB under load"
        + (f", {rss[1]:.0f} MB after {len(w.max)} concurrent maximum-size requests" if w.max else ""),
        f"  CPU per 1,000 spans (protobuf run): receiver {cpu['receiver']:.0f} ms, "
        f"PostgreSQL {cpu['postgres']:.0f} ms, load generator {cpu['loadgen']:.0f} ms",
    ]))


def main(argv: list[str] | None = None) -> None:
    args = _args(argv)
    warnings.filterwarnings("ignore", module="platformdirs")  # XDG_RUNTIME_DIR unset: irrelevant here
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks stop what was started
    with tempfile.TemporaryDirectory(prefix="xray-bench-") as tmp, given_or_embedded(Path(tmp) / "pgdata") as dsn:
        asyncio.run(bench(args, dsn, Path(tmp)))


if __name__ == "__main__":
    main()
