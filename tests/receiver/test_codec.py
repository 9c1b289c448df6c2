"""OTLP request decoding and response encoding (xray_otel.receiver.codec), without a server.

Inputs come from three places: OTLP JSON written by hand the way the spec and
non-Python exporters write it, ``opentelemetry.proto`` messages, and what the real
OpenTelemetry SDK encoder produces for spans from a TracerProvider.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
from typing import Any

import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, StatusCode

from helpers import otlp_json_document
from xray_otel.mapping.spans import map_request
from xray_otel.receiver.codec import (
    JSON,
    PROTOBUF,
    JsonCodec,
    ProtobufCodec,
    codec_for,
    parse_json,
)
from xray_otel.receiver.errors import INVALID_ARGUMENT, UNAVAILABLE, BadRequest

TRACE_HEX = "5b8efff798038103d269b633813fc60c"
SPAN_HEX = "eee19b7ec3c1b174"
PARENT_HEX = "eee19b7ec3c1b173"
LINK_TRACE_HEX = "0af7651916cd43dd8448eb211c80319c"
LINK_SPAN_HEX = "b7ad6b7169203331"

json_codec = JsonCodec()
proto_codec = ProtobufCodec()


def fields(message: Any, descriptor: Any = ExportTraceServiceRequest.DESCRIPTOR) -> dict[str, Any]:
    """Every field of a request as plain values, read by attribute as the mapper reads it, from protobuf messages
    and otlp_json's structs alike: equal trees are the same request field for field (presence aside, which the
    structs do not keep). A double is its repr, so NaN equals NaN."""
    tree = {}
    for field in descriptor.fields:
        if field.containing_oneof is None:
            tree[field.name] = _plain(getattr(message, field.name), field)
    for oneof in descriptor.oneofs:
        name = message.WhichOneof(oneof.name)
        tree[oneof.name] = name and (name, _plain(getattr(message, name), descriptor.fields_by_name[name]))
    return tree


def _plain(value: Any, field: Any) -> Any:
    if field.message_type is not None:
        if field.is_repeated:
            return [fields(item, field.message_type) for item in value]
        return fields(value, field.message_type)
    if field.is_repeated:
        return [_scalar(item) for item in value]
    return _scalar(value)


def _scalar(value: Any) -> Any:
    return ("double", repr(value)) if type(value) is float else value


def request_json(*spans: dict[str, Any], resource: dict[str, Any] | None = None) -> bytes:
    """An OTLP JSON body with the spans in one resource/scope."""
    resource_spans: dict[str, Any] = {"scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}]}
    if resource is not None:
        resource_spans["resource"] = resource
    return json.dumps({"resourceSpans": [resource_spans]}).encode()


def span_json(**fields: Any) -> dict[str, Any]:
    """The OTLP spec's example span (hex ids, camelCase, 64-bit ints as strings), plus overrides."""
    span = {
        "traceId": TRACE_HEX,
        "spanId": SPAN_HEX,
        "parentSpanId": PARENT_HEX,
        "name": "retrieve",
        "kind": 2,
        "startTimeUnixNano": "1544712660000000000",
        "endTimeUnixNano": "1544712661000000000",
        "attributes": [{"key": "xray.step.input_count", "value": {"intValue": "5000"}}],
        "status": {},
    }
    span.update(fields)
    return span


def only_span(request: ExportTraceServiceRequest) -> Span:
    [resource_spans] = request.resource_spans
    [scope_spans] = resource_spans.scope_spans
    [span] = scope_spans.spans
    return span


def decode_one(**fields: Any) -> Span:
    return only_span(json_codec.decode(request_json(span_json(**fields))))


