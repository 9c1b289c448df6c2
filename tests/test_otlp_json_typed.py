"""otlp_json_typed, the fast path for OTLP/JSON as exporters write it.

What it takes must map to exactly the rows otlp_json's message maps to; whatever it cannot be
sure of (other spellings, unknown fields, anything wrong) it leaves to otlp_json, so every
verdict and error message stays otlp_json's. test_fuzz.py checks both properties on generated
requests and documents; these cases name the edges one by one.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from helpers import call, export_request, get_json, make_span, new_ids, otlp_json_body, pipeline_spans, post_otlp
from test_codec import LINK_SPAN_HEX, LINK_TRACE_HEX, PARENT_HEX, SPAN_HEX, TRACE_HEX, request_json, span_json
from xray_otel.mapping.spans import map_request
from xray_otel.receiver import otlp_json_typed
from xray_otel.receiver.codec import JsonCodec, decode_json_messages
from xray_otel.receiver.errors import BadRequest

EVERY_KIND = [
    {"key": "s", "value": {"stringValue": "text"}},
    {"key": "empty", "value": {"stringValue": ""}},
    {"key": "i", "value": {"intValue": "-9223372036854775808"}},
    {"key": "n", "value": {"intValue": 42}},
    {"key": "zero", "value": {"intValue": "0"}},
    {"key": "b", "value": {"boolValue": False}},
    {"key": "d", "value": {"doubleValue": 2.5}},
    {"key": "d_int", "value": {"doubleValue": 3}},
    {"key": "nan", "value": {"doubleValue": "NaN"}},
    {"key": "inf", "value": {"doubleValue": "-Infinity"}},
    {"key": "bytes", "value": {"bytesValue": "AQID"}},
    {"key": "nulls", "value": {"stringValue": None, "intValue": "7"}},
    {"key": "unset", "value": {}},
    {"key": "array", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "1"}, {}]}}},
    {"key": "map", "value": {"kvlistValue": {"values": [
        {"key": "inner", "value": {"kvlistValue": {"values": [{"key": "x", "value": {"doubleValue": "Infinity"}}]}}},
    ]}}},
    {"key": "xray.step.input_count", "value": {"intValue": "5000"}},
    {"key": "xray.step.inputs", "value": {"stringValue": '{"query": "bottle"}'}},
]


def full(body: bytes) -> Any:
    """What the JSON codec gave before this fast path, and gives for whatever it leaves: otlp_json's messages."""
    return decode_json_messages(body)


def outcome(decode: Any, body: bytes) -> Any:
    try:
        return map_request(decode(body))
    except BadRequest as exc:
        return str(exc)


def test_the_exporter_form_with_every_value_kind_maps_as_otlp_json_maps_it() -> None:
    span = span_json(attributes=EVERY_KIND, kind=3, traceState="k=v", flags=257, droppedAttributesCount=1,
                     status={"code": 2, "message": "boom"},
                     events=[{"timeUnixNano": "1544712660500000000", "name": "exception",
                              "attributes": [{"key": "exception.type", "value": {"stringValue": "ValueError"}}]}],
                     links=[{"traceId": LINK_TRACE_HEX, "spanId": LINK_SPAN_HEX, "flags": 1,
                             "attributes": [{"key": "l", "value": {"intValue": "3"}}]}])
    root = span_json(spanId=PARENT_HEX, parentSpanId="", name="run", startTimeUnixNano=1544712660000000000,
                     attributes=[{"key": "xray.kind", "value": {"stringValue": "run"}}])
    body = json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}],
                     "droppedAttributesCount": 0},
        "schemaUrl": "https://opentelemetry.io/schemas/1.26.0",
        "scopeSpans": [{"scope": {"name": "lib", "version": "1.0", "attributes": EVERY_KIND[:3]},
                        "schemaUrl": "", "spans": [root, span]}]}]}).encode()
    typed = otlp_json_typed.decode(body)
    assert typed is not None
    batch = map_request(typed)
    assert batch == map_request(full(body))
    assert len(batch.steps) == 2 and batch.rejected == 0
    step = next(s for s in batch.steps if s.span_id == SPAN_HEX)
    attributes = json.loads(step.attributes)
    assert attributes["i"] == -(2**63) and attributes["nan"] == "NaN" and attributes["bytes"] == "010203"
    assert attributes["map"] == {"inner": {"x": "Infinity"}} and attributes["unset"] is None
    assert step.input_count == 5000 and step.error == "boom" and step.run_id.hex == TRACE_HEX


