"""API keys and scopes on HTTP and gRPC, the non-loopback guard, and CORS."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from conftest import serve
from helpers import call, export_request, new_ids, pipeline_spans
from xray_otel.config import Settings

KEYS = "ingest:ingest-key-1,read:read-key-2,ingest+read:admin-key-3"
PB = {"Content-Type": "application/x-protobuf"}


@pytest.fixture(scope="module")
def secured(pg_dsn: str):
    with serve(pg_dsn, api_keys=KEYS, cors_origins="https://ui.example") as server:
        yield server


def _export(url: str, **headers: str):
    return call("POST", url + "/v1/traces", export_request(pipeline_spans(*new_ids())).SerializeToString(),
                {**PB, **headers})


def test_otlp_http_needs_an_ingest_key(secured) -> None:
    missing = _export(secured.url)
    assert missing.status == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    assert status_pb2.Status.FromString(missing.body).code == 16
    wrong = _export(secured.url, Authorization="Bearer not-a-key")
    assert wrong.status == 401
    read_only = _export(secured.url, Authorization="Bearer read-key-2")
    assert read_only.status == 403 and status_pb2.Status.FromString(read_only.body).code == 7
    assert _export(secured.url, Authorization="Bearer ingest-key-1").status == 200
    assert _export(secured.url, **{"x-api-key": "admin-key-3"}).status == 200


def test_queries_need_a_read_key_health_does_not(secured) -> None:
    assert call("GET", secured.url + "/health").status == 200
    for path in ("/", "/ready", "/runs", f"/runs/{uuid.uuid4()}"):
        reply = call("GET", secured.url + path)
        assert reply.status == 401, path
        assert "API key is required" in reply.json()["error"]["message"]
        assert call("GET", secured.url + path, headers={"Authorization": "Bearer ingest-key-1"}).status == 403
    assert call("GET", secured.url + "/runs", headers={"x-api-key": "read-key-2"}).status == 200


def test_legacy_ingest_needs_an_ingest_key(secured) -> None:
    body = b'{"events": []}'
    assert call("POST", secured.url + "/ingest", body, {"Content-Type": "application/json"}).status == 401
    ok = call("POST", secured.url + "/ingest", body, {"Content-Type": "application/json", "x-api-key": "ingest-key-1"})
    assert ok.status == 200


def test_real_exporters_send_keys_from_headers(secured) -> None:
    grpc_target = f"127.0.0.1:{secured.settings.grpc_port}"
    exporters = [HttpExporter(endpoint=secured.url + "/v1/traces", headers={"authorization": "Bearer ingest-key-1"}),
                 GrpcExporter(endpoint=grpc_target, insecure=True, headers=(("x-api-key", "ingest-key-1"),))]
    for exporter in exporters:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with provider.get_tracer("t").start_as_current_span("keyed_run") as span:
            pass
        provider.shutdown()
        run = call("GET", f"{secured.url}/runs/{uuid.UUID(int=span.get_span_context().trace_id)}",
                   headers={"x-api-key": "read-key-2"})
        assert run.status == 200 and run.json()["name"] == "keyed_run"


def test_grpc_without_a_key_is_unauthenticated(secured) -> None:
    body = export_request(pipeline_spans(*new_ids())).SerializeToString()
    with grpc.insecure_channel(f"127.0.0.1:{secured.settings.grpc_port}") as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as failure:
            export(body, timeout=10)
        assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as failure:
            export(body, timeout=10, metadata=(("authorization", "Bearer read-key-2"),))
        assert failure.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert export(body, timeout=10, metadata=(("authorization", "Bearer ingest-key-1"),)) is not None


def test_cors_only_for_configured_origins(secured) -> None:
    preflight = {"Origin": "https://ui.example", "Access-Control-Request-Method": "POST"}
    ok = call("OPTIONS", secured.url + "/v1/traces", headers=preflight)
    assert ok.status == 204 and ok.headers["Access-Control-Allow-Origin"] == "https://ui.example"
    assert "x-api-key" in ok.headers["Access-Control-Allow-Headers"]
    other = call("OPTIONS", secured.url + "/v1/traces", headers={**preflight, "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    get = call("GET", secured.url + "/runs", headers={"Origin": "https://ui.example", "x-api-key": "read-key-2"})
    assert get.headers["Access-Control-Allow-Origin"] == "https://ui.example"


def test_non_loopback_without_keys_is_refused() -> None:
    with pytest.raises(ValueError, match="--insecure"):
        Settings.from_env({}, host="0.0.0.0")
    assert Settings.from_env({}, host="0.0.0.0", insecure=True).insecure
    assert Settings.from_env({"XRAY_API_KEYS": KEYS}, host="0.0.0.0").keys.enabled
    assert not Settings.from_env({}, host="::1").keys.enabled


def test_key_configuration_errors_never_echo_keys(tmp_path) -> None:
    with pytest.raises(ValueError) as failure:
        Settings.from_env({"XRAY_API_KEYS": "root:super-secret-value"})
    assert "super-secret-value" not in str(failure.value) and "entry 1" in str(failure.value)
    keys_file = tmp_path / "keys"
    keys_file.write_text("# team keys\ningest:file-key-1\n\nread:file-key-2  # dashboards\n")
    settings = Settings.from_env({"XRAY_API_KEYS_FILE": str(keys_file)})
    settings.keys.check("file-key-2", "read")
    assert "file-key" not in repr(settings) and "secret" not in repr(Settings.from_env({"XRAY_API_KEYS": "read:secret"}))


def test_project_bound_keys_write_and_read_only_their_project(pg_dsn: str) -> None:
    keys = "ingest+read@shop-auth:shop-key,ingest+read:admin-key"  # a project no other test writes
    with serve(pg_dsn, api_keys=keys) as server:
        shop, other = new_ids(), new_ids()
        mixed = export_request(pipeline_spans(*shop), service="shop-auth")
        mixed.resource_spans.extend(export_request(pipeline_spans(*other), service="billing").resource_spans)
        reply = call("POST", server.url + "/v1/traces", mixed.SerializeToString(), {**PB, "x-api-key": "shop-key"})
        assert reply.status == 200
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
        partial = ExportTraceServiceResponse.FromString(reply.body).partial_success
        assert partial.rejected_spans == 5 and "may only write project 'shop-auth'" in partial.error_message
        billing = export_request(pipeline_spans(*other), service="billing").SerializeToString()
        assert call("POST", server.url + "/v1/traces", billing, {**PB, "x-api-key": "admin-key"}).status == 200

        def get(path: str, key: str):
            return call("GET", server.url + path, headers={"x-api-key": key})

        shop_id, other_id = (str(uuid.UUID(bytes=t)) for t, _ in (shop, other))
        assert [r["id"] for r in get("/runs", "shop-key").json()] == [shop_id]  # a trace id, to its own project
        assert {r["trace_id"] for r in get("/runs?limit=1000", "admin-key").json()} >= {shop_id, other_id}
        assert get("/runs?service=billing", "shop-key").status == 403
        assert get(f"/runs/{other_id}", "shop-key").status == 404
        assert get(f"/analyze/{other_id}", "shop-key").status == 404
        assert get(f"/runs/{other_id}/candidates", "shop-key").status == 404
        assert get(f"/compare?base={shop_id}&other={other_id}", "shop-key").status == 404
        assert get(f"/analyze/{shop_id}", "shop-key").status == 200
        assert {s["run_id"] for s in get("/steps", "shop-key").json()} == {shop_id}
        assert [p["name"] for p in get("/pipelines", "shop-key").json()["pipelines"]] == ["select_competitor"]
        assert get("/pipelines/select_competitor", "shop-key").status == 403
        legacy = call("POST", server.url + "/ingest", b'{"events": []}',
                      {"Content-Type": "application/json", "x-api-key": "shop-key"})
        assert legacy.status == 403


def test_a_hash_sign_in_an_environment_key_is_part_of_the_key() -> None:
    settings = Settings.from_env({"XRAY_API_KEYS": "ingest+read:s3cr#Xk9pQ2"})
    settings.keys.check("s3cr#Xk9pQ2", "read")
    with pytest.raises(Exception, match="unknown API key"):
        settings.keys.check("s3cr", "read")


def test_a_project_bound_key_cannot_read_every_projects_metrics(pg_dsn: str) -> None:
    with serve(pg_dsn, api_keys="ingest+read@shop-metrics:k1,read:k2") as server:
        bound = call("GET", server.url + "/metrics", headers={"x-api-key": "k1"})
        assert bound.status == 403 and "every project" in bound.json()["error"]["message"]
        assert call("GET", server.url + "/metrics", headers={"x-api-key": "k2"}).status == 200
