"""OTLP/JSON bytes -> the request the span mapper reads; the one decoder for application/json.

OTLP/JSON (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding) is proto3 JSON with trace and
span ids in hex. Accepted here: hex ids (base64 too, as protobuf's own mapping writes bytes), lowerCamelCase
or snake_case names, enums as numbers or names (an unknown name reads as 0), 64-bit integers as numbers or
strings, doubles as numbers or "NaN"/"Infinity"/"-Infinity", bytes in base64, null for absent, unknown
fields ignored, an empty body as an empty request. A wrong shape is a BadRequest that says where:
``resourceSpans[0].scopeSpans[1].spans[3].startTimeUnixNano: expected an integer, got a string 'soon'``.
Nesting stops where the protobuf codec stops it (upb: 100 messages below the request), so a request one
codec takes the other takes too.

The result is a tree of the structs below, shaped like the protobuf messages (mapping/shapes.py): the
proto's snake_case field names as attributes, ids as bytes, times as int nanoseconds, enums as ints, an
AnyValue with WhichOneof("value"). What protobuf calls presence (an empty message set or not) is not kept.

A body is read one of two ways, and parsed once unless the first stops partway:

- the typed pass: msgspec decodes the bytes straight into the structs, checking each field's JSON type in C.
  A field's type admits every spelling proto3 JSON allows for it (an int64 as a number or a string, an enum
  as a number or a name, null for absent), and _finish converts what needs it (hex or base64 ids to bytes,
  decimal strings to ints, enum names to numbers) with the converters the walk uses, so both judge a value
  alike. This is the way for the form exporters write and the other camelCase spellings.
- the general walk: a body that starts with the snake_case "resource_spans" is parsed into Python values and
  walked field by field (_walk). So is a body the typed pass stops at, parsed a second time: a body with an
  error (the walk names it), a name the structs do not know (a snake_case name in a camelCase body, a field
  newer than this proto), a null key or a string-table index written as text, JSON that msgspec will not
  read but json does (a lone surrogate, a NaN), or a key given twice whose first value has the wrong type.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, Optional, Union

import msgspec
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest as _Proto
from opentelemetry.proto.trace.v1.trace_pb2 import Span as _ProtoSpan, Status as _ProtoStatus

from .errors import BadRequest

MAX_DEPTH = 100  # messages below the request, as upb's binary decoder allows
_TOO_DEEP = f"nested deeper than {MAX_DEPTH} messages"
_U32, _U64, _I32, _I64 = 2**32 - 1, 2**64 - 1, 2**31, 2**63
_KINDS, _CODES = dict(_ProtoSpan.SpanKind.items()), dict(_ProtoStatus.StatusCode.items())
_DOUBLES = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
_INTEGER = re.compile(r"-?[0-9]{1,40}\Z")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")
_SNAKE_CASE_BODY = re.compile(rb'[ \t\n\r]*\{[ \t\n\r]*"resource_spans"')


def _snake_to_camel() -> dict[str, str]:
    """snake_case -> lowerCamelCase for every multi-word field a trace request can hold."""
    names: dict[str, str] = {}
    pending, seen = [_Proto.DESCRIPTOR], set()
    while pending:
        message = pending.pop()
        if message.full_name not in seen:
            seen.add(message.full_name)
            names.update((f.name, f.json_name) for f in message.fields if f.name != f.json_name)
            pending.extend(f.message_type for f in message.fields if f.message_type)
    return names


_CAMEL = _snake_to_camel()
_SNAKE = frozenset(_CAMEL)


def decode(body: bytes) -> ExportTraceServiceRequest:
    """The request an OTLP/JSON body describes; BadRequest naming the first bad field otherwise."""
    if not _SNAKE_CASE_BODY.match(body):
        try:
            return _finish(_DECODE(body))
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, _Invalid, _Other):  # a bug still raises
            pass
    return _walk(_document(body))


def _document(body: bytes) -> Any:
    """The body parsed into Python values, an empty one as an empty object; BadRequest if it is not JSON."""
    try:
        return parse_json(body) if body.strip() else {}
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None


_parse_fast = msgspec.json.Decoder().decode


def parse_json(body: bytes) -> Any:
    """What json.loads(body) gives, in half the time: msgspec parses, and json.loads runs only on what msgspec
    refuses (NaN, a lone surrogate, a BOM, a number past float range, invalid UTF-8), so json's rules and error
    messages stay. msgspec keeps integers past 64 bits exact, as json does (orjson makes them floats)."""
    try:
        return _parse_fast(body)
    except (ValueError, RecursionError):
        return json.loads(body)


# --- the structs: the protobuf messages' shape, and for the typed pass the JSON each field may hold ------------

_Text = Optional[str]
_Id = Optional[str]  # hex or base64 in the JSON; bytes after _finish
_UInt32 = Union[Annotated[int, msgspec.Meta(ge=0, le=_U32)], float, str, None]  # proto3 JSON: a number or a string
_Int32 = Union[Annotated[int, msgspec.Meta(ge=-_I32, le=_I32 - 1)], float, str, None]  # enums: a name too
_Int64 = Union[Annotated[int, msgspec.Meta(ge=-_I64, le=_I64 - 1)], float, str, None]
_UInt64 = Union[int, float, str, None]  # msgspec bounds stop at int64: _finish checks
_Double = Union[float, str, None]  # "NaN", "Infinity", "-Infinity" or a decimal string too
# A string-table index (profiles use them; traces do not): a number here, any other spelling goes to the walk.
_StringIndex = Annotated[int, msgspec.Meta(ge=-_I32, le=_I32 - 1)]


class _Message(msgspec.Struct, rename=_CAMEL, forbid_unknown_fields=True, gc=False):
    """A message: attributes named as the protobuf fields, camelCase on the wire. A name it does not know (a
    snake_case name, or a field newer than this proto) stops the typed pass: the walk takes the body and ignores
    an unknown field. Skipping one would also skip its bytes unchecked (msgspec does not validate the UTF-8 of
    what it skips)."""


class AnyValue(_Message):
    """One member set (WhichOneof names it), the others None; none set for no value."""

    string_value: _Text = None
    bool_value: Optional[bool] = None
    int_value: _Int64 = None
    double_value: _Double = None
    array_value: Optional[ArrayValue] = None
    kvlist_value: Optional[KeyValueList] = None
    bytes_value: _Text = None  # base64 in the JSON; bytes after _finish
    string_value_strindex: _StringIndex = None

    def WhichOneof(self, _: str) -> Optional[str]:  # noqa: N802 - the protobuf message method the mapping calls
        for name in _ONEOF:
            if getattr(self, name) is not None:
                return name
        return None


_ONEOF = ("string_value", "bool_value", "int_value", "double_value", "array_value", "kvlist_value", "bytes_value",
          "string_value_strindex")
_ONE_SET = len(_ONEOF) - 1  # Nones in an AnyValue with one member set
_astuple = msgspec.structs.astuple


class ArrayValue(_Message):
    values: Optional[list[AnyValue]] = []


class KeyValue(_Message):
    """A null key sends the body to the walk too, so _finish need only look at the value: KeyValues are many."""

    key: str = ""
    value: Optional[AnyValue] = msgspec.field(default_factory=AnyValue)
    key_strindex: _StringIndex = 0


class KeyValueList(_Message):
    values: Optional[list[KeyValue]] = []


class Status(_Message):
    message: _Text = ""
    code: _Int32 = 0


class Event(_Message):
    time_unix_nano: _UInt64 = 0
    name: _Text = ""
    attributes: Optional[list[KeyValue]] = []
    dropped_attributes_count: _UInt32 = 0


class Link(_Message):
    trace_id: _Id = b""
    span_id: _Id = b""
    trace_state: _Text = ""
    attributes: Optional[list[KeyValue]] = []
    dropped_attributes_count: _UInt32 = 0
    flags: _UInt32 = 0


class Span(_Message):
    trace_id: _Id = b""
    span_id: _Id = b""
    trace_state: _Text = ""
    parent_span_id: _Id = b""
    flags: _UInt32 = 0
    name: _Text = ""
    kind: _Int32 = 0
    start_time_unix_nano: _UInt64 = 0
    end_time_unix_nano: _UInt64 = 0
    attributes: Optional[list[KeyValue]] = []
    dropped_attributes_count: _UInt32 = 0
    events: Optional[list[Event]] = []
    dropped_events_count: _UInt32 = 0
    links: Optional[list[Link]] = []
    dropped_links_count: _UInt32 = 0
    status: Optional[Status] = msgspec.field(default_factory=Status)


class InstrumentationScope(_Message):
    name: _Text = ""
    version: _Text = ""
    attributes: Optional[list[KeyValue]] = []
    dropped_attributes_count: _UInt32 = 0


class ScopeSpans(_Message):
    scope: Optional[InstrumentationScope] = msgspec.field(default_factory=InstrumentationScope)
    spans: Optional[list[Span]] = []
    schema_url: _Text = ""


class EntityRef(_Message):
    schema_url: _Text = ""
    type: _Text = ""
    id_keys: Optional[list[str]] = []
    description_keys: Optional[list[str]] = []


class Resource(_Message):
    attributes: Optional[list[KeyValue]] = []
    dropped_attributes_count: _UInt32 = 0
    entity_refs: Optional[list[EntityRef]] = []


class ResourceSpans(_Message):
    resource: Optional[Resource] = msgspec.field(default_factory=Resource)
    scope_spans: Optional[list[ScopeSpans]] = []
    schema_url: _Text = ""


class ExportTraceServiceRequest(_Message):
    resource_spans: Optional[list[ResourceSpans]] = []

    typed_pass: ClassVar[bool] = True  # which way read it, for /metrics (codec.json_decoder)


class _Walked(ExportTraceServiceRequest):
    """A request the general walk built."""

    typed_pass: ClassVar[bool] = False


_DECODE = msgspec.json.Decoder(ExportTraceServiceRequest).decode


# --- the typed pass: what msgspec decoded, made what the mapper reads ----------------------------------------


class _Other(Exception):
    """Valid JSON as far as the typed pass can tell, but the general walk must judge it."""


def _finish(request: ExportTraceServiceRequest) -> ExportTraceServiceRequest:
    """Nulls to defaults, ids to bytes, other spellings to numbers, with the walk's converters; _Invalid or
    _Other where the walk must decide (it finds the error, or takes a spelling this pass does not)."""
    if request.resource_spans is None:
        request.resource_spans = []
    for resource_spans in request.resource_spans:
        if (resource := resource_spans.resource) is None:
            resource_spans.resource = Resource()
        else:
            _resource(resource)
        if resource_spans.schema_url is None:
            resource_spans.schema_url = ""
        if (all_scope_spans := resource_spans.scope_spans) is None:
            resource_spans.scope_spans = all_scope_spans = []
        for scope_spans in all_scope_spans:
            if (scope := scope_spans.scope) is None:
                scope_spans.scope = InstrumentationScope()
            else:
                _scope(scope)
            if scope_spans.schema_url is None:
                scope_spans.schema_url = ""
            if (spans := scope_spans.spans) is None:
                scope_spans.spans = spans = []
            for span in spans:
                _span(span)
    return request


def _span(span: Span) -> None:
    # Exporters write hex ids and times as decimal strings: the times are converted inline, the commonest form
    # first, as this runs for every span.
    span.trace_id = _hex_id(span.trace_id)
    span.span_id = _hex_id(span.span_id)
    span.parent_span_id = _hex_id(span.parent_span_id)
    if type(value := span.start_time_unix_nano) is str and len(value) < 20 and value.isdigit() and value.isascii():
        span.start_time_unix_nano = int(value)  # < 10**19: in range
    elif type(value) is not int or not 0 <= value <= _U64:
        span.start_time_unix_nano = _uint64(value)
    if type(value := span.end_time_unix_nano) is str and len(value) < 20 and value.isdigit() and value.isascii():
        span.end_time_unix_nano = int(value)
    elif type(value) is not int or not 0 <= value <= _U64:
        span.end_time_unix_nano = _uint64(value)
    if span.name is None:
        span.name = ""
    if span.trace_state is None:
        span.trace_state = ""
    if type(span.kind) is not int:
        span.kind = _number(_kind, span.kind)
    if type(span.flags) is not int:
        span.flags = _number(_u32, span.flags)
    if type(span.dropped_attributes_count) is not int:
        span.dropped_attributes_count = _number(_u32, span.dropped_attributes_count)
    if type(span.dropped_events_count) is not int:
        span.dropped_events_count = _number(_u32, span.dropped_events_count)
    if type(span.dropped_links_count) is not int:
        span.dropped_links_count = _number(_u32, span.dropped_links_count)
    if (status := span.status) is None:
        span.status = Status()
    else:
        if type(status.code) is not int:
            status.code = _number(_status_code, status.code)
        if status.message is None:
            status.message = ""
    if attributes := span.attributes:
        _values(attributes, 4)
    elif attributes is None:
        span.attributes = []
    if events := span.events:
        for event in events:
            _event(event)
    elif events is None:
        span.events = []
    if links := span.links:
        for link in links:
            _link(link)
    elif links is None:
        span.links = []


def _event(event: Event) -> None:
    if type(value := event.time_unix_nano) is str and len(value) < 20 and value.isdigit() and value.isascii():
        event.time_unix_nano = int(value)
    elif type(value) is not int or not 0 <= value <= _U64:
        event.time_unix_nano = _uint64(value)
    if event.name is None:
        event.name = ""
    if type(event.dropped_attributes_count) is not int:
        event.dropped_attributes_count = _number(_u32, event.dropped_attributes_count)
    if attributes := event.attributes:
        _values(attributes, 5)
    elif attributes is None:
        event.attributes = []


def _link(link: Link) -> None:
    link.trace_id, link.span_id = _hex_id(link.trace_id), _hex_id(link.span_id)
    if link.trace_state is None:
        link.trace_state = ""
    if type(link.flags) is not int:
        link.flags = _number(_u32, link.flags)
    if type(link.dropped_attributes_count) is not int:
        link.dropped_attributes_count = _number(_u32, link.dropped_attributes_count)
    if attributes := link.attributes:
        _values(attributes, 5)
    elif attributes is None:
        link.attributes = []


def _resource(resource: Resource) -> None:
    if attributes := resource.attributes:
        _values(attributes, 3)
    elif attributes is None:
        resource.attributes = []
    if type(resource.dropped_attributes_count) is not int:
        resource.dropped_attributes_count = _number(_u32, resource.dropped_attributes_count)
    if (entity_refs := resource.entity_refs) is None:
        resource.entity_refs = []
    for ref in entity_refs or ():
        if ref.schema_url is None:
            ref.schema_url = ""
        if ref.type is None:
            ref.type = ""
        if ref.id_keys is None:
            ref.id_keys = []
        if ref.description_keys is None:
            ref.description_keys = []


def _scope(scope: InstrumentationScope) -> None:
    if scope.name is None:
        scope.name = ""
    if scope.version is None:
        scope.version = ""
    if attributes := scope.attributes:
        _values(attributes, 4)
    elif attributes is None:
        scope.attributes = []
    if type(scope.dropped_attributes_count) is not int:
        scope.dropped_attributes_count = _number(_u32, scope.dropped_attributes_count)


def _values(key_values: list[KeyValue], depth: int) -> None:
    """KeyValues at message depth ``depth`` (the request being 0), as _attributes checks them."""
    if depth >= MAX_DEPTH and (depth > MAX_DEPTH or any(kv.value is not None for kv in key_values)):
        raise _Other  # a value past the limit: the walk says where
    for kv in key_values:
        if (value := kv.value) is None:
            kv.value = AnyValue()
            continue
        unset = _astuple(value).count(None)
        if unset == _ONE_SET:  # one member: the commonest, a string, needs nothing; the next, an int as text, little
            if value.string_value is None:
                if type(number := value.int_value) is str and len(number) < 19 and number.isdigit() \
                        and number.isascii():
                    value.int_value = int(number)
                else:
                    _member(value, depth + 1)
        elif unset != _ONE_SET + 1:  # two members: an error, which the walk words
            raise _Other


def _value(value: AnyValue, depth: int) -> None:
    """One AnyValue in an array, at message depth ``depth``."""
    if depth > MAX_DEPTH:
        raise _Other
    unset = _astuple(value).count(None)
    if unset == _ONE_SET:
        if value.string_value is None:
            _member(value, depth)
    elif unset != _ONE_SET + 1:
        raise _Other


def _member(value: AnyValue, depth: int) -> None:
    """The one member of ``value``, not a string, converted as _any converts it."""
    if (number := value.int_value) is not None:
        if type(number) is str and len(number) < 19 and number.isdigit() and number.isascii():
            value.int_value = int(number)
        elif type(number) is not int:
            value.int_value = _i64(number, "")
    elif value.bool_value is not None:
        pass
    elif (double := value.double_value) is not None:
        if type(double) is not float or double - double != 0.0:  # a string, or past float range
            value.double_value = _double(double, "")
    elif (array := value.array_value) is not None:
        if depth + 1 > MAX_DEPTH:
            raise _Other
        if array.values is None:
            array.values = []
        for item in array.values:
            _value(item, depth + 2)
    elif (kvlist := value.kvlist_value) is not None:
        if depth + 1 > MAX_DEPTH:
            raise _Other
        if kvlist.values is None:
            kvlist.values = []
        elif kvlist.values:
            _values(kvlist.values, depth + 2)
    elif value.bytes_value is not None:
        value.bytes_value = _base64(value.bytes_value, "")


def _hex_id(value: Any) -> bytes:
    """An id as the typed pass has it: hex (the common form) or base64 text, None for null, or the default b""."""
    if type(value) is str:
        try:
            raw = bytes.fromhex(value)
            if len(raw) * 2 == len(value):  # fromhex skips whitespace; an id has none
                return raw
        except ValueError:
            pass
        return _id(value, "")
    return b"" if value is None else value


def _uint64(value: Any) -> int:
    return 0 if value is None else _u64(value, "")


def _number(convert: Any, value: Any) -> int:
    """A number's other spellings (a string, a float, an enum's name) through the walk's converter; null is 0."""
    return 0 if value is None else convert(value, "")