def _with(**fields: Any) -> bytes:
    return request_json(span_json(**fields))


@pytest.mark.parametrize("body", [
    pytest.param(request_json(span_json(startTimeUnixNano="1", endTimeUnixNano="0")), id="no-end-time"),
    pytest.param(request_json(span_json(startTimeUnixNano="5", endTimeUnixNano="4")), id="ends-before-start"),
    pytest.param(request_json(span_json(traceId="00" * 16)), id="zero-trace-id"),
    pytest.param(request_json(span_json(spanId="ab" * 7)), id="short-span-id"),
    pytest.param(request_json(span_json(traceId="")), id="empty-trace-id"),
    pytest.param(request_json(span_json(kind=99, status={"code": 7})), id="unknown-enum-numbers"),
    pytest.param(request_json(span_json(startTimeUnixNano="18446744073709551615")), id="largest-time"),
    pytest.param(request_json(span_json(traceId=TRACE_HEX.upper())), id="upper-case-hex"),
    pytest.param(_with(attributes=[{"key": "a", "value": {"intValue": "1e3"}}]), id="int-with-exponent"),
    pytest.param(_with(attributes=[{"key": "a", "value": {"doubleValue": "2.5"}}]), id="double-as-text"),
    pytest.param(b'{"resourceSpans": []}', id="empty"),
    pytest.param(b"{}", id="no-resource-spans"),
])
def test_edges_it_takes_map_alike(body: bytes) -> None:
    """Spans the mapping refuses, and values otlp_json's own converters (which this path calls) accept."""
    typed = otlp_json_typed.decode(body)
    assert typed is not None
    assert map_request(typed) == map_request(full(body))


LEFT_TO_OTLP_JSON = [
    pytest.param(_with(kind="SPAN_KIND_SERVER"), id="enum-name"),
    pytest.param(_with(status={"code": "STATUS_CODE_ERROR"}), id="status-enum-name"),
    pytest.param(json.dumps({"resource_spans": json.loads(request_json(span_json()))["resourceSpans"]}).encode(),
                 id="snake-case"),
    pytest.param(_with(span_id=SPAN_HEX), id="snake-case-in-span"),
    pytest.param(_with(traceId="S/eVGRbNQ92ESOshHIAxnA=="), id="base64-id"),
    pytest.param(_with(traceId=TRACE_HEX[:8] + " " + TRACE_HEX[8:]), id="hex-with-space"),
    pytest.param(_with(traceId="zz" * 16), id="not-hex"),
    pytest.param(_with(attributes=[{"key": "a", "value": {"stringValue": "x", "intValue": "1"}}]), id="two-members"),
    pytest.param(_with(attributes=[{"key": "a", "value": {"intValue": 1, "boolValue": True}}]), id="two-non-strings"),
    pytest.param(_with(attributes=[{"key": "a", "value": {"arrayValue": {"values": [
        {"stringValue": "x", "doubleValue": 1.5}]}}}]), id="two-members-nested"),
    pytest.param(_with(attributes=[{"key": "a", "value": {"intValue": "9223372036854775808"}}]), id="int-too-big-text"),
    pytest.param(_with(attributes=[{"key": "a", "value": {"intValue": 9223372036854775808}}]), id="int-too-big"),
    pytest.param(_with(attributes=[{"key": "a", "value": {"doubleValue": "nan"}}]), id="lower-case-nan"),
    pytest.param(_with(attributes=[{"key": "a", "value": {"bytesValue": "not base64!"}}]), id="bad-base64"),
    pytest.param(_with(attributes=[{"key": "a", "keyStrindex": 1}]), id="key-strindex"),
    pytest.param(_with(attributes=[{"key": "a", "value": None}]), id="null-value"),
    pytest.param(_with(attributes=None), id="null-list"),
    pytest.param(_with(status=None), id="null-message"),
    pytest.param(_with(startTimeUnixNano=1.5e18), id="float-time"),
    pytest.param(_with(startTimeUnixNano="-1"), id="negative-time-text"),
    pytest.param(_with(endTimeUnixNano=-1), id="negative-time"),
    pytest.param(_with(startTimeUnixNano=2**64), id="time-past-uint64"),
    pytest.param(_with(flags=-1), id="negative-flags"),
    pytest.param(_with(unknownField=1), id="unknown-field"),
    pytest.param(request_json(span_json(), resource={"entityRefs": [{"type": "host"}]}), id="entity-refs"),
    pytest.param(_with(name="\ud800"), id="lone-surrogate"),
    pytest.param(request_json(span_json(name="caf")).replace(b'"caf"', b'"caf\xe9"'), id="not-utf-8"),
    pytest.param(b"[]", id="not-an-object"),
    pytest.param(b"", id="empty-body"),
    pytest.param(b'{"resourceSpans": [', id="not-json"),
    pytest.param(b"\xef\xbb\xbf{}", id="byte-order-mark"),
]


