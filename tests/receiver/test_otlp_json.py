"""OTLP/JSON decoding (xray_otel.receiver.otlp_json) beyond what test_codec covers.

Parity: whatever the real SDK's encoder produces, written as OTLP/JSON in every
spelling json_format can produce, decodes to the very fields of the message the SDK built.
Errors: every wrong shape is a BadRequest that names the field, never another exception.
Two ways, one verdict: the typed pass reads the form exporters write (and the other camelCase
spellings) in one parse; the general walk reads the rest and words every error. Whatever a body
is, both give the same fields (round_trip), and each form goes the way it should (the last part).
test_fuzz.py checks the same against the decoder as it was before the two were one module.
"""

from __future__ import annotations

import base64
import copy
import json
import random
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, EntityRef, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ResourceProto
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags, TraceState

from helpers import call, export_request, get_json, make_span, new_ids, otlp_json_body, otlp_json_document, \
    pipeline_spans, post_otlp
from test_codec import LINK_SPAN_HEX, LINK_TRACE_HEX, PARENT_HEX, fields, request_json, span_json
from xray_otel.mapping.spans import map_request
from xray_otel.receiver import otlp_json
from xray_otel.receiver.codec import JsonCodec, ProtobufCodec
from xray_otel.receiver.errors import BadRequest
from xray_otel.receiver.otlp_json import MAX_DEPTH

TRACE_HEX = "5b8efff798038103d269b633813fc60c"
SPAN_HEX = "eee19b7ec3c1b174"
json_codec = JsonCodec()
proto_codec = ProtobufCodec()


def sdk_request() -> ExportTraceServiceRequest:
    """Two resources' worth of SDK spans using every field the SDK sets, dropped counts included."""
    exporter = InMemorySpanExporter()
    limits = SpanLimits(max_span_attributes=8, max_events=2, max_links=2, max_event_attributes=2)
    resource = Resource({"service.name": "otlp-json-test", "host.cores": 2, "ratio": 0.5, "tags": ["a", "b"]},
                        schema_url="https://opentelemetry.io/schemas/1.21.0")
    provider = TracerProvider(resource=resource, span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("xray-test", "1.2.3", schema_url="https://opentelemetry.io/schemas/1.24.0",
                                 attributes={"scope.flag": True})
    remote = SpanContext(int(TRACE_HEX, 16), int(SPAN_HEX, 16), is_remote=True, trace_flags=TraceFlags(1),
                         trace_state=TraceState([("vendor", "value"), ("other", "x")]))
    with tracer.start_as_current_span("pipeline", context=trace.set_span_in_context(NonRecordingSpan(remote)),
                                      kind=SpanKind.SERVER, attributes={"xray.kind": "run"}) as run:
        with tracer.start_as_current_span("filter", links=[Link(remote, {"why": "caller"}),
                                                           Link(run.get_span_context()), Link(remote)]) as step:
            step.set_attributes({"xray.step.input_count": 5000, "big": 2**63 - 1, "negative": -7, "score": 0.25,
                                 "flag": False, "names": ["a", "é", ""], "sizes": [1, 2, 3], "ratios": [0.5, -1.0],
                                 "raw": b"\x00\x01\xff", "nested": {"inner": {"n": 1, "s": "x"}, "list": [True]},
                                 "dropped.one": 1})
            step.add_event("dropped, as the oldest past max_events")
            step.add_event("checkpoint", {"n": 3, "s": "x", "dropped": True})
            step.add_event("last")
        with tracer.start_as_current_span("llm", kind=SpanKind.CLIENT) as failing:
            failing.record_exception(RuntimeError("model timed out"))
            failing.set_status(StatusCode.ERROR, "model timed out")
        with tracer.start_as_current_span("ok", kind=SpanKind.PRODUCER) as fine:
            fine.set_status(StatusCode.OK)
    other = TracerProvider(resource=Resource({"service.name": "second"}))
    other.add_span_processor(SimpleSpanProcessor(exporter))
    with other.get_tracer("second-lib").start_as_current_span("consume", kind=SpanKind.CONSUMER):
        pass
    provider.shutdown()
    other.shutdown()
    return encode_spans(exporter.get_finished_spans())




def walked(body: bytes) -> Any:
    """What the general walk alone makes of ``body``, whichever way otlp_json.decode would read it."""
    return otlp_json._walk(otlp_json._document(body))


def round_trip(document: Any) -> Any:
    """The JSON codec's request for ``document``, which the walk alone gives too, field for field."""
    body = json.dumps(document).encode()
    request = json_codec.decode(body)
    assert fields(walked(body)) == fields(request)
    return request


# --- parity with the SDK's protobuf ---------------------------------------------------


def test_sdk_request_uses_what_the_parity_tests_claim() -> None:
    request = sdk_request()
    assert len(request.resource_spans) == 2
    spans = {s.name: s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans}
    assert spans["filter"].dropped_attributes_count and spans["filter"].dropped_events_count
    assert spans["filter"].dropped_links_count and spans["filter"].events[0].dropped_attributes_count
    assert spans["pipeline"].trace_state and spans["pipeline"].flags
    kinds = {a.value.WhichOneof("value") for a in spans["filter"].attributes}
    assert kinds >= {"int_value", "double_value", "bool_value", "array_value", "kvlist_value", "bytes_value"}
    assert request.resource_spans[0].schema_url and request.resource_spans[0].scope_spans[0].scope.attributes


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({}, id="camelCase-enum-names"),
        pytest.param({"preserving_proto_field_name": True}, id="snake_case"),
        pytest.param({"use_integers_for_enums": True}, id="enum-integers"),
        pytest.param({"preserving_proto_field_name": True, "use_integers_for_enums": True}, id="snake-enum-ints"),
    ],
)
def test_sdk_request_as_otlp_json_gives_the_same_message(options: dict[str, bool]) -> None:
    request = sdk_request()
    document = otlp_json_document(request, **options)
    assert fields(round_trip(document)) == fields(request)


