"""Limits: spans per request, attribute value sizes (truncated and reported, not rejected),
and a body that arrives too slowly."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from conftest import serve
from helpers import export_request, get_json, make_span, new_ids, pipeline_spans, post_otlp
from xray_otel.conventions import TRUNCATION_MARKER
from xray_otel.mapping.rows import Batch
from xray_otel.mapping.spans import PART_SPANS, map_in_parts
from xray_otel.metrics import Metrics
from xray_otel.receiver.ingest import Ingester
from xray_otel.mapping.legacy import map_events_in_parts
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


@pytest.mark.parametrize("source", ["otlp", "legacy"])
def test_a_big_request_lets_other_work_run_while_it_maps(pg_dsn: str, source: str) -> None:
    """Mapping pauses every PART_SPANS spans or events (a 100,000-span request maps for over a second): a
    task watching the batch must see it part-filled, at the pauses, before the request is stored."""
    total = 10 * PART_SPANS
    trace_id, base = new_ids()
    spans = [make_span(trace_id, base + i, f"s{i}", parent=base) for i in range(total)]
    events = [{"type": "step_complete", "data": {"id": str(uuid.uuid4()), "run_id": str(uuid.UUID(bytes=trace_id)),
                                                  "name": f"s{i}", "started_at": "2024-05-01T12:00:00Z"}}
              for i in range(total)]

    async def sizes_seen() -> tuple[set[int], int]:
        store, batch, seen = await Store.open(pg_dsn, pool_size=1), Batch(), set()
        parts = (map_in_parts(export_request(spans), batch) if source == "otlp"
                 else map_events_in_parts({"events": events}, batch))

        async def watch() -> None:
            while True:
                seen.add(len(batch.steps))
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        try:
            await asyncio.sleep(0)
            rejected, _ = await Ingester(store, Metrics()).store_mapped(batch, parts)
            return seen, rejected
        finally:
            watcher.cancel()
            await store.close()

    seen, rejected = asyncio.run(sizes_seen())
    assert rejected == 0
    assert {n for n in seen if 0 < n < total} >= {k * PART_SPANS for k in range(1, 10)}