# --- the general walk: any document, field by field -----------------------------------------------------------


class _Invalid(Exception):
    """A value of the wrong shape; each enclosing level appends its own path segment."""

    def __init__(self, segment: str, message: str) -> None:
        super().__init__(message)
        self.path = [segment] if segment else []
        self.message = message


def _walk(document: Any) -> ExportTraceServiceRequest:
    """The request a parsed OTLP/JSON body describes; BadRequest naming the first bad field otherwise."""
    if type(document) is not dict:
        raise BadRequest("OTLP JSON body must be an object with a resourceSpans array")
    request = _Walked()
    try:
        items = _list(_camel(document).get("resourceSpans"), "resourceSpans")
        for i, item in enumerate(items):
            _each(_resource_spans, ResourceSpans, request.resource_spans, item, "resourceSpans", i)
    except _Invalid as exc:
        where = ".".join(reversed(exc.path))
        raise BadRequest(f"{where}: {exc.message}" if where else exc.message) from None
    return request


def _each(decode: Any, message: Any, out: list[Any], item: Any, name: str, i: int) -> None:
    """decode(a new ``message``, item) for item ``i`` of array ``name``, appended to ``out``, errors located there."""
    try:
        out.append(struct := message())
        decode(struct, _object(item))
    except _Invalid as exc:
        exc.path.append(f"{name}[{i}]")
        raise
    except (TypeError, ValueError) as exc:  # a string that is not Unicode (a lone surrogate), as upb refused it
        raise _unstorable(f"{name}[{i}]", item, exc) from None


