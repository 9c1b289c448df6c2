"""OTLP/HTTP ingestion through the running receiver into real PostgreSQL, read back over REST."""

from __future__ import annotations

import gzip
import json
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

from helpers import call, export_request, get_json, make_span, new_ids, pipeline_spans, post_otlp


def run_url(url: str, trace_id: bytes) -> str:
    return f"{url}/runs/{uuid.UUID(bytes=trace_id)}"


def test_stock_otel_exporter_run_and_funnel(receiver_url: str) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "stock-app"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=receiver_url + "/v1/traces")))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("handle_request") as root:
        with tracer.start_as_current_span("search", attributes={"xray.step.type": "retrieval",
                                                                  "xray.step.output_count": 120}):
            pass
        with tracer.start_as_current_span("filter", attributes={
            "xray.step.type": "filter", "xray.step.input_count": 120, "xray.step.output_count": 12,
            "xray.step.rejections": json.dumps({"out_of_stock": 100, "too_far": 8}),
        }):
            pass
        with tracer.start_as_current_span("explode") as bad:
            bad.set_status(Status(StatusCode.ERROR, "model timed out"))
    provider.shutdown()
    run_id = str(uuid.UUID(int=root.get_span_context().trace_id))

    runs = get_json(receiver_url + "/runs?name=handle_request&limit=1000")
    assert run_id in [r["id"] for r in runs]
    analysis = get_json(f"{receiver_url}/analyze/{run_id}")
    assert analysis["run"]["service"] == "stock-app"
    assert analysis["run"]["status"] == "COMPLETED"
    assert [f["name"] for f in analysis["funnel"]] == ["search", "filter", "explode"]
    search, filt, explode = analysis["funnel"]
    assert (search["output_count"], filt["input_count"], filt["output_count"]) == (120, 120, 12)
    assert filt["dropped"] == 108 and filt["drop_rate"] == 0.9
    assert filt["rejections"] == {"out_of_stock": 100, "too_far": 8}
    assert explode["status"] == "FAILED" and explode["error"] == "model timed out"
    assert analysis["summary"]["initial_candidates"] == 120
    assert analysis["summary"]["final_count"] == 12
    assert analysis["summary"]["biggest_drop"]["step"] == "filter"


def test_pipeline_funnel_and_tree(receiver_url: str) -> None:
    trace_id, base = new_ids()
    reply = post_otlp(receiver_url, export_request(pipeline_spans(trace_id, base)))
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/x-protobuf")
    assert not ExportTraceServiceResponse.FromString(reply.body).HasField("partial_success")

    run = get_json(run_url(receiver_url, trace_id))
    assert run["name"] == "select_competitor" and run["tags"] == {"product": "P1"}
    assert run["outputs"] == {"selected": "B07"}
    assert run["step_count"] == 4 and abs(run["total_cost"] - 0.003) < 1e-12
    assert run["started_at"].endswith("Z") and run["duration_ms"] == 50.0
    steps = get_json(run_url(receiver_url, trace_id) + "/steps")
    assert [s["name"] for s in steps] == ["keywords", "retrieve", "filter_price", "rank"]
    assert {s["depth"] for s in steps} == {0}
    analysis = get_json(f"{receiver_url}/analyze/{uuid.UUID(bytes=trace_id)}")
    assert analysis["summary"] == {
        "initial_candidates": 5000, "final_count": 1, "total_cost": run["total_cost"], "step_count": 4,
        "biggest_drop": {"step": "filter_price", "step_id": analysis["funnel"][2]["step_id"],
                         "dropped": 4700, "drop_rate": 0.94},
        "funnel_count": 1, "main_funnel": "retrieve",
    }
    assert analysis["final_outputs"] == {"selected": "B07"}


def test_nested_steps_come_in_tree_order(receiver_url: str) -> None:
    trace_id, base = new_ids()
    t0 = time.time_ns()
    spans = [
        make_span(trace_id, base, "run", attrs={"xray.kind": "run"}, start=t0, duration_ns=10_000_000),
        make_span(trace_id, base + 1, "outer", parent=base, start=t0 + 1),
        make_span(trace_id, base + 2, "later_sibling", parent=base, start=t0 + 5),
        make_span(trace_id, base + 3, "inner", parent=base + 1, start=t0 + 2),
    ]
    random.shuffle(spans)
    assert post_otlp(receiver_url, export_request(spans)).status == 200
    steps = get_json(run_url(receiver_url, trace_id) + "/steps")
    assert [(s["name"], s["depth"]) for s in steps] == [("outer", 0), ("inner", 1), ("later_sibling", 0)]
    assert steps[1]["parent_id"] == steps[0]["id"]


