"""Limits: spans per request, attribute value sizes (truncated and reported, not rejected),
and a body that arrives too slowly."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from conftest import serve
from helpers import export_request, get_json, make_span, new_ids, pipeline_spans, post_otlp
from xray_otel.conventions import TRUNCATION_MARKER
from xray_otel.mapping import PART_SPANS, Batch
from xray_otel.metrics import Metrics
from xray_otel.receiver.ingest import Ingester
from xray_otel.store.store import Store


def test_too_many_spans_in_one_request_is_413(pg_dsn: str) -> None:
    with serve(pg_dsn, max_spans_per_request=10) as server:
        reply = post_otlp(server.url, export_request(pipeline_spans(*new_ids()) * 3))  # 15 spans
        assert reply.status == 413
        assert post_otlp(server.url, export_request(pipeline_spans(*new_ids()))).status == 200


def test_oversized_values_are_truncated_and_reported(pg_dsn: str) -> None:
    with serve(pg_dsn, max_value_chars=1000) as server:
        trace_id, base = new_ids()
        spans = [make_span(trace_id, base, "big_run", attrs={"xray.kind": "run"}),
                 make_span(trace_id, base + 1, "big_step", parent=base,
                           attrs={"xray.step.reasoning": "r" * 5000, "note": "n" * 1000, "long": "x" * 1001})]
        reply = post_otlp(server.url, export_request(spans))
        assert reply.status == 200
        partial = ExportTraceServiceResponse.FromString(reply.body).partial_success
        assert partial.rejected_spans == 0  # stored, with a warning
        assert "2 attribute values over 1000 characters were truncated" in partial.error_message
        (step,) = get_json(f"{server.url}/runs/{uuid.UUID(bytes=trace_id)}/steps")
        assert step["reasoning"] == "r" * 1000 + TRUNCATION_MARKER
        assert step["attributes"]["note"] == "n" * 1000  # at the cap exactly: untouched
        assert step["attributes"]["long"] == "x" * 1000 + TRUNCATION_MARKER


def test_a_body_that_never_finishes_times_out(pg_dsn: str) -> None:
    with serve(pg_dsn, request_timeout=1) as server:
        port = server.settings.port
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                         b"Content-Length: 1000\r\n\r\nabc")
            started = time.monotonic()
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started < 5


def test_a_big_request_lets_other_work_run_while_it_maps(pg_dsn: str) -> None:
    """Mapping pauses every PART_SPANS spans (a 100,000-span request maps for over a second): a task
    counting event-loop turns must run between the parts, before the batch reaches the store."""
    trace_id, base = new_ids()
    request = export_request([make_span(trace_id, base + i, f"s{i}", parent=base) for i in range(10 * PART_SPANS)])

    async def turns_while_mapping() -> tuple[int, int]:
        store = await Store.open(pg_dsn, pool_size=1)
        ingester, turns, at_store = Ingester(store, Metrics()), 0, []
        store_batch = ingester._store

        async def count_turns() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        async def note_turns_then_store(batch: Batch) -> tuple[int, str]:
            at_store.append(turns)
            return await store_batch(batch)

        ingester._store = note_turns_then_store  # type: ignore[method-assign]
        counter = asyncio.create_task(count_turns())
        try:
            await asyncio.sleep(0)
            before = turns
            rejected, _ = await ingester.export(request)
            return at_store[0] - before, rejected
        finally:
            counter.cancel()
            await store.close()

    turns, rejected = asyncio.run(turns_while_mapping())
    assert rejected == 0
    assert turns >= 9  # one turn after each full part but the last