def sdk_request() -> ExportTraceServiceRequest:
    """What the stock OTLP exporter sends for a small pipeline: nesting, events, links, error, all value kinds."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "codec-test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("xray-test", "1.2.3")
    with tracer.start_as_current_span("pipeline", kind=SpanKind.SERVER, attributes={"xray.kind": "run"}) as run:
        with tracer.start_as_current_span("filter", links=[Link(run.get_span_context(), {"why": "same run"})]) as step:
            step.set_attribute("xray.step.input_count", 5000)
            step.set_attribute("xray.step.output_count", 30)
            step.set_attribute("score", 0.25)
            step.set_attribute("flag", True)
            step.set_attribute("names", ["a", "b"])
            step.set_attribute("sizes", [1, 2, 3])
            step.add_event("checkpoint", {"n": 3})
        with tracer.start_as_current_span("llm", kind=SpanKind.CLIENT) as failing:
            failing.record_exception(RuntimeError("model timed out"))
            failing.set_status(StatusCode.ERROR, "model timed out")
    provider.shutdown()
    return encode_spans(exporter.get_finished_spans())


# --- content types -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/x-protobuf", ProtobufCodec),
        ("application/protobuf", ProtobufCodec),
        ("application/json", JsonCodec),
        ("Application/JSON", JsonCodec),
        ("APPLICATION/X-PROTOBUF", ProtobufCodec),
    ],
)
def test_codec_for_known_types(content_type: str, expected: type) -> None:
    assert isinstance(codec_for(content_type), expected)


@pytest.mark.parametrize("content_type", ["text/plain", "application/grpc", "", "application/jsonx", "json"])
def test_codec_for_unknown_type_is_none(content_type: str) -> None:
    assert codec_for(content_type) is None


def test_codecs_advertise_their_content_type() -> None:
    assert json_codec.content_type == JSON == "application/json"
    assert proto_codec.content_type == PROTOBUF == "application/x-protobuf"


# --- OTLP JSON: ids ----------------------------------------------------------------


def test_json_hex_ids_become_bytes() -> None:
    span = decode_one()
    assert span.trace_id == bytes.fromhex(TRACE_HEX)
    assert span.span_id == bytes.fromhex(SPAN_HEX)
    assert span.parent_span_id == bytes.fromhex(PARENT_HEX)


def test_json_uppercase_hex_ids() -> None:
    span = decode_one(traceId=TRACE_HEX.upper(), spanId=SPAN_HEX.upper(), parentSpanId=PARENT_HEX.upper())
    assert span.trace_id.hex() == TRACE_HEX
    assert span.span_id.hex() == SPAN_HEX
    assert span.parent_span_id.hex() == PARENT_HEX


def test_json_link_ids_are_hex_too() -> None:
    link = {"traceId": LINK_TRACE_HEX, "spanId": LINK_SPAN_HEX, "traceState": "k=v",
            "attributes": [{"key": "why", "value": {"stringValue": "retry"}}]}
    span = decode_one(links=[link, link])
    assert len(span.links) == 2
    for decoded in span.links:
        assert decoded.trace_id.hex() == LINK_TRACE_HEX
        assert decoded.span_id.hex() == LINK_SPAN_HEX
        assert decoded.trace_state == "k=v"
        assert decoded.attributes[0].value.string_value == "retry"


def test_json_base64_ids_are_accepted_when_not_hex() -> None:
    """Some exporters send protobuf's canonical JSON, where bytes are base64."""
    b64 = lambda h: base64.b64encode(bytes.fromhex(h)).decode()  # noqa: E731
    span = decode_one(traceId=b64(TRACE_HEX), spanId=b64(SPAN_HEX), parentSpanId=b64(PARENT_HEX),
                      links=[{"traceId": b64(LINK_TRACE_HEX), "spanId": b64(LINK_SPAN_HEX)}])
    assert span.trace_id.hex() == TRACE_HEX
    assert span.span_id.hex() == SPAN_HEX
    assert span.parent_span_id.hex() == PARENT_HEX
    assert span.links[0].trace_id.hex() == LINK_TRACE_HEX
    assert span.links[0].span_id.hex() == LINK_SPAN_HEX


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda raw: base64.b64encode(raw).decode().rstrip("="), id="unpadded"),
        pytest.param(lambda raw: base64.urlsafe_b64encode(raw).decode(), id="urlsafe"),
        pytest.param(lambda raw: base64.urlsafe_b64encode(raw).decode().rstrip("="), id="urlsafe-unpadded"),
    ],
)
def test_json_base64_ids_in_every_form_proto3_json_accepts(encode: Any) -> None:
    """proto3 JSON: "Either standard or URL-safe base64 encoding with/without paddings are accepted"."""
    # Bytes chosen so the standard alphabet needs '+' and '/', the URL-safe one '-' and '_'.
    trace = bytes.fromhex("fbff00fbff00fbff00fbff00fbff00fb")
    span_id = bytes.fromhex("fbff00fbff00fbfe")
    span = decode_one(traceId=encode(trace), spanId=encode(span_id), parentSpanId="")
    assert span.trace_id == trace
    assert span.span_id == span_id