def test_sdk_request_with_base64_ids_and_numbers_for_int64() -> None:
    """protobuf's canonical JSON (base64 ids) with every 64-bit integer written as a JSON number."""
    request = sdk_request()
    document = json_format.MessageToDict(request)

    def numbers(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: int(v) if k in ("startTimeUnixNano", "endTimeUnixNano", "timeUnixNano", "intValue")
                    else numbers(v) for k, v in node.items()}
        return [numbers(v) for v in node] if isinstance(node, list) else node

    assert fields(round_trip(numbers(document))) == fields(request)


def test_every_field_of_a_hand_built_request() -> None:
    """What the SDK never sets: entity refs, string-table indexes, a scope's dropped count, null values."""
    value = AnyValue(kvlist_value={"values": [KeyValue(key="k", value=AnyValue(double_value=float("inf")))]})
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=ResourceProto(dropped_attributes_count=3, entity_refs=[
            EntityRef(schema_url="s", type="host", id_keys=["host.id"], description_keys=["host.name", "os"])]),
        scope_spans=[ScopeSpans(schema_url="u", spans=[Span(
            trace_id=bytes(16), span_id=bytes(8), attributes=[
                KeyValue(key_strindex=4, value=AnyValue(string_value_strindex=7)),
                KeyValue(key="v", value=value),
                KeyValue(key="empty", value=AnyValue()),
                KeyValue(key="nan", value=AnyValue(double_value=float("nan"))),
                KeyValue(key="arr", value=AnyValue(array_value={"values": [AnyValue(), AnyValue(int_value=-1)]})),
            ],
            status=Status(),
        )])],
    )])
    request.resource_spans[0].scope_spans[0].scope.dropped_attributes_count = 9
    document = otlp_json_document(request)
    assert fields(round_trip(document)) == fields(request)
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"][0]["value"]["stringValue"] = None
    assert fields(round_trip(document)) == fields(request)


# --- presence, nulls, spellings ---------------------------------------------------------


def one_span(**fields: Any) -> dict[str, Any]:
    return {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": TRACE_HEX, "spanId": SPAN_HEX, **fields}]}]}]}


def span_of(request: Any) -> Any:
    return request.resource_spans[0].scope_spans[0].spans[0]


def test_empty_objects_read_as_in_protobufs_json_mapping() -> None:
    """{} is a message with every field at its default, as json_format.ParseDict reads it: an AnyValue with no
    value, or an empty array or kvlist, which is a value (protobuf's presence, HasField, is not kept)."""
    document = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {}, "spans": [{
        "status": {}, "attributes": [{"key": "a", "value": {}}, {"key": "b", "value": {"arrayValue": {}}},
                                     {"key": "c", "value": {"kvlistValue": {}}}]}]}]}]}
    request = round_trip(document)
    assert fields(request) == fields(json_format.ParseDict(document, ExportTraceServiceRequest()))
    span = span_of(request)
    assert span.attributes[0].value.WhichOneof("value") is None
    assert [a.value.WhichOneof("value") for a in span.attributes[1:]] == ["array_value", "kvlist_value"]
    assert [len(span.attributes[1].value.array_value.values), len(span.attributes[2].value.kvlist_value.values)] \
        == [0, 0]