def test_otlp_json_body_with_hex_ids(receiver_url: str) -> None:
    trace_hex, now = uuid.uuid4().hex, time.time_ns()
    body = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-app"}}]},
        "scopeSpans": [{"scope": {"name": "manual"}, "spans": [
            {"traceId": trace_hex, "spanId": "00000000000000a1", "name": "json_run", "kind": 1,
             "startTimeUnixNano": str(now), "endTimeUnixNano": str(now + 2_000_000),
             "attributes": [{"key": "xray.kind", "value": {"stringValue": "run"}}]},
            {"trace_id": trace_hex, "span_id": "00000000000000a2", "parent_span_id": "00000000000000a1",
             "name": "json_filter", "kind": "SPAN_KIND_INTERNAL", "start_time_unix_nano": now + 1,
             "end_time_unix_nano": now + 1_000_000, "unknownField": {"ignored": True},
             "attributes": [{"key": "xray.step.input_count", "value": {"intValue": "10"}},
                            {"key": "xray.step.output_count", "value": {"intValue": 4}}],
             "status": {"code": "STATUS_CODE_ERROR", "message": "bad filter"}},
        ]}],
    }]}
    reply = call("POST", receiver_url + "/v1/traces", json.dumps(body).encode(),
                 {"Content-Type": "application/json; charset=utf-8"})
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.json() == {}
    run = get_json(f"{receiver_url}/runs/{uuid.UUID(trace_hex)}")
    assert (run["name"], run["service"], run["step_count"]) == ("json_run", "json-app", 1)
    (step,) = get_json(f"{receiver_url}/runs/{uuid.UUID(trace_hex)}/steps")
    assert (step["id"], step["parent_id"]) == ("00000000000000a2", "00000000000000a1")
    assert (step["input_count"], step["output_count"], step["status"]) == (10, 4, "FAILED")
    assert step["error"] == "bad filter"


def test_empty_requests_succeed(receiver_url: str) -> None:
    assert call("POST", receiver_url + "/v1/traces", b"", {"Content-Type": "application/json"}).status == 200
    assert call("POST", receiver_url + "/v1/traces", b"{}", {"Content-Type": "application/json"}).status == 200
    assert call("POST", receiver_url + "/v1/traces", b"", {"Content-Type": "application/x-protobuf"}).status == 200


def test_gzip_body(receiver_url: str) -> None:
    trace_id, base = new_ids()
    body = gzip.compress(export_request(pipeline_spans(trace_id, base)).SerializeToString())
    reply = call("POST", receiver_url + "/v1/traces", body,
                 {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"})
    assert reply.status == 200
    assert get_json(run_url(receiver_url, trace_id))["step_count"] == 4


def test_invalid_span_is_rejected_in_partial_success_and_rest_kept(receiver_url: str) -> None:
    trace_id, base = new_ids()
    spans = pipeline_spans(trace_id, base)
    spans[1].span_id = b"\x01\x02"  # wrong length
    reply = post_otlp(receiver_url, export_request(spans))
    assert reply.status == 200
    partial = ExportTraceServiceResponse.FromString(reply.body).partial_success
    assert partial.rejected_spans == 1
    assert "invalid span_id" in partial.error_message
    assert get_json(run_url(receiver_url, trace_id))["step_count"] == 3


def test_same_batch_twice_is_stored_once(receiver_url: str) -> None:
    trace_id, base = new_ids()
    request = export_request(pipeline_spans(trace_id, base))
    assert post_otlp(receiver_url, request).status == 200
    first = get_json(f"{receiver_url}/analyze/{uuid.UUID(bytes=trace_id)}")
    assert post_otlp(receiver_url, request).status == 200
    again = get_json(f"{receiver_url}/analyze/{uuid.UUID(bytes=trace_id)}")
    assert again == first
    assert again["run"]["step_count"] == 4 and abs(again["run"]["total_cost"] - 0.003) < 1e-12


def test_spans_split_across_requests_in_reverse_order(receiver_url: str) -> None:
    in_order_trace, base = new_ids()
    t0 = time.time_ns()
    assert post_otlp(receiver_url, export_request(pipeline_spans(in_order_trace, base, t0))).status == 200
    reverse_trace, _ = new_ids()
    spans = pipeline_spans(reverse_trace, base, t0)
    for i, span in enumerate(reversed(spans)):
        assert post_otlp(receiver_url, export_request([span])).status == 200
        if i == 0:  # a step arrived before its run: the run exists, RUNNING, unnamed
            early = get_json(run_url(receiver_url, reverse_trace))
            assert (early["status"], early["name"]) == ("RUNNING", None)

    def comparable(trace_id: bytes) -> dict:
        result = get_json(f"{receiver_url}/analyze/{uuid.UUID(bytes=trace_id)}")
        for key in ("id", "trace_id"):  # the only fields that differ between the two runs
            result["run"].pop(key)
        return result

    assert comparable(reverse_trace) == comparable(in_order_trace)


def test_concurrent_requests_on_one_run(receiver_url: str) -> None:
    trace_id, base = new_ids()
    t0 = time.time_ns()
    run_span = make_span(trace_id, base, "busy_run", attrs={"xray.kind": "run"}, start=t0, duration_ns=10**9)
    requests = [
        export_request([make_span(trace_id, base + 1 + i * 10 + j, f"step_{i}_{j}", parent=base,
                                  start=t0 + i * 10 + j, attrs={"xray.step.cost": 0.5}) for j in range(10)]
                       + ([run_span] if i % 5 == 0 else []))
        for i in range(40)
    ]
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda r: post_otlp(receiver_url, r).status, requests * 2))  # each sent twice
    assert statuses == [200] * 80
    run = get_json(run_url(receiver_url, trace_id))
    assert (run["name"], run["status"], run["step_count"]) == ("busy_run", "COMPLETED", 400)
    assert run["total_cost"] == 200.0