def test_json_snake_case_ids() -> None:
    body = json.dumps({"resource_spans": [{"scope_spans": [{"spans": [
        {"trace_id": TRACE_HEX, "span_id": SPAN_HEX, "parent_span_id": PARENT_HEX,
         "start_time_unix_nano": 1, "links": [{"trace_id": LINK_TRACE_HEX, "span_id": LINK_SPAN_HEX}]},
    ]}]}]}).encode()
    span = only_span(json_codec.decode(body))
    assert span.trace_id.hex() == TRACE_HEX
    assert span.span_id.hex() == SPAN_HEX
    assert span.parent_span_id.hex() == PARENT_HEX
    assert span.start_time_unix_nano == 1
    assert span.links[0].trace_id.hex() == LINK_TRACE_HEX
    assert span.links[0].span_id.hex() == LINK_SPAN_HEX


def test_json_empty_ids_stay_empty() -> None:
    """An empty parentSpanId means a root span; it must not turn into garbage bytes."""
    span = decode_one(parentSpanId="")
    assert span.parent_span_id == b""
    span = decode_one(parentSpanId=None)
    assert span.parent_span_id == b""


def test_json_hex_id_of_wrong_length_decodes_and_is_left_to_mapping() -> None:
    """A hex id with the wrong byte count is per-span trouble (rejected in mapping), not a bad body."""
    span = decode_one(traceId="abcd", spanId="00" * 8)
    assert span.trace_id == b"\xab\xcd"
    assert span.span_id == b"\x00" * 8


@pytest.mark.parametrize("bad_id", ["not-an-id!", "a", "abcde", "ab cd", "%%%%", "ab=c", "AQIDBAUGBwg==="])
def test_json_id_neither_hex_nor_base64_is_bad_request(bad_id: str) -> None:
    with pytest.raises(BadRequest, match="neither hex nor base64"):
        json_codec.decode(request_json(span_json(traceId=bad_id)))


def test_json_short_base64_id_decodes_and_is_left_to_mapping() -> None:
    span = decode_one(traceId="xyz")
    assert span.trace_id == base64.b64decode("xyz=")


def test_json_bad_link_id_is_bad_request() -> None:
    with pytest.raises(BadRequest):
        json_codec.decode(request_json(span_json(links=[{"traceId": "!!", "spanId": LINK_SPAN_HEX}])))


def test_json_id_of_wrong_type_is_bad_request() -> None:
    with pytest.raises(BadRequest):
        json_codec.decode(request_json(span_json(traceId=1234)))


def test_json_decode_does_not_touch_non_id_bytes_fields_or_strings() -> None:
    """Only trace/span ids are hex; a bytesValue attribute stays base64 (proto3 JSON) and strings are strings."""
    span = decode_one(name=SPAN_HEX, attributes=[
        {"key": "raw", "value": {"bytesValue": base64.b64encode(b"\x00\x01hi").decode()}},
        {"key": "looks_hex", "value": {"stringValue": TRACE_HEX}},
    ])
    assert span.name == SPAN_HEX
    assert span.attributes[0].value.bytes_value == b"\x00\x01hi"
    assert span.attributes[1].value.string_value == TRACE_HEX


def test_json_decode_does_not_mutate_ids_twice() -> None:
    """Many spans sharing one trace id: each is converted exactly once."""
    spans = [span_json(spanId=f"{i:016x}") for i in range(1, 51)]
    request = json_codec.decode(request_json(*spans))
    decoded = request.resource_spans[0].scope_spans[0].spans
    assert [s.span_id.hex() for s in decoded] == [f"{i:016x}" for i in range(1, 51)]
    assert {s.trace_id.hex() for s in decoded} == {TRACE_HEX}


# --- OTLP JSON: names, enums, integers, unknown fields --------------------------------