def test_null_is_absent_everywhere() -> None:
    document = one_span(parentSpanId=None, name=None, kind=None, startTimeUnixNano=None, attributes=None,
                        events=[{"name": None, "timeUnixNano": None, "attributes": None}], links=None, status=None,
                        droppedAttributesCount=None, traceState=None, flags=None)
    document["resourceSpans"][0].update(resource=None, schemaUrl=None)
    document["resourceSpans"][0]["scopeSpans"][0].update(scope=None, schemaUrl=None)
    request = round_trip(document)
    span = span_of(request)
    assert (span.status.code, span.status.message) == (0, "") and len(span.events) == 1 and span.name == ""
    assert (span.parent_span_id, span.kind, span.start_time_unix_nano, span.attributes, span.links) == (b"", 0, 0, [], [])
    assert (request.resource_spans[0].schema_url, request.resource_spans[0].resource.attributes) == ("", [])


def test_an_anyvalue_holds_one_value() -> None:
    with pytest.raises(BadRequest, match=r"attributes\[0\]\.value: an AnyValue holds one value"):
        round_trip(one_span(attributes=[{"key": "a", "value": {"stringValue": "x", "intValue": 1}}]))
    with pytest.raises(BadRequest, match="one value"):
        round_trip(one_span(attributes=[{"key": "a", "value": {"stringValue": "x", "string_value": "y"}}]))
    span = span_of(round_trip(one_span(attributes=[{"key": "a", "value": {"stringValue": None, "intValue": 1,
                                                                          "futureValue": "?"}}])))
    assert span.attributes[0].value.WhichOneof("value") == "int_value"


@pytest.mark.parametrize(
    ("camel", "snake"),
    [("traceId", "trace_id"), ("startTimeUnixNano", "start_time_unix_nano"), ("droppedLinksCount",
                                                                                "dropped_links_count")],
)
def test_a_scalar_under_both_spellings_is_bad_request(camel: str, snake: str) -> None:
    """json_format kept whichever came last; neither is safe to pick."""
    document = one_span(startTimeUnixNano="1", droppedLinksCount=0)
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0][snake] = TRACE_HEX if "Id" in camel else 2
    with pytest.raises(BadRequest, match=rf"spans\[0\]: field given twice, as '{camel}' and '{snake}'"):
        round_trip(document)


# --- scalars -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1e3", 1000), (1e3, 1000), ("-12", -12), ("12.0", 12), (7.0, 7), ("0", 0), ("000123", 123),
     ("9223372036854775807", 2**63 - 1), ("-9.223372036854775808e18", -(2**63))],
)
def test_int_value_spellings_proto3_json_allows(value: Any, expected: int) -> None:
    span = span_of(round_trip(one_span(attributes=[{"key": "n", "value": {"intValue": value}}])))
    assert span.attributes[0].value.int_value == expected


@pytest.mark.parametrize("value", ["1.5", 1.5, True, "", " 5", "5 ", "0x10", "1e400", "9223372036854775808",
                                   "١٢", "²", [], {}, "9" * 5000])
def test_int_value_that_is_not_an_int64_is_bad_request(value: Any) -> None:
    with pytest.raises(BadRequest, match=r"^resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[0\]\.attributes\[0\]\.value"
                                         r"\.intValue: "):
        round_trip(one_span(attributes=[{"key": "n", "value": {"intValue": value}}]))


@pytest.mark.parametrize(("value", "expected"), [("1.5", 1.5), (2, 2.0), ("-Infinity", float("-inf")), ("1e-3", 0.001),
                                                 (2**64, float(2**64))])
def test_double_value_spellings(value: Any, expected: float) -> None:
    span = span_of(round_trip(one_span(attributes=[{"key": "d", "value": {"doubleValue": value}}])))
    assert span.attributes[0].value.double_value == expected


@pytest.mark.parametrize("raw", [b"NaN", b"Infinity", b"-Infinity", b'"nan"', b'"inf"', b'"1e999"', b"true",
                                 b'"one"', b"1e999", b"1" + b"0" * 400])
def test_double_value_that_is_not_a_double_is_bad_request(raw: bytes) -> None:
    """A bare NaN/Infinity is not JSON (proto3 JSON quotes them); out-of-range numbers are not doubles."""
    body = json.dumps(one_span(attributes=[{"key": "d", "value": {"doubleValue": "PLACEHOLDER"}}])).encode()
    with pytest.raises(BadRequest, match=r"attributes\[0\]\.value\.doubleValue: "):
        json_codec.decode(body.replace(b'"PLACEHOLDER"', raw))


@pytest.mark.parametrize(("kind", "expected"), [("3", 3), (3.0, 3), (7, 7), ("SPAN_KIND_PRODUCER", 4),
                                                ("span_kind_server", 0)])
def test_enum_numbers_names_and_unknown_names(kind: Any, expected: int) -> None:
    """proto3 enums are open: an unknown number is kept; an unknown name is ignored (names are case-sensitive)."""
    assert span_of(round_trip(one_span(kind=kind))).kind == expected


@pytest.mark.parametrize("kind", [True, 1.5, 2**31, [], {}])
def test_enum_of_wrong_type_is_bad_request(kind: Any) -> None:
    with pytest.raises(BadRequest, match=r"spans\[0\]\.kind: "):
        round_trip(one_span(kind=kind))