def _field(decode: Any, message: Any, value: Any, name: str) -> Any:
    """decode(a new ``message``, value) for message field ``name``, errors located there."""
    try:
        obj = _object(value)
        decode(struct := message(), obj)
    except _Invalid as exc:
        exc.path.append(name)
        raise
    return struct


def _scalars(out: Any, obj: dict[str, Any], fields: tuple[tuple[str, str, Any], ...]) -> None:
    for name, attribute, convert in fields:
        if (value := obj.get(name)) is not None:
            setattr(out, attribute, convert(value, name))


def _resource_spans(out: ResourceSpans, obj: dict[str, Any]) -> None:
    if (value := obj.get("resource")) is not None:
        out.resource = _field(_resource_walk, Resource, value, "resource")
    for i, item in enumerate(_list(obj.get("scopeSpans"), "scopeSpans")):
        _each(_scope_spans, ScopeSpans, out.scope_spans, item, "scopeSpans", i)
    _scalars(out, obj, _SCHEMA_URL)


def _resource_walk(out: Resource, obj: dict[str, Any]) -> None:
    _attributes(out.attributes, obj.get("attributes"), 3, "attributes")
    _scalars(out, obj, _DROPPED)
    for i, item in enumerate(_list(obj.get("entityRefs"), "entityRefs")):
        _each(_entity_ref, EntityRef, out.entity_refs, item, "entityRefs", i)


