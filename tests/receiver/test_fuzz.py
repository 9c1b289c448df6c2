"""Property-based fuzzing of everything a client controls: the OTLP protobuf and JSON decoders,
the span mapper, the legacy /ingest body, and the whole path into PostgreSQL.

Bad input may only ever become a 400 (BadRequest / LegacyEventError) or a partial_success:
never another exception, a 500, a crash or a hang. Case counts are fixed per test (see
``settings``) so a run reports how many cases ran.
"""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

import otlp_json_oracle
from helpers import call, export_request, otlp_json_body
from test_codec import fields
from xray_otel import conventions as c
from xray_otel.mapping.spans import map_request
from xray_otel.receiver import otlp_json
from xray_otel.receiver.codec import JsonCodec, ProtobufCodec
from xray_otel.receiver.errors import BadRequest
from xray_otel.mapping.legacy import LegacyEventError, map_events

FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIVE = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.function_scoped_fixture])

# --- hostile but well-formed OTLP ------------------------------------------------

text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["", "\x00", "a\x00b", "\\u0000", '{"x": NaN}', "[" * 200 + "]" * 200, '{"a": 1e999999}',
     '"\\ud800"', "null", "{}", "[]", "1" * 5000, "\ufffd"])
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
doubles = st.floats(allow_nan=True, allow_infinity=True)


def any_values() -> st.SearchStrategy[AnyValue]:
    leaves = st.one_of(
        text.map(lambda v: AnyValue(string_value=v)), ints.map(lambda v: AnyValue(int_value=v)),
        doubles.map(lambda v: AnyValue(double_value=v)), st.booleans().map(lambda v: AnyValue(bool_value=v)),
        st.binary(max_size=16).map(lambda v: AnyValue(bytes_value=v)), st.just(AnyValue()))
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda vs: AnyValue(array_value=ArrayValue(values=vs))),
        st.lists(st.tuples(text, inner), max_size=4).map(
            lambda kvs: AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in kvs])))),
        max_leaves=12)


xray_keys = st.sampled_from([c.KIND, c.RUN_NAME, c.RUN_INPUTS, c.RUN_OUTPUTS, c.RUN_TAGS, c.TAG_PREFIX + "t",
                             c.STEP_TYPE, c.STEP_INPUTS, c.STEP_OUTPUTS, c.STEP_METADATA, c.STEP_REASONING,
                             c.STEP_COST, c.STEP_INPUT_COUNT, c.STEP_OUTPUT_COUNT, c.STEP_REJECTIONS,
                             c.STEP_DECISIONS, c.GEN_AI_REQUEST_MODEL, c.GEN_AI_INPUT_TOKENS,
                             "openinference.span.kind", "input.value", "llm.token_count.prompt",
                             "retrieval.documents.0.document.id", "gen_ai.operation.name"])
attributes = st.lists(st.builds(KeyValue, key=xray_keys | text, value=any_values()), max_size=8)
ids8 = st.sampled_from([b"", b"\0" * 8, b"\1" * 7, b"\1" * 9]) | st.binary(min_size=8, max_size=8)
ids16 = st.sampled_from([b"", b"\0" * 16, b"\1" * 15]) | st.binary(min_size=16, max_size=16)
times = st.sampled_from([0, 1, 2**63, 2**64 - 1, 1_700_000_000_000_000_000]) | st.integers(0, 2**64 - 1)
shared_ids = st.sampled_from([bytes([i]) * 8 for i in range(1, 5)])  # so parents, cycles and duplicates happen


@st.composite
def spans(draw: st.DrawFn) -> Span:
    span = Span(trace_id=draw(st.sampled_from([b"\7" * 16]) | ids16), span_id=draw(shared_ids | ids8),
                parent_span_id=draw(shared_ids | ids8), name=draw(text), kind=draw(st.integers(0, 5)),
                start_time_unix_nano=draw(times), end_time_unix_nano=draw(times), attributes=draw(attributes))
    span.status.CopyFrom(Status(code=draw(st.integers(0, 2)), message=draw(text)))
    if draw(st.booleans()):
        event = span.events.add(name="exception", time_unix_nano=draw(times))
        event.attributes.extend(draw(attributes))
    return span


requests = st.lists(spans(), min_size=1, max_size=6).map(
    lambda ss: export_request(ss)).flatmap(
    lambda r: attributes.map(lambda attrs: (r.resource_spans[0].resource.attributes.extend(attrs), r)[1]))


@FAST
@given(st.binary(max_size=2000))
def test_protobuf_decoder_on_arbitrary_bytes(body: bytes) -> None:
    try:
        request = ProtobufCodec().decode(body)
    except BadRequest:
        return
    map_request(request)  # whatever decodes must map without raising


@FAST
@given(requests)
def test_mapper_on_hostile_spans(request) -> None:
    batch = map_request(request)
    spans_in = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    assert batch.rejected + len(batch.steps) == spans_in  # every span stored or counted, none lost
    for step in batch.steps:
        for column in (step.inputs, step.outputs, step.metadata, step.rejections, step.decisions,
                       step.attributes, step.otel, step.resource):
            if column is not None:
                json.loads(column, parse_constant=_no_constant)  # strict JSON, as jsonb requires


def _no_constant(name: str) -> None:
    raise AssertionError(f"{name} would be refused by jsonb")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text | st.sampled_from(
        ["resourceSpans", "scopeSpans", "spans", "traceId", "spanId", "parentSpanId", "attributes",
         "key", "value", "stringValue", "intValue", "kvlistValue", "arrayValue", "values", "status",
         "startTimeUnixNano", "kind", "events", "links", "resource", "scope"]), inner, max_size=5),
    max_leaves=25)