@pytest.mark.parametrize(
    ("field", "value"),
    [("droppedAttributesCount", -1), ("droppedEventsCount", 2**32), ("flags", 2**32), ("endTimeUnixNano", -1),
     ("startTimeUnixNano", "18446744073709551616")],
)
def test_unsigned_out_of_range_is_bad_request(field: str, value: int) -> None:
    with pytest.raises(BadRequest, match=rf"spans\[0\]\.{field}: .* is out of range"):
        round_trip(one_span(**{field: value}))


def test_bytes_value_is_base64_in_any_proto3_form() -> None:
    raw = bytes(range(250, 256)) + b"\x00\x3e\x3f"
    forms = [base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("=")]
    span = span_of(round_trip(one_span(attributes=[{"key": "b", "value": {"bytesValue": f}} for f in forms])))
    assert [a.value.bytes_value for a in span.attributes] == [raw, raw]
    with pytest.raises(BadRequest, match=r"attributes\[0\]\.value\.bytesValue: '!!' is not base64"):
        round_trip(one_span(attributes=[{"key": "b", "value": {"bytesValue": "!!"}}]))


def test_hex_id_with_whitespace_is_not_an_id() -> None:
    """bytes.fromhex skips spaces; an id never has any."""
    with pytest.raises(BadRequest, match=r"spans\[0\]\.spanId: id 'eee19b7e c3c1b1' is neither hex nor base64"):
        round_trip(one_span(spanId="eee19b7e c3c1b1"))


# --- where the error is -------------------------------------------------------------------


def wide_document() -> dict[str, Any]:
    """Two resources, the second with two scopes, the second scope with four spans: errors deep in the lists."""
    spans = [{"traceId": TRACE_HEX, "spanId": f"{i:016x}", "name": f"s{i}", "startTimeUnixNano": "1",
              "attributes": [{"key": "a", "value": {"stringValue": "x"}},
                             {"key": "list", "value": {"arrayValue": {"values": [{"intValue": "1"},
                                                                                 {"kvlistValue": {"values": [
                                                                                     {"key": "k", "value": {
                                                                                         "boolValue": True}}]}}]}}}],
              "events": [{"name": "e", "timeUnixNano": "2", "attributes": [{"key": "n", "value": {"intValue": 1}}]}],
              "links": [{"traceId": TRACE_HEX, "spanId": SPAN_HEX}], "status": {"code": 2}} for i in range(1, 5)]
    second = {"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
              "scopeSpans": [{"scope": {"name": "one"}, "spans": []}, {"scope": {"name": "two"}, "spans": spans}]}
    return {"resourceSpans": [{"scopeSpans": []}, second]}