def test_run_and_root_span_precedence(receiver_url: str) -> None:
    """A trace with a plain root span and a child xray.kind=run span: the run span names the run,
    and the root span is kept as a step; the result is the same in either arrival order."""
    results = []
    for order in (1, -1):
        trace_id, base = new_ids()
        t0 = time.time_ns()
        spans = [make_span(trace_id, base, "http_root", start=t0, duration_ns=10**8),
                 make_span(trace_id, base + 1, "the_run", parent=base, attrs={"xray.kind": "run"}, start=t0 + 1),
                 make_span(trace_id, base + 2, "work", parent=base + 1, start=t0 + 2)]
        for span in spans[::order]:
            assert post_otlp(receiver_url, export_request([span])).status == 200
        run = get_json(run_url(receiver_url, trace_id))
        steps = get_json(run_url(receiver_url, trace_id) + "/steps")
        results.append((run["name"], run["step_count"], [(s["name"], s["depth"]) for s in steps]))
    assert results[0] == results[1] == ("the_run", 2, [("http_root", 0), ("work", 0)])


def test_huge_names_are_capped_not_refused(receiver_url: str) -> None:
    trace_id, base = new_ids()
    spans = [make_span(trace_id, base, "r" * 100_000, attrs={"xray.kind": "run"}),
             make_span(trace_id, base + 1, "s" * 100_000, parent=base)]
    reply = post_otlp(receiver_url, export_request(spans))
    assert reply.status == 200
    assert not ExportTraceServiceResponse.FromString(reply.body).HasField("partial_success")
    run = get_json(run_url(receiver_url, trace_id))
    assert run["name"].startswith("r" * 512) and run["name"].endswith("[truncated by xray-otel]")
    assert get_json(run_url(receiver_url, trace_id) + "/steps")[0]["name"].startswith("s" * 512)


def test_two_receivers_share_one_database(pg_dsn: str, receiver_url: str) -> None:
    """No receiver state matters: one run's spans split across two receivers give the one-receiver result."""
    from conftest import serve

    t0 = time.time_ns()
    single, base = new_ids()
    assert post_otlp(receiver_url, export_request(pipeline_spans(single, base, t0))).status == 200
    split, _ = new_ids()
    spans = pipeline_spans(split, base, t0)
    with serve(pg_dsn) as second:
        for i, span in enumerate(spans):
            assert post_otlp(receiver_url if i % 2 else second.url, export_request([span])).status == 200

    def analysis(trace_id: bytes) -> dict:
        result = get_json(f"{receiver_url}/analyze/{uuid.UUID(bytes=trace_id)}")
        for key in ("id", "trace_id"):  # the only fields that differ between the two runs
            result["run"].pop(key)
        return result

    assert analysis(split) == analysis(single)


@pytest.mark.parametrize("path", ["/v1/metrics", "/v1/logs"])
def test_metrics_and_logs_exports_are_answered_success_and_counted(receiver_url: str, path: str) -> None:
    """traceloop-sdk and the OTel SDKs export metrics (and logs) by default: a 404 made the app print
    'Failed to export metrics batch code: 404' every interval."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    before = call("GET", receiver_url + "/metrics").body.decode()
    body = ExportMetricsServiceRequest().SerializeToString() or b"\n\x00"
    reply = call("POST", receiver_url + path, body, {"Content-Type": "application/x-protobuf"})
    assert (reply.status, reply.body) == (200, b"")
    as_json = call("POST", receiver_url + path, b"{}", {"Content-Type": "application/json"})
    assert (as_json.status, as_json.json()) == (200, {})
    after = call("GET", receiver_url + "/metrics").body.decode()
    signal = path.rsplit("/", 1)[1]
    line = f'xray_otlp_ignored_requests_total{{signal="{signal}",transport="http"}}'
    count = lambda text: float(next((ln.split()[-1] for ln in text.splitlines() if ln.startswith(line)), "0"))  # noqa: E731
    assert count(after) == count(before) + 2


def test_a_metrics_export_in_no_otlp_content_type_is_415(receiver_url: str) -> None:
    reply = call("POST", receiver_url + "/v1/metrics", b"hello", {"Content-Type": "text/plain"})
    assert reply.status == 415