def _entity_ref(out: EntityRef, obj: dict[str, Any]) -> None:
    _scalars(out, obj, _ENTITY_REF)
    for name, repeated in (("idKeys", out.id_keys), ("descriptionKeys", out.description_keys)):
        repeated.extend(_str(key, f"{name}[{j}]") for j, key in enumerate(_list(obj.get(name), name)))


def _scope_spans(out: ScopeSpans, obj: dict[str, Any]) -> None:
    if (value := obj.get("scope")) is not None:
        out.scope = _field(_scope_walk, InstrumentationScope, value, "scope")
    for i, item in enumerate(_list(obj.get("spans"), "spans")):
        _each(_span_walk, Span, out.spans, item, "spans", i)
    _scalars(out, obj, _SCHEMA_URL)


def _scope_walk(out: InstrumentationScope, obj: dict[str, Any]) -> None:
    _scalars(out, obj, _SCOPE)
    _attributes(out.attributes, obj.get("attributes"), 4, "attributes")


def _span_walk(out: Span, obj: dict[str, Any]) -> None:
    _scalars(out, obj, _SPAN)
    if (value := obj.get("attributes")) is not None:
        _attributes(out.attributes, value, 4, "attributes")
    if (value := obj.get("events")) is not None:
        for i, item in enumerate(_list(value, "events")):
            _each(_event_walk, Event, out.events, item, "events", i)
    if (value := obj.get("links")) is not None:
        for i, item in enumerate(_list(value, "links")):
            _each(_link_walk, Link, out.links, item, "links", i)
    if (value := obj.get("status")) is not None:
        out.status = _field(_status_walk, Status, value, "status")