SPAN3 = "resourceSpans[1].scopeSpans[1].spans[3]"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.update(startTimeUnixNano="soon"),
         f"{SPAN3}.startTimeUnixNano: expected an integer, got a string 'soon'"),
        (lambda s: s.update(name=5), f"{SPAN3}.name: expected a string, got a number"),
        (lambda s: s.update(traceId=12), f"{SPAN3}.traceId: expected a hex string, got a number"),
        (lambda s: s["attributes"][1]["value"]["arrayValue"]["values"][0].update(intValue="x"),
         f"{SPAN3}.attributes[1].value.arrayValue.values[0].intValue: expected an integer, got a string 'x'"),
        (lambda s: s["attributes"][1]["value"]["arrayValue"]["values"][1]["kvlistValue"]["values"][0]["value"]
         .update(boolValue="true"),
         f"{SPAN3}.attributes[1].value.arrayValue.values[1].kvlistValue.values[0].value.boolValue: "
         "expected true or false, got a string"),
        (lambda s: s["attributes"][0].update(key=["k"]), f"{SPAN3}.attributes[0].key: expected a string, got an array"),
        (lambda s: s["attributes"][0].update(value="x"),
         f"{SPAN3}.attributes[0].value: expected an object, got a string"),
        (lambda s: s["events"][0].update(timeUnixNano=-1), f"{SPAN3}.events[0].timeUnixNano: -1 is out of range"),
        (lambda s: s["events"][0]["attributes"][0]["value"].update(intValue=None, doubleValue="x"),
         f"{SPAN3}.events[0].attributes[0].value.doubleValue: expected a number, got a string 'x'"),
        (lambda s: s["links"][0].update(spanId="zz!"), f"{SPAN3}.links[0].spanId: id 'zz!' is neither hex nor base64"),
        (lambda s: s.update(links=[None]), f"{SPAN3}.links[0]: expected an object, got null"),
        (lambda s: s.update(status={"code": False}), f"{SPAN3}.status.code: expected an integer, got a boolean"),
        (lambda s: s.update(status=[]), f"{SPAN3}.status: expected an object, got an array"),
        (lambda s: s.update(events={}), f"{SPAN3}.events: expected an array, got an object"),
        (lambda s: s.update(name="\ud800"), f"{SPAN3}.name: string is not valid Unicode (a lone surrogate)"),
        (lambda s: s["attributes"][0].update(key="\udfff"),
         f"{SPAN3}.attributes[0].key: string is not valid Unicode (a lone surrogate)"),
        (lambda s: s["attributes"][0]["value"].update(stringValue="a\ud800"),
         f"{SPAN3}.attributes[0].value.stringValue: string is not valid Unicode (a lone surrogate)"),
    ],
)
def test_error_names_the_field(edit: Any, message: str) -> None:
    document = wide_document()
    edit(document["resourceSpans"][1]["scopeSpans"][1]["spans"][3])
    with pytest.raises(BadRequest) as caught:
        round_trip(document)
    assert caught.value.message.startswith(message)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["resourceSpans"][1]["resource"]["attributes"][0]["value"].update(stringValue=1),
         "resourceSpans[1].resource.attributes[0].value.stringValue: expected a string, got a number"),
        (lambda d: d["resourceSpans"][1]["scopeSpans"][0]["scope"].update(version=1.0),
         "resourceSpans[1].scopeSpans[0].scope.version: expected a string, got a number"),
        (lambda d: d["resourceSpans"][1]["scopeSpans"][0].update(schemaUrl={}),
         "resourceSpans[1].scopeSpans[0].schemaUrl: expected a string, got an object"),
        (lambda d: d["resourceSpans"][1].update(scope_spans=[]),
         "resourceSpans[1]: field given twice, as 'scopeSpans' and 'scope_spans'"),
        (lambda d: d["resourceSpans"].append("x"), "resourceSpans[2]: expected an object, got a string"),
        (lambda d: d.update(resourceSpans=7), "resourceSpans: expected an array, got a number"),
    ],
)
def test_error_names_the_field_outside_spans(edit: Any, message: str) -> None:
    document = wide_document()
    edit(document)
    with pytest.raises(BadRequest) as caught:
        round_trip(document)
    assert caught.value.message == message


def test_wide_document_itself_is_fine() -> None:
    request = round_trip(wide_document())
    assert [len(ss.spans) for ss in request.resource_spans[1].scope_spans] == [0, 4]


