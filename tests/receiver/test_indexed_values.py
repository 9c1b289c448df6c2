"""Values that land in indexed columns are cut, marked and stored, never refused by the database
(issue 16 §2: a 100 kB incompressible service.name was "index row requires 100040 bytes")."""

from __future__ import annotations

import os
import uuid
from urllib.parse import quote

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from helpers import export_request, get_json, make_span, new_ids, post_otlp
from xray_otel.conventions import TRUNCATION_MARKER
from xray_otel.mapping.values import MAX_NAME

_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _noise(chars: int) -> str:
    """Random text PostgreSQL cannot compress below a btree page."""
    return os.urandom(chars // 2).hex()


def _send(receiver, transport: str, request) -> ExportTraceServiceResponse:
    if transport == "http":
        reply = post_otlp(receiver.url, request)
        assert reply.status == 200, reply.body[:300]
        return ExportTraceServiceResponse.FromString(reply.body)
    with grpc.insecure_channel(f"127.0.0.1:{receiver.settings.grpc_port}",
                               options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        return ExportTraceServiceResponse.FromString(
            channel.unary_unary(_EXPORT)(request.SerializeToString(), timeout=30))


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_huge_values_in_indexed_columns_are_cut_and_stored(receiver, transport: str) -> None:
    trace_id, base = new_ids()
    service, run_name, span_name, step_type = (_noise(100_000) for _ in range(4))
    spans = [make_span(trace_id, base, span_name, attrs={"xray.kind": "run", "xray.run.name": run_name}),
             make_span(trace_id, base + 1, span_name, parent=base, attrs={"xray.step.type": step_type})]
    answer = _send(receiver, transport, export_request(spans, service=service))

    assert answer.partial_success.rejected_spans == 0, answer.partial_success.error_message
    assert f"service.name values over {MAX_NAME} characters were truncated" in answer.partial_success.error_message
    run_id = uuid.UUID(bytes=trace_id)
    run = get_json(f"{receiver.url}/runs/{run_id}")
    assert run["service"] == service[:MAX_NAME] + TRUNCATION_MARKER
    assert run["name"] == run_name[:MAX_NAME] + TRUNCATION_MARKER
    (step,) = get_json(f"{receiver.url}/runs/{run_id}/steps")
    assert step["name"] == span_name[:MAX_NAME] + TRUNCATION_MARKER
    assert step["type"] == step_type[:MAX_NAME] + TRUNCATION_MARKER
    assert step["service"] == run["service"]
    # The cut value is what a filter finds it by.
    listed = get_json(f"{receiver.url}/runs?service={quote(run['service'])}")
    assert [r["id"] for r in listed] == [str(run_id)]