def test_json_snake_case_field_names() -> None:
    body = json.dumps({"resource_spans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"string_value": "svc"}}]},
        "scope_spans": [{"scope": {"name": "lib", "version": "2"}, "spans": [{
            "trace_id": TRACE_HEX, "span_id": SPAN_HEX, "name": "s",
            "start_time_unix_nano": "10", "end_time_unix_nano": "20",
            "attributes": [{"key": "n", "value": {"int_value": "7"}},
                           {"key": "list", "value": {"array_value": {"values": [{"bool_value": True}]}}}],
            "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
        }]}],
    }]}).encode()
    request = json_codec.decode(body)
    resource_spans = request.resource_spans[0]
    assert resource_spans.resource.attributes[0].value.string_value == "svc"
    assert resource_spans.scope_spans[0].scope.version == "2"
    span = resource_spans.scope_spans[0].spans[0]
    assert (span.start_time_unix_nano, span.end_time_unix_nano) == (10, 20)
    assert span.attributes[0].value.int_value == 7
    assert span.attributes[1].value.array_value.values[0].bool_value is True
    assert span.status.code == Status.STATUS_CODE_ERROR
    assert span.status.message == "boom"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (2, Span.SPAN_KIND_SERVER),
        ("SPAN_KIND_SERVER", Span.SPAN_KIND_SERVER),
        (3, Span.SPAN_KIND_CLIENT),
        ("SPAN_KIND_CLIENT", Span.SPAN_KIND_CLIENT),
        ("SPAN_KIND_INTERNAL", Span.SPAN_KIND_INTERNAL),
        ("SPAN_KIND_CONSUMER", Span.SPAN_KIND_CONSUMER),
        (0, Span.SPAN_KIND_UNSPECIFIED),
    ],
)
def test_json_span_kind_as_int_or_name(kind: Any, expected: int) -> None:
    assert decode_one(kind=kind).kind == expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (0, Status.STATUS_CODE_UNSET),
        (1, Status.STATUS_CODE_OK),
        (2, Status.STATUS_CODE_ERROR),
        ("STATUS_CODE_UNSET", Status.STATUS_CODE_UNSET),
        ("STATUS_CODE_OK", Status.STATUS_CODE_OK),
        ("STATUS_CODE_ERROR", Status.STATUS_CODE_ERROR),
    ],
)
def test_json_status_code_as_int_or_name(code: Any, expected: int) -> None:
    span = decode_one(status={"code": code, "message": "m"})
    assert span.status.code == expected
    assert span.status.message == "m"


def test_json_unknown_enum_name_is_ignored_not_fatal() -> None:
    """Unknown fields are ignored, and so is an enum name this proto version does not know."""
    assert decode_one(kind="SPAN_KIND_FROM_THE_FUTURE").kind == Span.SPAN_KIND_UNSPECIFIED


@pytest.mark.parametrize(
    "value",
    ["1544712660000000000", 1544712660000000000, "18446744073709551615", 18446744073709551615],
    ids=["str", "int", "max-str", "max-int"],
)
def test_json_64_bit_timestamps_as_strings_or_numbers(value: Any) -> None:
    span = decode_one(startTimeUnixNano=value, endTimeUnixNano=value)
    assert span.start_time_unix_nano == int(value)
    assert span.end_time_unix_nano == int(value)


@pytest.mark.parametrize("value", ["9223372036854775807", 9223372036854775807, "-9223372036854775808", -5])
def test_json_int_value_attribute_as_string_or_number(value: Any) -> None:
    span = decode_one(attributes=[{"key": "n", "value": {"intValue": value}}])
    assert span.attributes[0].value.int_value == int(value)


@pytest.mark.parametrize("value", [-1, "18446744073709551616", 1.5, "soon"])
def test_json_out_of_range_or_non_integer_timestamp_is_bad_request(value: Any) -> None:
    with pytest.raises(BadRequest):
        decode_one(startTimeUnixNano=value)