def paths(node: Any, prefix: str = "") -> list[str]:
    """Every location in a JSON document, written the way BadRequest messages write them."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        path = f"{prefix}[{key}]" if isinstance(key, int) else f"{prefix}.{key}" if prefix else key
        found += [path, *paths(child, path)]
    return found


def replace(document: Any, path: str, value: Any) -> None:
    keys = [int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")]
    for key in keys[:-1]:
        document = document[key]
    document[keys[-1]] = value


WEIRD = [None, True, False, 0, -1, 1.5, 2**64, "", "x", "NaN", "\ud800", [], [None], [1], {}, {"a": 1},
         {"stringValue": "x"}, {"values": [{}]}]


def test_any_value_anywhere_is_decoded_or_bad_request_at_that_place() -> None:
    """Each location of a full SDK document set to odd JSON values: a message or a BadRequest located at the
    odd value, inside it or at the object holding it; never another exception (a 500)."""
    document = otlp_json_document(sdk_request())
    rng = random.Random(7)
    locations = paths(document)
    assert len(locations) > 200
    for path in locations:
        for value in rng.sample(WEIRD, 6):
            mutated = copy.deepcopy(document)
            replace(mutated, path, value)
            try:
                json_codec.decode(json.dumps(mutated).encode())
            except BadRequest as exc:
                where = exc.message.split(": ", 1)[0]
                inside, enclosing = (where, path), (path, where)
                assert any(a == b or a.startswith((b + ".", b + "[")) for a, b in (inside, enclosing)), \
                    (path, value, exc.message)


# --- nesting: the same limit as the protobuf codec ---------------------------------------------


def nested_value(value: AnyValue, shape: str, levels: int, leaf: str) -> dict[str, Any]:
    """Fill ``value`` ``levels`` arrays or kvlists deep, in place (upb's copies refuse messages this deep);
    return the same value as OTLP/JSON."""
    document: dict[str, Any] = {"string": {"stringValue": "x"}, "array": {"arrayValue": {}}, "empty": {}}[leaf]
    for _ in range(levels):
        if shape == "array":
            document = {"arrayValue": {"values": [document]}}
        else:
            document = {"kvlistValue": {"values": [{"key": "k", "value": document}]}}
    for _ in range(levels):
        value = value.array_value.values.add() if shape == "array" else value.kvlist_value.values.add(key="k").value
    value.SetInParent()
    if leaf == "string":
        value.string_value = "x"
    elif leaf == "array":
        value.array_value.SetInParent()
    return document


def placed(place: str, shape: str, levels: int, leaf: str) -> tuple[ExportTraceServiceRequest, dict[str, Any]]:
    """One deep attribute on the resource, the scope, a span or an event: as a message and as OTLP/JSON."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    scope_spans = resource_spans.scope_spans.add()
    span = scope_spans.spans.add()
    holder = {"resource": resource_spans.resource, "scope": scope_spans.scope, "span": span,
              "event": span.events.add() if place == "event" else None}[place]
    attributes = [{"key": "deep", "value": nested_value(holder.attributes.add(key="deep").value, shape, levels, leaf)}]
    span_json: dict[str, Any] = {}
    resource_spans_json: dict[str, Any] = {"scopeSpans": [{"spans": [span_json]}]}
    if place == "resource":
        resource_spans_json["resource"] = {"attributes": attributes}
    elif place == "scope":
        resource_spans_json["scopeSpans"][0]["scope"] = {"attributes": attributes}
    elif place == "span":
        span_json["attributes"] = attributes
    else:
        span_json["events"] = [{"attributes": attributes}]
    return request, {"resourceSpans": [resource_spans_json]}


@pytest.mark.parametrize("place", ["resource", "scope", "span", "event"])
@pytest.mark.parametrize(("shape", "levels"), [("array", range(40, 52)), ("kvlist", range(26, 35))])
@pytest.mark.parametrize("leaf", ["string", "empty", "array"])
def test_nesting_limit_matches_the_protobuf_codec(place: str, shape: str, levels: range, leaf: str) -> None:
    outcomes = []
    for n in levels:
        request, as_json = placed(place, shape, n, leaf)
        try:
            proto_codec.decode(request.SerializeToString())
            proto_ok = True
        except BadRequest:
            proto_ok = False
        try:
            json_ok = fields(round_trip(as_json)) == fields(request)
        except BadRequest as exc:
            assert f"nested deeper than {MAX_DEPTH} messages" in exc.message
            json_ok = False
        assert json_ok == proto_ok, (n, proto_ok)
        outcomes.append(proto_ok)
    assert True in outcomes and False in outcomes  # the limit is inside the range tried


# --- two ways, one verdict: which bodies the typed pass reads ------------------------------------------------

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


def outcome(decode: Any, body: bytes) -> Any:
    """A request's fields and rows, or the BadRequest's message."""
    try:
        request = decode(body)
    except BadRequest as exc:
        return str(exc)
    return fields(request), map_request(request)


def typed(body: bytes) -> Any:
    """The request, asserting the typed pass read it: one parse."""
    request = json_codec.decode(body)
    assert request.typed_pass
    assert fields(request) == fields(walked(body))
    return request


def test_the_exporter_form_with_every_value_kind_is_read_in_one_pass() -> None:
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
    batch = map_request(typed(body))
    assert batch == map_request(walked(body))
    assert len(batch.steps) == 2 and batch.rejected == 0
    step = next(s for s in batch.steps if s.span_id == SPAN_HEX)
    attributes = json.loads(step.attributes)
    assert attributes["i"] == -(2**63) and attributes["nan"] == "NaN" and attributes["bytes"] == "010203"
    assert attributes["map"] == {"inner": {"x": "Infinity"}} and attributes["unset"] is None
    assert step.input_count == 5000 and step.error == "boom" and step.run_id.hex == TRACE_HEX


def _with(**overrides: Any) -> bytes:
    return request_json(span_json(**overrides))


ONE_PASS = [
    pytest.param(_with(startTimeUnixNano="1", endTimeUnixNano="0"), id="no-end-time"),
    pytest.param(_with(startTimeUnixNano="5", endTimeUnixNano="4"), id="ends-before-start"),
    pytest.param(_with(traceId="00" * 16), id="zero-trace-id"),
    pytest.param(_with(spanId="ab" * 7), id="short-span-id"),
    pytest.param(_with(traceId=""), id="empty-trace-id"),
    pytest.param(_with(kind=99, status={"code": 7}), id="unknown-enum-numbers"),
    pytest.param(_with(startTimeUnixNano="18446744073709551615"), id="largest-time"),
    pytest.param(_with(traceId=TRACE_HEX.upper()), id="upper-case-hex"),
    pytest.param(_with(attributes=[{"key": "a", "value": {"intValue": "1e3"}}]), id="int-with-exponent"),
    pytest.param(_with(attributes=[{"key": "a", "value": {"doubleValue": "2.5"}}]), id="double-as-text"),
    pytest.param(b'{"resourceSpans": []}', id="empty"),
    pytest.param(b"{}", id="no-resource-spans"),
    # the spellings the fast path of old left to the slow one, and so parsed twice
    pytest.param(_with(kind="SPAN_KIND_SERVER"), id="enum-name"),
    pytest.param(_with(kind="SPAN_KIND_SOMETHING_NEW", status={"code": "STATUS_CODE_ERROR"}), id="status-enum-name"),
    pytest.param(_with(kind="3", flags="1", droppedLinksCount=2.0), id="int32-as-text-or-float"),
    pytest.param(_with(traceId="S/eVGRbNQ92ESOshHIAxnA=="), id="base64-id"),
    pytest.param(_with(traceId="zz" * 16), id="not-hex-but-base64"),
    pytest.param(_with(attributes=[{"key": "a", "keyStrindex": 1}]), id="key-strindex"),
    pytest.param(_with(attributes=[{"key": "a", "value": {"stringValueStrindex": 3}}]), id="value-strindex"),
    pytest.param(_with(attributes=[{"key": "a", "value": None}]), id="null-value"),
    pytest.param(_with(attributes=None, events=None, links=None), id="null-list"),
    pytest.param(_with(status=None, name=None, traceState=None, kind=None, parentSpanId=None), id="null-fields"),
    pytest.param(_with(startTimeUnixNano=1.5e18, endTimeUnixNano="2e18"), id="float-time"),
    pytest.param(_with(attributes=[{"key": "a", "value": {"intValue": 7.0}}]), id="int-as-float"),
    pytest.param(request_json(span_json(), resource={"entityRefs": [{"type": "host", "idKeys": ["host.id"]}]}),
                 id="entity-refs"),
    pytest.param(request_json(span_json(events=[{"timeUnixNano": 5, "name": None, "droppedAttributesCount": "1"}],
                                        links=[{"traceId": TRACE_HEX, "spanId": None, "traceState": None}])),
                 id="events-and-links-other-spellings"),
]


@pytest.mark.parametrize("body", ONE_PASS)
def test_edges_and_other_camel_case_spellings_are_read_in_one_pass(body: bytes) -> None:
    """Spans the mapping refuses, and every spelling of a value proto3 JSON allows in camelCase: the typed pass
    reads them, as the walk would."""
    request = typed(body)
    assert map_request(request) == map_request(walked(body))


TO_THE_WALK = [
    pytest.param(json.dumps({"resource_spans": json.loads(_with())["resourceSpans"]}).encode(), id="snake-case"),
    pytest.param(_with(span_id=SPAN_HEX), id="snake-case-in-span"),
    pytest.param(_with(attributes=[{"key": "a", "value": {"int_value": "7"}}]), id="snake-case-member"),
    pytest.param(_with(unknownField=1), id="unknown-field"),
    pytest.param(_with(attributes=[{"key": "a", "value": {"futureValue": 1, "intValue": 1}}]), id="unknown-member"),
    pytest.param(_with(attributes=[{"key": None, "value": {"intValue": 1}}]), id="null-key"),
    pytest.param(_with(attributes=[{"key": "a", "keyStrindex": "1"}]), id="strindex-as-text"),
    pytest.param(_with(traceId=TRACE_HEX[:8] + " " + TRACE_HEX[8:]), id="hex-with-space"),
    pytest.param(_with(attributes=[{"key": "a", "value": {"stringValue": "x", "intValue": "1"}}]), id="two-members"),
    pytest.param(_with(attributes=[{"key": "a", "value": {"intValue": 1, "boolValue": True}}]), id="two-non-strings"),
    pytest.param(_with(attributes=[{"key": "a", "value": {"arrayValue": {"values": [
        {"stringValue": "x", "doubleValue": 1.5}]}}}]), id="two-members-nested"),
    pytest.param(_with(attributes=[{"key": "a", "value": {"intValue": "9223372036854775808"}}]), id="int-too-big-text"),
    pytest.param(_with(attributes=[{"key": "a", "value": {"intValue": 9223372036854775808}}]), id="int-too-big"),
    pytest.param(_with(attributes=[{"key": "a", "value": {"doubleValue": "nan"}}]), id="lower-case-nan"),
    pytest.param(_with(attributes=[{"key": "a", "value": {"bytesValue": "not base64!"}}]), id="bad-base64"),
    pytest.param(_with(startTimeUnixNano="-1"), id="negative-time-text"),
    pytest.param(_with(endTimeUnixNano=-1), id="negative-time"),
    pytest.param(_with(startTimeUnixNano=2**64), id="time-past-uint64"),
    pytest.param(_with(flags=-1), id="negative-flags"),
    pytest.param(_with(kind=True), id="enum-boolean"),
    pytest.param(_with(name="\ud800"), id="lone-surrogate"),
    pytest.param(request_json(span_json(name="caf")).replace(b'"caf"', b'"caf\xe9"'), id="not-utf-8"),
    pytest.param(request_json(span_json(unknownField="caf")).replace(b'"caf"', b'"caf\xe9"'),
                 id="not-utf-8-in-an-unknown-field"),
    pytest.param(_with(name="first").replace(b'"name": "first"', b'"name": 1, "name": "second"'),
                 id="duplicate-key-first-ill-typed"),
    pytest.param(b"[]", id="not-an-object"),
    pytest.param(b"", id="empty-body"),
    pytest.param(b'{"resourceSpans": [', id="not-json"),
    pytest.param(b"\xef\xbb\xbf{}", id="byte-order-mark"),
]


@pytest.mark.parametrize("body", TO_THE_WALK)
def test_other_forms_and_every_error_go_to_the_walk(body: bytes) -> None:
    """What the typed pass does not read the walk judges, as it would have anyway: a snake_case body in one
    parse, the others (errors above all) in a second."""
    assert outcome(json_codec.decode, body) == outcome(walked, body)
    try:
        assert not json_codec.decode(body).typed_pass
    except BadRequest:
        pass


@pytest.mark.parametrize(("body", "decodes", "parses"), [
    pytest.param(otlp_json_body(export_request(pipeline_spans(*new_ids()))), 1, 0, id="exporter-form"),
    pytest.param(json.dumps(otlp_json_document(sdk_request())).encode(), 1, 0, id="enum-names"),
    pytest.param(otlp_json_body(export_request(pipeline_spans(*new_ids())), preserving_proto_field_name=True), 0, 1,
                 id="snake-case"),
    pytest.param(_with(unknownField=1), 1, 1, id="unknown-field"),
    pytest.param(_with(name=5), 1, 1, id="an-error"),
])
def test_how_often_a_body_is_parsed(monkeypatch: pytest.MonkeyPatch, body: bytes, decodes: int, parses: int) -> None:
    """Once, by the typed pass or the walk's parser, unless the typed pass stops partway."""
    calls = {"typed": 0, "parse": 0}

    def counted(name: str, parse: Any) -> Any:
        def wrapper(data: bytes) -> Any:
            calls[name] += 1
            return parse(data)
        return wrapper

    monkeypatch.setattr(otlp_json, "_DECODE", counted("typed", otlp_json._DECODE))
    monkeypatch.setattr(otlp_json, "_parse_fast", counted("parse", otlp_json._parse_fast))
    try:
        json_codec.decode(body)
    except BadRequest:
        pass
    assert (calls["typed"], calls["parse"]) == (decodes, parses)


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(depth):
        value = {"arrayValue": {"values": [value]}}
    return value


def test_deep_values_up_to_the_limit_are_read_in_one_pass() -> None:
    """The typed pass keeps the walk's depth limit itself (test_nesting_limit_matches_the_protobuf_codec
    finds it exactly); past it, the walk words the error."""
    deepest = 0
    for depth in range(40, 60):
        body = _with(attributes=[{"key": "a", "value": nested(depth)}])
        try:
            typed(body)
            deepest = depth
        except BadRequest as exc:
            assert outcome(walked, body) == str(exc) and "nested deeper than 100 messages" in str(exc)
    assert 40 < deepest < 59


def test_duplicate_keys_keep_the_last_as_json_does() -> None:
    body = request_json(span_json()).replace(b'"name": "retrieve"', b'"name": "first", "name": "second"')
    assert span_of(typed(body)).name == "second"


def test_over_http_json_and_protobuf_store_the_same_steps(receiver_url: str) -> None:
    """The same pipeline, once as protobuf and once as exporter-form JSON (another trace id): equal steps."""
    (trace_a, base), (trace_b, _) = new_ids(), new_ids()
    spans_a = pipeline_spans(trace_a, base) + [make_span(trace_a, base + 9, "fails", parent=base, error="bad")]
    spans_b = copy.deepcopy(spans_a)
    for span in spans_b:
        span.trace_id = trace_b
    assert post_otlp(receiver_url, export_request(spans_a)).status == 200
    body = otlp_json_body(export_request(spans_b))
    assert json_codec.decode(body).typed_pass  # the typed pass is what this test exercises
    assert call("POST", receiver_url + "/v1/traces", body, {"Content-Type": "application/json"}).status == 200

    def steps(trace_id: bytes) -> list[dict[str, Any]]:
        rows = get_json(f"{receiver_url}/runs/{trace_id.hex()}/steps")
        return [{k: v for k, v in row.items() if k != "run_id"} for row in rows]

    assert len(steps(trace_a)) == 5 and steps(trace_b) == steps(trace_a)
    run_a, run_b = get_json(f"{receiver_url}/runs/{trace_a.hex()}"), get_json(f"{receiver_url}/runs/{trace_b.hex()}")
    assert {k: v for k, v in run_b.items() if k not in ("id", "trace_id")} == \
        {k: v for k, v in run_a.items() if k not in ("id", "trace_id")}