def _status_walk(out: Status, obj: dict[str, Any]) -> None:
    _scalars(out, obj, _STATUS)


def _event_walk(out: Event, obj: dict[str, Any]) -> None:
    _scalars(out, obj, _EVENT)
    _attributes(out.attributes, obj.get("attributes"), 5, "attributes")


def _link_walk(out: Link, obj: dict[str, Any]) -> None:
    _scalars(out, obj, _LINK)
    _attributes(out.attributes, obj.get("attributes"), 5, "attributes")


def _attributes(out: list[KeyValue], items: Any, depth: int, name: str) -> None:
    """KeyValues at message depth ``depth`` (the request being 0) appended to ``out``."""
    items = _list(items, name)
    if items and depth > MAX_DEPTH:
        raise _Invalid(name, _TOO_DEEP)
    shallow = depth < MAX_DEPTH
    for i, item in enumerate(items):
        try:
            if type(item) is dict and len(item) == 2 and shallow:  # the usual {"key": ..., "value": {...}}
                key, value = item.get("key"), item.get("value")
                if type(key) is str and type(value) is dict:
                    out.append(kv := KeyValue(key=_stored(key)))
                    if len(value) == 1:  # the commonest values inline; the rest, and all errors, in _any
                        if type(text := value.get("stringValue")) is str:
                            kv.value = AnyValue(string_value=_stored(text))
                            continue
                        if type(text := value.get("intValue")) is str and len(text) < 19 and text.isdigit() \
                                and text.isascii():
                            kv.value = AnyValue(int_value=int(text))
                            continue
                    kv.value = _any(value, depth + 1, "value")
                    continue
            out.append(kv := KeyValue())
            item = _object(item)
            _scalars(kv, item, _KEY_VALUE)
            if (value := item.get("value")) is not None:
                kv.value = _any(value, depth + 1, "value")
        except _Invalid as exc:
            exc.path.append(f"{name}[{i}]")
            raise
        except (TypeError, ValueError) as exc:  # a string that is not Unicode (a lone surrogate)
            raise _unstorable(f"{name}[{i}]", item, exc) from None


