"""OTLP/gRPC through the real grpc exporter into the same store; status codes per the OTLP spec."""

from __future__ import annotations

import uuid

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression

from conftest import serve
from helpers import export_request, get_json, new_ids, pipeline_spans

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def grpc_target(server) -> str:
    return f"127.0.0.1:{server.settings.grpc_port}"


def raw_export(server, body: bytes, **kwargs) -> bytes:
    with grpc.insecure_channel(grpc_target(server)) as channel:
        call = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        return call(body, timeout=10, **kwargs)


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_real_grpc_exporter_run_and_funnel(receiver, compression) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "grpc-app"}))
    exporter = OTLPSpanExporter(endpoint=grpc_target(receiver), insecure=True, compression=compression)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("grpc_run", attributes={"xray.kind": "run"}) as root:
        with tracer.start_as_current_span("filter", attributes={
            "xray.step.type": "filter", "xray.step.input_count": 50, "xray.step.output_count": 5,
            "xray.step.rejections": '{"too_big": 45}'}):
            pass
    provider.shutdown()
    run_id = uuid.UUID(int=root.get_span_context().trace_id)
    analysis = get_json(f"{receiver.url}/analyze/{run_id}")
    assert (analysis["run"]["name"], analysis["run"]["service"]) == ("grpc_run", "grpc-app")
    (step,) = analysis["funnel"]
    assert (step["input_count"], step["output_count"], step["rejections"]) == (50, 5, {"too_big": 45})


def test_partial_success_over_grpc(receiver) -> None:
    trace_id, base = new_ids()
    spans = pipeline_spans(trace_id, base)
    spans[2].trace_id = b"\x00" * 16
    reply = ExportTraceServiceResponse.FromString(raw_export(receiver, export_request(spans).SerializeToString()))
    assert reply.partial_success.rejected_spans == 1
    assert "invalid trace_id" in reply.partial_success.error_message
    assert get_json(f"{receiver.url}/runs/{uuid.UUID(bytes=trace_id)}")["step_count"] == 3


def test_malformed_message_is_invalid_argument(receiver) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        raw_export(receiver, b"\xff\xff\xff\x0f not protobuf")
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_too_large_is_resource_exhausted(pg_dsn: str) -> None:
    with serve(pg_dsn, max_body_bytes=4096) as server:
        with pytest.raises(grpc.RpcError) as failure:
            raw_export(server, export_request(pipeline_spans(*new_ids()) * 20).SerializeToString())
        assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_database_down_is_unavailable(tmp_path) -> None:
    from xray_otel.store.embedded import start_embedded

    dsn, pg = start_embedded(tmp_path / "pg")
    with serve(dsn) as server:
        pg.cleanup()
        trace_id, base = new_ids()
        body = export_request(pipeline_spans(trace_id, base)).SerializeToString()
        with pytest.raises(grpc.RpcError) as failure:
            raw_export(server, body)
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
        _, pg = start_embedded(tmp_path / "pg")
        assert not ExportTraceServiceResponse.FromString(raw_export(server, body)).HasField("partial_success")
        assert get_json(f"{server.url}/runs/{uuid.UUID(bytes=trace_id)}")["step_count"] == 4
    pg.cleanup()


def test_grpc_can_be_disabled(pg_dsn: str) -> None:
    with serve(pg_dsn, grpc_port=0) as server:
        assert server.settings.grpc_port == 0
        assert get_json(server.url + "/ready") == {"status": "ready"}
