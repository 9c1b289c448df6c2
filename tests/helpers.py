"""Small helpers shared by the integration tests: HTTP calls, OTLP request builders, a query."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status


def db(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    """``query``'s rows, on a connection of its own (for checking what a test stored)."""
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return asyncio.run(go())


class Reply:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


def call(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Reply:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return Reply(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.headers, exc.read())


def get_json(url: str) -> Any:
    reply = call("GET", url)
    assert reply.status == 200, (reply.status, reply.body[:500])
    return reply.json()


def post_otlp(url: str, request: ExportTraceServiceRequest, **headers: str) -> Reply:
    return call("POST", url + "/v1/traces", request.SerializeToString(),
                {"Content-Type": "application/x-protobuf", **headers})


def new_ids() -> tuple[bytes, int]:
    """A random trace id and a counter base for span ids."""
    return os.urandom(16), int.from_bytes(os.urandom(4), "big") << 16


def span_id(n: int) -> bytes:
    return n.to_bytes(8, "big")


class Array(list):
    """A list that ``attr`` sends as an OTLP array value (of str, int, float or bool items), as the OTel SDKs
    send a sequence attribute; a plain list or dict is sent as a JSON string."""


def attr(key: str, value: Any) -> KeyValue:
    if isinstance(value, Array):
        return KeyValue(key=key, value=AnyValue(array_value=ArrayValue(values=[attr("", v).value for v in value])))
    if isinstance(value, bool):
        v = AnyValue(bool_value=value)
    elif isinstance(value, int):
        v = AnyValue(int_value=value)
    elif isinstance(value, float):
        v = AnyValue(double_value=value)
    elif isinstance(value, (dict, list)):
        v = AnyValue(string_value=json.dumps(value))
    else:
        v = AnyValue(string_value=str(value))
    return KeyValue(key=key, value=v)


def make_span(trace_id: bytes, sid: int, name: str, *, parent: int | None = None, attrs: dict[str, Any] | None = None,
              start: int | None = None, duration_ns: int = 1_000_000, error: str | None = None) -> Span:
    start = start or time.time_ns()
    span = Span(trace_id=trace_id, span_id=span_id(sid), name=name, kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=start, end_time_unix_nano=start + duration_ns,
                attributes=[attr(k, v) for k, v in (attrs or {}).items()])
    if parent is not None:
        span.parent_span_id = span_id(parent)
    if error is not None:
        span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=error))
    return span


_ID_NAMES = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}


def otlp_json_document(request: ExportTraceServiceRequest, **options: bool) -> dict[str, Any]:
    """``request`` in protobuf's JSON mapping (``options`` go to json_format.MessageToDict, e.g.
    preserving_proto_field_name=True for snake_case), with span and link ids in hex as OTLP/JSON has them."""
    document = json_format.MessageToDict(request, **options)
    for resource_spans in document.get("resourceSpans", document.get("resource_spans", [])):
        for scope_spans in resource_spans.get("scopeSpans", resource_spans.get("scope_spans", [])):
            for span in scope_spans.get("spans", []):
                for obj in [span, *span.get("links", [])]:
                    for key in _ID_NAMES & obj.keys():
                        obj[key] = base64.b64decode(obj[key]).hex()
    return document


def otlp_json_body(request: ExportTraceServiceRequest, **options: bool) -> bytes:
    """``request`` as an OTLP/JSON exporter sends it: hex ids, 64-bit integers as strings, enums as numbers."""
    return json.dumps(otlp_json_document(request, use_integers_for_enums=True, **options)).encode()


def export_request(spans: list[Span], service: str = "test-service") -> ExportTraceServiceRequest:
    rs = ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])
    rs.resource.attributes.append(attr("service.name", service))
    return ExportTraceServiceRequest(resource_spans=[rs])


def pipeline_spans(trace_id: bytes, base: int, t0: int | None = None) -> list[Span]:
    """A run span and four steps with funnel figures: 1000 -> 5000 (retrieve) -> 300 -> 30 -> 1."""
    t0 = t0 or time.time_ns()
    ms = 1_000_000
    return [
        make_span(trace_id, base, "select_competitor", attrs={"xray.kind": "run", "xray.tag.product": "P1",
                                                                "xray.run.outputs": {"selected": "B07"}},
                  start=t0, duration_ns=50 * ms),
        make_span(trace_id, base + 1, "keywords", parent=base, start=t0 + ms,
                  attrs={"xray.kind": "step", "xray.step.type": "llm", "xray.step.cost": 0.002,
                         "xray.step.reasoning": "title words", "gen_ai.request.model": "gpt-4o"}),
        make_span(trace_id, base + 2, "retrieve", parent=base, start=t0 + 2 * ms,
                  attrs={"xray.kind": "step", "xray.step.type": "retrieval", "xray.step.output_count": 5000}),
        make_span(trace_id, base + 3, "filter_price", parent=base, start=t0 + 3 * ms,
                  attrs={"xray.kind": "step", "xray.step.type": "filter", "xray.step.input_count": 5000,
                         "xray.step.output_count": 300, "xray.step.rejections": {"price_too_high": 4700}}),
        make_span(trace_id, base + 4, "rank", parent=base, start=t0 + 4 * ms,
                  attrs={"xray.kind": "step", "xray.step.type": "rank", "xray.step.input_count": 300,
                         "xray.step.output_count": 1, "xray.step.rejections": {"low_score": 299},
                         "xray.step.cost": 0.001}),
    ]


def deliver_chaotically(url: str, spans: list[Span], rng: random.Random, batch: int) -> None:
    """Shuffled spans in batches, each batch sent 1-3 times, in shuffled order, 8 at once: all must get 200."""
    spans = spans[:]
    rng.shuffle(spans)
    batches = [spans[i:i + batch] for i in range(0, len(spans), batch)]
    deliveries = [b for b in batches for _ in range(rng.randint(1, 3))]
    rng.shuffle(deliveries)
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda b: post_otlp(url, export_request(b)).status, deliveries))
    assert statuses == [200] * len(deliveries)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Until ``xray-otel serve`` (``proc``, at ``url``) answers /ready 200; its stderr if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()
        try:
            if call("GET", url + "/ready").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("receiver did not become ready")