def _any(obj: Any, depth: int, segment: str) -> AnyValue:
    """One AnyValue at message depth ``depth``: one member set, any other null or unknown."""
    if type(obj) is not dict:
        raise _Invalid(segment, f"expected an object, got {_json_type(obj)}")
    if depth > MAX_DEPTH:
        raise _Invalid(segment, _TOO_DEEP)
    out = AnyValue()
    chosen = None
    for name, value in obj.items():
        member = _ANY.get(name)
        if member is None or value is None:
            continue
        if chosen is not None:
            raise _Invalid(segment, f"an AnyValue holds one value, got {chosen!r} and {name!r}")
        chosen = name
        try:
            if member == "arrayValue":
                inner = _object(value)
                out.array_value = array = ArrayValue()
                if depth + 1 > MAX_DEPTH:
                    raise _Invalid("", _TOO_DEEP)
                for i, item in enumerate(_list(inner.get("values"), "values")):
                    array.values.append(_any(item, depth + 2, f"values[{i}]"))
            elif member == "kvlistValue":
                inner = _object(value)
                out.kvlist_value = kvlist = KeyValueList()
                if depth + 1 > MAX_DEPTH:
                    raise _Invalid("", _TOO_DEEP)
                _attributes(kvlist.values, inner.get("values"), depth + 2, "values")
            else:
                attribute, convert = _ANY_SCALARS[member]
                setattr(out, attribute, convert(value, ""))
        except _Invalid as exc:
            exc.path += (name, segment)
            raise
        except (TypeError, ValueError) as exc:  # a string that is not Unicode (a lone surrogate)
            raise _unstorable(segment, obj, exc) from None
    return out