def test_json_double_value_accepts_nan_and_infinity_strings() -> None:
    """proto3 JSON spells non-finite doubles "NaN", "Infinity", "-Infinity"."""
    span = decode_one(attributes=[
        {"key": "nan", "value": {"doubleValue": "NaN"}},
        {"key": "inf", "value": {"doubleValue": "Infinity"}},
        {"key": "ninf", "value": {"doubleValue": "-Infinity"}},
        {"key": "x", "value": {"doubleValue": 0.5}},
    ])
    values = [a.value.double_value for a in span.attributes]
    assert values[0] != values[0]
    assert values[1:] == [float("inf"), float("-inf"), 0.5]


def test_json_unknown_fields_are_ignored_at_every_level() -> None:
    body = json.dumps({
        "resourceSpans": [{
            "resource": {"attributes": [], "futureField": 1},
            "scopeSpans": [{"scope": {"name": "s", "newThing": [1, 2]}, "spans": [
                span_json(droppedSomething=3, shinyNewField={"a": [1]}),
            ], "extra": True}],
            "schemaUrl": "https://opentelemetry.io/schemas/1.21.0",
            "whatever": None,
        }],
        "topLevelUnknown": "x",
    }).encode()
    span = only_span(json_codec.decode(body))
    assert span.span_id.hex() == SPAN_HEX
    assert span.attributes[0].value.int_value == 5000


@pytest.mark.parametrize("body", [b"", b"   ", b"\n\t", b"{}", b'{"resourceSpans": []}', b'{"resourceSpans": null}',
                                  b'{"resourceSpans": [{}]}', b'{"resourceSpans": [{"scopeSpans": [{}]}]}'])
def test_json_empty_request_is_valid(body: bytes) -> None:
    request = json_codec.decode(body)
    assert sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans) == 0


def test_json_every_attribute_value_kind() -> None:
    span = decode_one(attributes=[
        {"key": "s", "value": {"stringValue": "text"}},
        {"key": "b", "value": {"boolValue": False}},
        {"key": "i", "value": {"intValue": "42"}},
        {"key": "d", "value": {"doubleValue": 1.5}},
        {"key": "a", "value": {"arrayValue": {"values": [{"intValue": 1}, {"stringValue": "x"}]}}},
        {"key": "kv", "value": {"kvlistValue": {"values": [{"key": "inner", "value": {"boolValue": True}}]}}},
        {"key": "raw", "value": {"bytesValue": "AAEC"}},
        {"key": "empty", "value": {}},
    ])
    kinds = [a.value.WhichOneof("value") for a in span.attributes]
    assert kinds == ["string_value", "bool_value", "int_value", "double_value", "array_value",
                     "kvlist_value", "bytes_value", None]
    assert span.attributes[6].value.bytes_value == b"\x00\x01\x02"


def test_json_utf8_text_survives() -> None:
    span = decode_one(name="étape 🚀 步骤")
    assert span.name == "étape 🚀 步骤"


# --- OTLP JSON: malformed bodies ----------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{", id="truncated"),
        pytest.param(b"not json", id="text"),
        pytest.param(b"\xff\xfe\x00garbage", id="binary"),
        pytest.param(gzip.compress(b"{}"), id="still-gzipped"),
        pytest.param(b"{'resourceSpans': []}", id="single-quotes"),
        pytest.param(b'{"resourceSpans": [] } trailing', id="trailing"),
    ],
)
def test_json_malformed_is_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest, match="not valid JSON"):
        json_codec.decode(body)


