"""Faults with exact counts: PostgreSQL restarted under load, the receiver stopped under load,
duplicate and reordered delivery. The real OTLP exporter (with its retries) does the sending."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import asyncpg
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conftest import free_port, serve
from helpers import call, deliver_chaotically, export_request, get_json, new_ids, pipeline_spans, post_otlp
from xray_otel.store.embedded import start_embedded


def make_batches(n_batches: int, traces_per_batch: int = 5) -> list[list[ReadableSpan]]:
    """Finished SDK spans, grouped per batch: each trace is a run span with 5 steps."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("faults")
    batches = []
    for _ in range(n_batches):
        for _ in range(traces_per_batch):
            with tracer.start_as_current_span("fault_run", attributes={"xray.kind": "run"}):
                for j in range(5):
                    with tracer.start_as_current_span(f"step_{j}", attributes={"xray.step.cost": 0.001}):
                        pass
        batches.append(list(memory.get_finished_spans()))
        memory.clear()
    return batches


def send_all(url: str, batches: list[list[ReadableSpan]], started: threading.Event) -> list[SpanExportResult]:
    exporter = OTLPSpanExporter(endpoint=url + "/v1/traces", timeout=40)
    results = []
    for i, batch in enumerate(batches):
        if i == 3:
            started.set()
        results.append(exporter.export(batch))
        time.sleep(0.01)
    exporter.shutdown()
    return results


def stored_spans(dsn: str, batches: list[list[ReadableSpan]]) -> int:
    run_ids = list({uuid.UUID(int=s.context.trace_id) for b in batches for s in b})

    async def count() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval("SELECT count(*) FROM steps WHERE run_id = ANY($1::uuid[])", run_ids)
        finally:
            await conn.close()

    return asyncio.run(count())


def test_postgres_restarted_under_load_loses_nothing(tmp_path) -> None:
    dsn, pg = start_embedded(tmp_path / "pg")
    batches = make_batches(150)
    with serve(dsn) as server:
        started = threading.Event()
        with ThreadPoolExecutor(1) as pool:
            sending = pool.submit(send_all, server.url, batches, started)
            started.wait(30)
            pg.cleanup()  # PostgreSQL stops mid-load
            time.sleep(2)
            _, pg = start_embedded(tmp_path / "pg")
            results = sending.result(120)
    assert results == [SpanExportResult.SUCCESS] * len(batches)
    assert stored_spans(dsn, batches) == 150 * 5 * 6  # every span, exactly once
    pg.cleanup()


def test_receiver_sigterm_under_load_then_restart(tmp_path) -> None:
    dsn, pg = start_embedded(tmp_path / "pg")
    port = free_port()
    args = [sys.executable, "-m", "xray_otel", "serve", "--port", str(port), "--grpc-port", "0",
            "--database-url", dsn]
    url = f"http://127.0.0.1:{port}"

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()
            try:
                if call("GET", url + "/ready").status == 200:
                    return proc
            except OSError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.1)

    batches = make_batches(150)
    proc = start()
    started = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        sending = pool.submit(send_all, url, batches, started)
        started.wait(30)
        proc.send_signal(signal.SIGTERM)  # stop accepting, finish in-flight, exit
        assert proc.wait(60) == 0
        proc = start()  # a restarted receiver takes the exporter's retries
        results = sending.result(120)
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    assert results == [SpanExportResult.SUCCESS] * len(batches)
    assert stored_spans(dsn, batches) == 150 * 5 * 6
    pg.cleanup()


def test_duplicated_reordered_concurrent_delivery_equals_in_order_once(receiver_url: str) -> None:
    rng = random.Random(7)
    t0 = time.time_ns()
    twins = []  # (in-order trace, chaotic trace) with identical content
    chaotic_spans = []
    for i in range(30):
        (a, base), (b, _) = new_ids(), new_ids()
        assert post_otlp(receiver_url, export_request(pipeline_spans(a, base, t0 + i))).status == 200
        chaotic_spans += pipeline_spans(b, base, t0 + i)
        twins.append((a, b))
    deliver_chaotically(receiver_url, chaotic_spans, rng, batch=7)

    def analysis(trace_id: bytes) -> dict:
        result = get_json(f"{receiver_url}/analyze/{uuid.UUID(bytes=trace_id)}")
        for key in ("id", "trace_id"):  # the only fields that differ between the two runs
            result["run"].pop(key)
        return result

    for a, b in twins:
        assert analysis(b) == analysis(a)