# --- shapes and scalars: the rules both ways share ------------------------------------------------------------


def _object(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise _Invalid("", f"expected an object, got {_json_type(value)}")
    return _camel(value)


def _camel(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` under lowerCamelCase names. One field under both spellings is an error: which would win?"""
    if _SNAKE.isdisjoint(obj):
        return obj
    out: dict[str, Any] = {}
    for name, value in obj.items():
        camel = _CAMEL.get(name, name)
        if camel in out:
            snake = next(s for s, c in _CAMEL.items() if c == camel)
            raise _Invalid("", f"field given twice, as {camel!r} and {snake!r}")
        out[camel] = value
    return out


def _list(value: Any, segment: str) -> list[Any]:
    if value is None:
        return []
    if type(value) is not list:
        raise _Invalid(segment, f"expected an array, got {_json_type(value)}")
    return value


def _str(value: Any, segment: str) -> str:
    if type(value) is not str:
        raise _Invalid(segment, f"expected a string, got {_json_type(value)}")
    return _stored(value)


def _stored(text: str) -> str:
    """``text``, or UnicodeEncodeError when UTF-8 cannot hold it (a lone surrogate), where upb refused to store it.
    Only the walk meets one: msgspec does not read them."""
    if not text.isascii():
        text.encode()
    return text


def _bool(value: Any, segment: str) -> bool:
    if type(value) is not bool:
        raise _Invalid(segment, f"expected true or false, got {_json_type(value)}")
    return value


def _int(value: Any, segment: str, low: int, high: int) -> int:
    """A JSON number or decimal string that is an integer in [low, high] (exponents allowed, as in proto3 JSON)."""
    if type(value) is str and value.isdigit() and value.isascii() and len(value) <= 40:
        number = int(value)
    elif type(value) is int:
        number = value
    elif type(value) is float and value.is_integer():
        number = int(value)
    elif type(value) is str and _INTEGER.match(value):
        number = int(value)
    elif type(value) is str and _NUMBER.match(value):
        try:
            exact = Decimal(value)
        except InvalidOperation:  # an exponent past what decimal holds, either way
            raise _Invalid(segment, f"{value!r:.40}: the exponent is out of range") from None
        if exact.adjusted() > 40:  # far out of range: do not build the int
            raise _Invalid(segment, f"{value!r:.40} is out of range [{low}, {high}]")
        if exact != exact.to_integral_value():
            raise _Invalid(segment, f"expected an integer, got a string {value!r:.40}")
        number = int(exact)
    else:
        raise _Invalid(segment, f"expected an integer, got {_json_type(value)}{_excerpt(value)}")
    if low <= number <= high:
        return number
    raise _Invalid(segment, f"{str(number)[:40]} is out of range [{low}, {high}]")


def _u32(value: Any, segment: str) -> int:
    return _int(value, segment, 0, _U32)


def _u64(value: Any, segment: str) -> int:
    return _int(value, segment, 0, _U64)


def _i32(value: Any, segment: str) -> int:
    return _int(value, segment, -_I32, _I32 - 1)


def _i64(value: Any, segment: str) -> int:
    return _int(value, segment, -_I64, _I64 - 1)


def _double(value: Any, segment: str) -> float:
    if type(value) is float:
        if value - value == 0.0:  # finite
            return value
        raise _Invalid(segment, 'a non-finite double is written as a string: "NaN", "Infinity" or "-Infinity"')
    if type(value) is str and value in _DOUBLES:
        return _DOUBLES[value]
    if type(value) is int or (type(value) is str and _NUMBER.match(value)):
        try:
            number = float(value)
        except OverflowError:
            number = float("inf")
        if number - number == 0.0:
            return number
        raise _Invalid(segment, f"{value!r:.40} is out of range for a double")
    raise _Invalid(segment, f"expected a number, got {_json_type(value)}{_excerpt(value)}")


def _enum(names: dict[str, int]) -> Any:
    def convert(value: Any, segment: str) -> int:
        """An enum as its number or its name; a name this proto version does not know reads as 0 (unset)."""
        if type(value) is int and -_I32 <= value < _I32:
            return value
        if type(value) is str:
            if (number := names.get(value)) is not None:
                return number
            if not _NUMBER.match(value):
                return 0
        return _i32(value, segment)

    return convert


_kind, _status_code = _enum(_KINDS), _enum(_CODES)


def _id(value: Any, segment: str) -> bytes:
    """A trace or span id: hex per OTLP, else base64 as protobuf's own JSON mapping writes bytes."""
    if type(value) is not str:
        raise _Invalid(segment, f"expected a hex string, got {_json_type(value)}")
    try:
        raw = bytes.fromhex(value)
        if len(raw) * 2 == len(value):  # fromhex skips whitespace; an id has none
            return raw
    except ValueError:
        pass
    try:
        return _base64_bytes(value)
    except ValueError:
        raise _Invalid(segment, f"id {value[:40]!r} is neither hex nor base64") from None


def _base64(value: Any, segment: str) -> bytes:
    try:
        return _base64_bytes(_str(value, segment))
    except ValueError:
        raise _Invalid(segment, f"{value[:40]!r} is not base64") from None


def _base64_bytes(value: str) -> bytes:
    """proto3 JSON bytes, "standard or URL-safe base64 encoding with/without paddings"; ValueError if not."""
    standard = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not base64: {exc}") from None


def _unstorable(segment: str, obj: Any, exc: Exception) -> _Invalid:
    """The error for a string that is not valid Unicode, found if it can be."""
    if isinstance(exc, UnicodeError):
        return _Invalid(_bad_string(obj, segment, 2), "string is not valid Unicode (a lone surrogate)")
    return _Invalid(segment, str(exc))


def _bad_string(obj: Any, where: str, levels: int) -> str:
    """The path to the first string in ``obj`` that UTF-8 cannot encode, looking ``levels`` objects deep."""
    for name, value in obj.items() if type(obj) is dict else ():
        if type(value) is str and not _encodes(value):
            return f"{where}.{name}"
        if type(value) is dict and levels > 1:
            found = _bad_string(value, f"{where}.{name}", levels - 1)
            if found != f"{where}.{name}":
                return found
    return where


def _encodes(text: str) -> bool:
    try:
        text.encode()
    except UnicodeError:
        return False
    return True


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
             dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _excerpt(value: Any) -> str:
    return f" {value!r:.40}" if type(value) in (str, int, float) else ""


# --- the scalar fields of each message, for the walk: (JSON name, attribute, converter) -----------------------


def _fields(*fields: tuple[str, Any]) -> tuple[tuple[str, str, Any], ...]:
    snake = {camel: name for name, camel in _CAMEL.items()}
    return tuple((name, snake.get(name, name), convert) for name, convert in fields)


_SCHEMA_URL = _fields(("schemaUrl", _str))
_DROPPED = _fields(("droppedAttributesCount", _u32))
_ENTITY_REF = _fields(("schemaUrl", _str), ("type", _str))
_SCOPE = _fields(("name", _str), ("version", _str), ("droppedAttributesCount", _u32))
_SPAN = _fields(("traceId", _id), ("spanId", _id), ("parentSpanId", _id), ("traceState", _str), ("flags", _u32),
                ("name", _str), ("kind", _kind), ("startTimeUnixNano", _u64), ("endTimeUnixNano", _u64),
                ("droppedAttributesCount", _u32), ("droppedEventsCount", _u32), ("droppedLinksCount", _u32))
_STATUS = _fields(("message", _str), ("code", _status_code))
_EVENT = _fields(("timeUnixNano", _u64), ("name", _str), ("droppedAttributesCount", _u32))
_LINK = _fields(("traceId", _id), ("spanId", _id), ("traceState", _str), ("droppedAttributesCount", _u32),
                ("flags", _u32))
_KEY_VALUE = _fields(("key", _str), ("keyStrindex", _i32))
_ANY_SCALARS = {name: (snake, convert) for name, snake, convert in _fields(
    ("stringValue", _str), ("boolValue", _bool), ("intValue", _i64), ("doubleValue", _double),
    ("bytesValue", _base64), ("stringValueStrindex", _i32))}
# AnyValue's members under either spelling, to the camelCase name.
_ANY = {name: name for name in (*_ANY_SCALARS, "arrayValue", "kvlistValue")}
_ANY |= {snake: camel for snake, camel in _CAMEL.items() if camel in _ANY}