@pytest.mark.parametrize(
    "document",
    [
        pytest.param([], id="array"),
        pytest.param(None, id="null"),
        pytest.param("resourceSpans", id="string"),
        pytest.param(42, id="number"),
        pytest.param({"resourceSpans": {}}, id="resourceSpans-object"),
        pytest.param({"resourceSpans": "x"}, id="resourceSpans-string"),
        pytest.param({"resourceSpans": [1]}, id="resourceSpans-item-number"),
        pytest.param({"resourceSpans": [[]]}, id="resourceSpans-item-array"),
        pytest.param({"resourceSpans": [{"scopeSpans": {}}]}, id="scopeSpans-object"),
        pytest.param({"resourceSpans": [{"scopeSpans": ["x"]}]}, id="scopeSpans-item-string"),
        pytest.param({"resourceSpans": [{"scopeSpans": [{"spans": {}}]}]}, id="spans-object"),
        pytest.param({"resourceSpans": [{"scopeSpans": [{"spans": ["x"]}]}]}, id="span-string"),
        pytest.param({"resourceSpans": [{"scopeSpans": [{"spans": [None]}]}]}, id="span-null"),
        pytest.param({"resourceSpans": [{"scopeSpans": [{"spans": [span_json(links={})]}]}]}, id="links-object"),
        pytest.param({"resourceSpans": [{"scopeSpans": [{"spans": [span_json(links=[7])]}]}]}, id="link-number"),
        pytest.param({"resourceSpans": [{"scopeSpans": [{"spans": [span_json(name=5)]}]}]}, id="name-number"),
        pytest.param({"resourceSpans": [{"scopeSpans": [{"spans": [span_json(attributes={})]}]}]}, id="attrs-object"),
    ],
)
def test_json_wrong_shape_is_bad_request(document: Any) -> None:
    with pytest.raises(BadRequest):
        json_codec.decode(json.dumps(document).encode())


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"resourceSpans": [], "resource_spans": [{"scopeSpans": [{"spans": [span_json()]}]}]},
                     id="resourceSpans"),
        pytest.param({"resourceSpans": [{"scopeSpans": [{"spans": [span_json()]}]}], "resource_spans": None},
                     id="resourceSpans-null"),
        pytest.param({"resourceSpans": [{"scopeSpans": [{"spans": [span_json()]}],
                                         "scope_spans": [{"spans": [span_json(spanId="00" * 7 + "02")]}]}]},
                     id="scopeSpans"),
    ],
)
def test_json_same_list_under_both_names_is_bad_request(document: Any) -> None:
    """camelCase and snake_case for one field at once: json_format keeps one silently, losing spans."""
    with pytest.raises(BadRequest, match="given twice"):
        json_codec.decode(json.dumps(document).encode())


@pytest.mark.parametrize(
    "body",
    [b'{"a":1,"a":2}', b"-0", b"-0.0", b"1e5", b"5e-324", b"1e-400", b"0.30000000000000004", b"18446744073709551615",
     b"18446744073709551616", b"-9223372036854775809", b"1" + b"0" * 400, b"9" * 5000, b"1e400", b"NaN", b"-Infinity",
     b'"\\ud800"', b'"\\ud83d\\ude00"', b'"\xed\xa0\x80"', b'"\xff"', b'"\x01"', b'"\\u0000"', b"\xef\xbb\xbf{}",
     b"[1,]", b"01", b"[" * 2000 + b"]" * 2000, b'{"k":"\xc3\xa9"}'],
)
def test_json_parser_gives_what_json_loads_gives(body: bytes) -> None:
    """Same value and type, or an error from both (json's own when msgspec refuses)."""
    try:
        expected: Any = json.loads(body)
    except (ValueError, RecursionError) as exc:
        expected = type(exc)
    try:
        got: Any = parse_json(body)
    except (ValueError, RecursionError) as exc:
        got = type(exc)
    assert repr(got) == repr(expected)


def test_json_int_past_64_bits_is_out_of_range_not_rounded_into_range() -> None:
    """A parser that made -2**63 - 1 a float would round it to -2**63 and accept it."""
    body = request_json(span_json(attributes=[{"key": "n", "value": {"intValue": "PLACEHOLDER"}}]))
    with pytest.raises(BadRequest, match=r"intValue: -9223372036854775809 is out of range"):
        json_codec.decode(body.replace(b'"PLACEHOLDER"', b"-9223372036854775809"))


def test_json_unpaired_surrogate_is_bad_request() -> None:
    with pytest.raises(BadRequest):
        json_codec.decode(request_json(span_json(name="\ud800")))


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_json_deeply_nested_document_is_bad_request_not_a_crash(depth: int) -> None:
    with pytest.raises(BadRequest):
        json_codec.decode(b"[" * depth + b"]" * depth)
    with pytest.raises(BadRequest):
        json_codec.decode(b'{"a":' * depth + b"1" + b"}" * depth)


def test_json_deeply_nested_attribute_is_bad_request_not_a_crash() -> None:
    depth = 5_000
    value = '{"kvlistValue":{"values":[{"key":"k","value":' * depth + '{"stringValue":"x"}' + "}]}}" * depth
    body = ('{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"a","value":' + value
            + "}]}]}]}]}").encode()
    with pytest.raises(BadRequest):
        json_codec.decode(body)