@pytest.mark.parametrize("body", LEFT_TO_OTLP_JSON)
def test_other_forms_and_every_error_are_left_to_otlp_json(body: bytes) -> None:
    assert otlp_json_typed.decode(body) is None
    assert outcome(JsonCodec().decode, body) == outcome(full, body)


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(depth):
        value = {"arrayValue": {"values": [value]}}
    return value


def test_deep_values_are_left_to_otlp_json_which_knows_upbs_limit() -> None:
    shallow = _with(attributes=[{"key": "a", "value": nested(otlp_json_typed.MAX_NESTING - 1)}])
    deep = _with(attributes=[{"key": "a", "value": nested(otlp_json_typed.MAX_NESTING)}])
    assert otlp_json_typed.decode(shallow) is not None
    assert map_request(otlp_json_typed.decode(shallow)) == map_request(full(shallow))
    assert otlp_json_typed.decode(deep) is None
    assert outcome(JsonCodec().decode, deep) == outcome(full, deep)


def test_duplicate_keys_keep_the_last_as_json_does() -> None:
    body = request_json(span_json()).replace(b'"name": "retrieve"', b'"name": "first", "name": "second"')
    typed = otlp_json_typed.decode(body)
    assert typed is not None and typed.resource_spans[0].scope_spans[0].spans[0].name == "second"
    assert map_request(typed) == map_request(full(body))


def test_over_http_json_and_protobuf_store_the_same_steps(receiver_url: str) -> None:
    """The same pipeline, once as protobuf and once as exporter-form JSON (another trace id): equal steps."""
    (trace_a, base), (trace_b, _) = new_ids(), new_ids()
    spans_a = pipeline_spans(trace_a, base) + [make_span(trace_a, base + 9, "fails", parent=base, error="bad")]
    spans_b = copy.deepcopy(spans_a)
    for span in spans_b:
        span.trace_id = trace_b
    assert post_otlp(receiver_url, export_request(spans_a)).status == 200
    body = otlp_json_body(export_request(spans_b))
    assert otlp_json_typed.decode(body) is not None  # the fast path is what this test exercises
    assert call("POST", receiver_url + "/v1/traces", body, {"Content-Type": "application/json"}).status == 200

    def steps(trace_id: bytes) -> list[dict[str, Any]]:
        rows = get_json(f"{receiver_url}/runs/{trace_id.hex()}/steps")
        return [{k: v for k, v in row.items() if k != "run_id"} for row in rows]

    assert len(steps(trace_a)) == 5 and steps(trace_b) == steps(trace_a)
    run_a, run_b = get_json(f"{receiver_url}/runs/{trace_a.hex()}"), get_json(f"{receiver_url}/runs/{trace_b.hex()}")
    assert {k: v for k, v in run_b.items() if k not in ("id", "trace_id")} == \
        {k: v for k, v in run_a.items() if k not in ("id", "trace_id")}