@FAST
@given(json_values)
def test_json_decoder_on_arbitrary_json(document) -> None:
    """Any JSON document: a request that maps, or a BadRequest; either way what the decoder before issue 17
    gave (otlp_json_oracle), field for field or word for word."""
    body = json.dumps(document).encode()
    assert _outcome(JsonCodec().decode, body) == _outcome(otlp_json_oracle.decode, body)


@FAST
@given(requests, st.booleans())
def test_exporter_form_json_takes_the_typed_pass_and_maps_as_protobuf(request, snake_case) -> None:
    """OTLP/JSON as exporters write it (hex ids, 64-bit integers as strings, enums as numbers) is read by the
    typed pass, in one parse, and gives the protobuf's very fields and rows; snake_case names, by the walk."""
    decoded = otlp_json.decode(otlp_json_body(request, preserving_proto_field_name=snake_case))
    assert decoded.typed_pass is not snake_case
    assert fields(decoded) == fields(request)
    assert map_request(decoded) == map_request(request)


@FAST
@given(requests, st.data())
def test_json_decoder_judges_as_before(request, data) -> None:
    """Exporter-form bodies (or snake_case ones), then broken in up to three places (a value replaced, a field
    dropped or renamed, a byte overwritten): the decoder accepts what the decoder before issue 17 accepted, with
    the same fields, and refuses what it refused, with the same message; so does the general walk alone, which
    judges whatever the typed pass stops at."""
    document = json.loads(otlp_json_body(request, preserving_proto_field_name=data.draw(st.booleans())))
    for _ in range(data.draw(st.integers(0, 3))):
        _break_one(document, data)
    body = json.dumps(document).encode()
    if data.draw(st.booleans()):
        at = data.draw(st.integers(0, len(body) - 1))
        body = body[:at] + data.draw(st.sampled_from([b"\xff", b"\xe9", b"\x00", b"}", b"0", b"\\"])) + body[at + 1:]
    before = _outcome(otlp_json_oracle.decode, body)
    assert _outcome(JsonCodec().decode, body) == before
    assert _outcome(lambda b: otlp_json._walk(otlp_json._document(b)), body) == before


def _break_one(document, data) -> None:
    """Replace, drop or rename one member of a random object, or one item of a random array."""
    places = []
    stack = [document]
    while stack:
        node = stack.pop()
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        places.extend((node, key) for key, _ in children)
        stack.extend(child for _, child in children if isinstance(child, (dict, list)))
    if not places:
        return
    node, key = data.draw(st.sampled_from(places))
    action = data.draw(st.sampled_from(["replace", "drop", "rename"]))
    if action == "replace" or isinstance(node, list):
        node[key] = data.draw(json_values)
    elif action == "drop":
        del node[key]
    else:
        node[data.draw(st.sampled_from(["trace_id", "spanId", "intValue", "unknown", key.upper()]))] = node.pop(key)


def _outcome(decode, body: bytes) -> object:
    """A request's fields and rows, or the BadRequest's message."""
    try:
        request = decode(body)
    except BadRequest as exc:
        return str(exc)
    return fields(request), map_request(request)


@FAST
@given(json_values)
def test_legacy_mapper_on_arbitrary_json(document) -> None:
    try:
        map_events(document)
    except LegacyEventError:
        pass


@FAST
@given(st.lists(st.fixed_dictionaries({
    "type": st.sampled_from(["run_complete", "run_failed", "step_complete", "step_failed", "x"]),
    "data": st.fixed_dictionaries({}, optional={
        "id": st.uuids().map(str) | text, "run_id": st.uuids().map(str) | text, "name": text,
        "started_at": st.datetimes().map(lambda d: d.isoformat()) | text, "completed_at": text,
        "cost": doubles | ints, "metadata": json_values, "tags": json_values, "inputs": json_values})}),
    max_size=5))
def test_legacy_mapper_on_plausible_events(events) -> None:
    try:
        batch, processed = map_events({"events": events})
    except LegacyEventError:
        return
    assert processed == len(events)
    assert all(math.isfinite(step.cost) for step in batch.steps)


@LIVE
@given(requests)
def test_hostile_requests_end_to_end_never_500(receiver_url: str, request) -> None:
    """Through HTTP, the mapper and PostgreSQL: 200 with every span stored or counted as rejected."""
    reply = call("POST", receiver_url + "/v1/traces", request.SerializeToString(),
                 {"Content-Type": "application/x-protobuf"})
    assert reply.status == 200, reply.body[:300]
    # PostgreSQL must take every row the mapper accepted: the only rejections are the mapper's own.
    rejected = ExportTraceServiceResponse.FromString(reply.body).partial_success.rejected_spans
    assert rejected == map_request(request).rejected


@LIVE
@given(json_values)
def test_hostile_json_end_to_end_never_500(receiver_url: str, document) -> None:
    reply = call("POST", receiver_url + "/v1/traces", json.dumps(document).encode(),
                 {"Content-Type": "application/json"})
    assert reply.status in (200, 400), reply.body[:300]
    legacy = call("POST", receiver_url + "/ingest", json.dumps(document).encode(),
                  {"Content-Type": "application/json"})
    assert legacy.status in (200, 400), legacy.body[:300]


def test_resource_spans_are_fuzzed_too() -> None:
    """The strategies above reach resources; a quick guard that a hostile resource maps."""
    rs = ResourceSpans(scope_spans=[ScopeSpans(spans=[Span(trace_id=b"\1" * 16, span_id=b"\2" * 8,
                                                           start_time_unix_nano=1)])])
    rs.resource.attributes.add(key="service.name", value=AnyValue(double_value=float("nan")))
    request = export_request([])
    request.resource_spans.append(rs)
    batch = map_request(request)
    assert batch.rejected == 0 and batch.steps[0].service == "NaN"