def test_json_moderately_nested_attribute_is_fine() -> None:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(10):
        value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    span = decode_one(attributes=[{"key": "a", "value": value}])
    leaf = span.attributes[0].value
    for _ in range(10):
        leaf = leaf.kvlist_value.values[0].value
    assert leaf.string_value == "leaf"


# --- protobuf --------------------------------------------------------------------


def proto_request() -> ExportTraceServiceRequest:
    span = Span(
        trace_id=bytes.fromhex(TRACE_HEX), span_id=bytes.fromhex(SPAN_HEX), parent_span_id=bytes.fromhex(PARENT_HEX),
        name="retrieve", kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=1544712660000000000, end_time_unix_nano=1544712661000000000,
        attributes=[KeyValue(key="xray.step.input_count", value=AnyValue(int_value=5000))],
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom"),
        links=[Span.Link(trace_id=bytes.fromhex(LINK_TRACE_HEX), span_id=bytes.fromhex(LINK_SPAN_HEX))],
        events=[Span.Event(name="exception", time_unix_nano=1544712660500000000)],
    )
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])])


def test_protobuf_round_trip() -> None:
    request = proto_request()
    assert proto_codec.decode(request.SerializeToString()) == request


def test_protobuf_empty_body_is_empty_request() -> None:
    assert proto_codec.decode(b"") == ExportTraceServiceRequest()


def test_json_and_protobuf_decode_to_the_same_request() -> None:
    request = proto_request()
    assert fields(json_codec.decode(json.dumps(otlp_json_document(request)).encode())) == fields(request)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\xff\xff\xff\xff", id="bad-tag"),
        pytest.param(b"garbage here", id="text"),
        pytest.param(b"\x0a\x05ab", id="truncated-length"),
        pytest.param(b"\x08", id="truncated-varint"),
        pytest.param(b'{"resourceSpans": []}', id="json-sent-as-protobuf"),
        pytest.param(gzip.compress(proto_request().SerializeToString()), id="still-gzipped"),
        pytest.param(proto_request().SerializeToString()[:-3], id="cut-short"),
    ],
)
def test_protobuf_garbage_is_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest, match="not a valid protobuf"):
        proto_codec.decode(body)


def test_protobuf_invalid_utf8_in_string_is_bad_request() -> None:
    spans = ScopeSpans(spans=[Span(name="AAAA")])
    good = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[spans])])
    body = good.SerializeToString().replace(b"AAAA", b"A\xff\xfeA")
    with pytest.raises(BadRequest):
        proto_codec.decode(body)


def test_protobuf_deeply_nested_attribute_is_bad_request_not_a_crash() -> None:
    def field(number: int, payload: bytes) -> bytes:
        length, n = bytearray(), len(payload)
        while True:
            length.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                break
        return bytes([(number << 3) | 2]) + bytes(length) + payload

    value = AnyValue(string_value="x").SerializeToString()
    for _ in range(2_000):  # AnyValue.kvlist_value(6) -> KeyValueList.values(1) -> KeyValue.value(2)
        value = field(6, field(1, field(1, b"k") + field(2, value)))
    span = field(9, field(1, b"a") + field(2, value))  # Span.attributes(9)
    body = field(1, field(2, field(2, span)))  # request.resource_spans -> scope_spans -> spans
    with pytest.raises(BadRequest):
        proto_codec.decode(body)


# --- the real SDK encoder ------------------------------------------------------------


def test_sdk_encoded_protobuf_decodes_unchanged() -> None:
    request = sdk_request()
    decoded = proto_codec.decode(request.SerializeToString())
    assert decoded == request
    spans = decoded.resource_spans[0].scope_spans[0].spans
    assert sorted(s.name for s in spans) == ["filter", "llm", "pipeline"]


