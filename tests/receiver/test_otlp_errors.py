"""Every OTLP/HTTP error status, each body a google.rpc.Status in the request's encoding."""

from __future__ import annotations

import gzip
import uuid

import pytest
from google.rpc import status_pb2

from conftest import serve
from helpers import call, export_request, get_json, new_ids, pipeline_spans, post_otlp

PB = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def status_of(reply) -> status_pb2.Status:
    return status_pb2.Status.FromString(reply.body)


def test_malformed_protobuf_is_400(receiver_url: str) -> None:
    reply = call("POST", receiver_url + "/v1/traces", b"\xff\xff\xff\x0f garbage", PB)
    assert reply.status == 400
    assert reply.headers["Content-Type"].startswith("application/x-protobuf")
    status = status_of(reply)
    assert status.code == 3 and "protobuf" in status.message


def test_malformed_json_is_400_with_json_status(receiver_url: str) -> None:
    for body in (b"{not json", b"[1, 2]", b'{"resourceSpans": 7}', b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz!"}]}]}]}',
                 b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "caf\xe9"}]}]}]}'):  # not UTF-8
        reply = call("POST", receiver_url + "/v1/traces", body, JSON)
        assert reply.status == 400, body
        assert reply.json()["code"] == 3 and reply.json()["message"]


@pytest.mark.parametrize("field", ['"startTimeUnixNano": "1e99999999999999999999"',
                                   '"attributes": [{"key": "n", "value": {"intValue": "0e99999999999999999999"}}]'])
def test_an_integer_with_an_exponent_past_decimals_range_is_400(receiver_url: str, field: str) -> None:
    """decimal cannot hold the exponent: a 400 that says where, not a 500."""
    body = ('{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0af7651916cd43dd8448eb211c80319c", '
            f'"spanId": "b7ad6b7169203331", {field}}}]}}]}}]}}').encode()
    reply = call("POST", receiver_url + "/v1/traces", body, JSON)
    assert reply.status == 400, reply.body[:300]
    assert "spans[0]" in reply.json()["message"]


def test_unsupported_content_type_is_415(receiver_url: str) -> None:
    reply = call("POST", receiver_url + "/v1/traces", b"hello", {"Content-Type": "text/plain"})
    assert reply.status == 415
    assert "application/x-protobuf" in status_of(reply).message


def test_unsupported_content_encoding_is_415(receiver_url: str) -> None:
    reply = call("POST", receiver_url + "/v1/traces", b"x", {**PB, "Content-Encoding": "br"})
    assert reply.status == 415


def test_wrong_method_is_405(receiver_url: str) -> None:
    for method in ("GET", "PUT", "DELETE"):
        reply = call(method, receiver_url + "/v1/traces", None, PB)
        assert reply.status == 405, method
        assert reply.headers["Allow"] == "POST"


def test_broken_gzip_is_400(receiver_url: str) -> None:
    good = gzip.compress(export_request(pipeline_spans(*new_ids())).SerializeToString())
    for body in (b"not gzip at all", good[: len(good) // 2]):
        reply = call("POST", receiver_url + "/v1/traces", body, {**PB, "Content-Encoding": "gzip"})
        assert reply.status == 400
        assert "gzip" in status_of(reply).message


def test_body_limit_applies_after_decompression(pg_dsn: str) -> None:
    with serve(pg_dsn, max_body_bytes=64 * 1024) as server:
        bomb = gzip.compress(b"\0" * (50 * 1024 * 1024), 9)
        assert len(bomb) < 64 * 1024
        reply = call("POST", server.url + "/v1/traces", bomb, {**PB, "Content-Encoding": "gzip"})
        assert reply.status == 413
        assert "after decompression" in status_of(reply).message
        plain = call("POST", server.url + "/v1/traces", b"\0" * (64 * 1024 + 1), PB)
        assert plain.status == 413
        trace_id, base = new_ids()  # the server is still fine
        assert post_otlp(server.url, export_request(pipeline_spans(trace_id, base))).status == 200


def test_database_down_is_503_then_recovers(tmp_path) -> None:
    from xray_otel.store.embedded import start_embedded

    dsn, pg = start_embedded(tmp_path / "pg")
    with serve(dsn) as server:
        assert get_json(server.url + "/ready") == {"status": "ready"}
        pg.cleanup()  # stop PostgreSQL under the running receiver
        trace_id, base = new_ids()
        request = export_request(pipeline_spans(trace_id, base))
        reply = post_otlp(server.url, request)
        assert reply.status == 503
        assert int(reply.headers["Retry-After"]) > 0
        assert status_of(reply).code == 14
        assert call("GET", server.url + "/ready").status == 503
        assert call("GET", server.url + f"/runs/{uuid.UUID(bytes=trace_id)}").status == 503

        _, pg = start_embedded(tmp_path / "pg")  # back, same data directory and socket
        assert post_otlp(server.url, request).status == 200  # the exporter's retry now lands
        assert get_json(server.url + f"/runs/{uuid.UUID(bytes=trace_id)}")["step_count"] == 4
        assert get_json(server.url + "/ready") == {"status": "ready"}
    pg.cleanup()


def test_gzip_body_of_several_members_is_read_whole(receiver_url: str) -> None:
    first, second = new_ids(), new_ids()
    body = (gzip.compress(export_request(pipeline_spans(*first)).SerializeToString())
            + gzip.compress(export_request(pipeline_spans(*second)).SerializeToString()))
    reply = call("POST", receiver_url + "/v1/traces", body, {**PB, "Content-Encoding": "gzip"})
    assert reply.status == 200
    for trace_id, _ in (first, second):  # protobuf concatenates: both requests' spans are in it
        assert get_json(f"{receiver_url}/runs/{uuid.UUID(bytes=trace_id)}")["step_count"] == 4


def test_absurd_costs_cannot_break_the_run_list(receiver_url: str) -> None:
    trace_id, base = new_ids()
    spans = pipeline_spans(trace_id, base)
    for span in spans[1:]:
        for kv in span.attributes:
            if kv.key == "xray.step.cost":
                kv.value.double_value = 1.5e308
    spans[2].attributes.add(key="xray.step.cost").value.double_value = 1.5e308
    assert post_otlp(receiver_url, export_request(spans)).status == 200
    assert call("GET", receiver_url + "/runs?limit=1000").status == 200
    run = get_json(f"{receiver_url}/runs/{uuid.UUID(bytes=trace_id)}")
    assert run["total_cost"] == 0.0  # over the 1e12 USD cap: not a cost, so not counted


def test_out_of_range_cursor_is_400(receiver_url: str) -> None:
    import base64
    import json as _json

    cursor = base64.urlsafe_b64encode(_json.dumps(
        ["-started_at", ["0001-01-01T00:00:00+14:00", str(uuid.uuid4())]]).encode()).decode()
    for path in ("/runs", "/steps"):
        reply = call("GET", f"{receiver_url}{path}?cursor={cursor}")
        assert reply.status == 400, (path, reply.status, reply.body[:200])