def test_sdk_request_as_otlp_json_decodes_to_the_same_message() -> None:
    """The same spans in OTLP JSON (hex ids, camelCase, int64 as strings) give the SDK's protobuf message."""
    request = sdk_request()
    document = otlp_json_document(request)
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    # Sanity: the document really is OTLP JSON the way the spec writes it.
    assert all(len(s["traceId"]) == 32 and len(s["spanId"]) == 16 for s in spans)
    assert all(isinstance(s["startTimeUnixNano"], str) for s in spans)
    assert {s["kind"] for s in spans} == {"SPAN_KIND_SERVER", "SPAN_KIND_INTERNAL", "SPAN_KIND_CLIENT"}
    assert any(s.get("links") for s in spans)
    assert fields(json_codec.decode(json.dumps(document).encode())) == fields(request)


def test_sdk_request_as_otlp_json_with_numbers_and_enum_ints() -> None:
    """The other spellings the spec allows: int64 as JSON numbers, enums as integers."""
    request = sdk_request()
    document = otlp_json_document(request)
    for span in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        span["startTimeUnixNano"] = int(span["startTimeUnixNano"])
        span["endTimeUnixNano"] = int(span["endTimeUnixNano"])
        span["kind"] = Span.SpanKind.Value(span["kind"])
        if "code" in span.get("status", {}):
            span["status"]["code"] = Status.StatusCode.Value(span["status"]["code"])
    decoded = json_codec.decode(json.dumps(document).encode())
    assert fields(decoded) == fields(request)
    assert map_request(decoded) == map_request(request)


def test_protobufs_own_json_mapping_gets_ids_wrong() -> None:
    """Why the JSON codec exists: json_format alone reads hex ids as base64 and corrupts them."""
    document = otlp_json_document(sdk_request())
    naive = json_format.ParseDict(copy.deepcopy(document), ExportTraceServiceRequest(), ignore_unknown_fields=True)
    assert len(naive.resource_spans[0].scope_spans[0].spans[0].trace_id) != 16
    decoded = json_codec.decode(json.dumps(document).encode())
    assert len(decoded.resource_spans[0].scope_spans[0].spans[0].trace_id) == 16


# --- responses and statuses -----------------------------------------------------------


def test_protobuf_response_without_partial_success() -> None:
    body = proto_codec.encode_response(0, "")
    response = ExportTraceServiceResponse.FromString(body)
    assert not response.HasField("partial_success")


def test_protobuf_response_with_partial_success() -> None:
    body = proto_codec.encode_response(3, "invalid trace_id")
    response = ExportTraceServiceResponse.FromString(body)
    assert response.HasField("partial_success")
    assert response.partial_success.rejected_spans == 3
    assert response.partial_success.error_message == "invalid trace_id"


def test_json_response_without_partial_success_is_empty_object() -> None:
    assert json.loads(json_codec.encode_response(0, "")) == {}


def test_json_response_with_partial_success_uses_spec_names() -> None:
    document = json.loads(json_codec.encode_response(2, "span ends before it starts"))
    assert set(document) == {"partialSuccess"}
    partial = document["partialSuccess"]
    assert set(partial) == {"rejectedSpans", "errorMessage"}
    assert int(partial["rejectedSpans"]) == 2  # int64: a string or a number are both valid OTLP JSON
    assert partial["errorMessage"] == "span ends before it starts"


def test_json_response_parses_back_as_the_response_message() -> None:
    body = json_codec.encode_response(7, "x")
    response = json_format.Parse(body, ExportTraceServiceResponse())
    assert response.partial_success.rejected_spans == 7


def test_json_response_large_rejected_count() -> None:
    document = json.loads(json_codec.encode_response(2**40, "many"))
    assert int(document["partialSuccess"]["rejectedSpans"]) == 2**40


@pytest.mark.parametrize("message", ["bad body", "", "ünïcode ✓", 'quote " and \\ backslash'])
def test_protobuf_status_body(message: str) -> None:
    status = status_pb2.Status.FromString(proto_codec.encode_status(INVALID_ARGUMENT, message))
    assert status.code == INVALID_ARGUMENT
    assert status.message == message


@pytest.mark.parametrize("message", ["bad body", "", "ünïcode ✓", 'quote " and \\ backslash'])
def test_json_status_body(message: str) -> None:
    body = json_codec.encode_status(UNAVAILABLE, message)
    assert json.loads(body) == {"code": UNAVAILABLE, "message": message}
    status = json_format.Parse(body, status_pb2.Status())
    assert (status.code, status.message) == (UNAVAILABLE, message)
