"""The OTLP/JSON decoder as it was before issue 17 merged its two decoders: an oracle for test_fuzz.py.

Frozen on purpose: receiver/otlp_json.py must accept what this accepted, refuse what it refused with the same
message, and give the same fields. This file is xray_otel/receiver/otlp_json.py at 482590a (it built protobuf
messages field by field), with codec.py's decode_json_messages and parse_json of the same commit appended, as
``decode(body)``. Do not "fix" it; change the property instead if a verdict is meant to change.
"""

from __future__ import annotations

import base64
import binascii
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from xray_otel.receiver.errors import BadRequest

MAX_DEPTH = 100  # messages below the request, as upb's binary decoder allows
_TOO_DEEP = f"nested deeper than {MAX_DEPTH} messages"
_U32, _U64, _I32, _I64 = 2**32 - 1, 2**64 - 1, 2**31, 2**63
_KINDS, _CODES = dict(Span.SpanKind.items()), dict(Status.StatusCode.items())
_DOUBLES = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
_INTEGER = re.compile(r"-?[0-9]{1,40}\Z")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")


def _snake_to_camel() -> dict[str, str]:
    """snake_case -> lowerCamelCase for every multi-word field a trace request can hold."""
    names: dict[str, str] = {}
    pending, seen = [ExportTraceServiceRequest.DESCRIPTOR], set()
    while pending:
        message = pending.pop()
        if message.full_name not in seen:
            seen.add(message.full_name)
            names.update((f.name, f.json_name) for f in message.fields if f.name != f.json_name)
            pending.extend(f.message_type for f in message.fields if f.message_type)
    return names


_CAMEL = _snake_to_camel()
_SNAKE = frozenset(_CAMEL)


class _Invalid(Exception):
    """A value of the wrong shape; each enclosing level appends its own path segment."""

    def __init__(self, segment: str, message: str) -> None:
        super().__init__(message)
        self.path = [segment] if segment else []
        self.message = message


def decode_request(document: Any) -> ExportTraceServiceRequest:
    """The request a parsed OTLP/JSON body describes; BadRequest naming the first bad field otherwise."""
    if type(document) is not dict:
        raise BadRequest("OTLP JSON body must be an object with a resourceSpans array")
    request = ExportTraceServiceRequest()
    try:
        items = _list(_camel(document).get("resourceSpans"), "resourceSpans")
        for i, item in enumerate(items):
            _each(_resource_spans, request.resource_spans.add(), item, "resourceSpans", i)
    except _Invalid as exc:
        where = ".".join(reversed(exc.path))
        raise BadRequest(f"{where}: {exc.message}" if where else exc.message) from None
    return request


def _each(decode: Any, out: Any, item: Any, name: str, i: int) -> None:
    """decode(out, item) for item ``i`` of array ``name``, errors located there."""
    try:
        decode(out, _object(item))
    except _Invalid as exc:
        exc.path.append(f"{name}[{i}]")
        raise
    except (TypeError, ValueError) as exc:  # a string upb will not store (a lone surrogate)
        raise _unstorable(f"{name}[{i}]", item, exc) from None


def _field(decode: Any, out: Any, value: Any, name: str) -> None:
    """decode(out, value) for message field ``name``, errors located there; {} sets the field, as in protobuf."""
    try:
        obj = _object(value)
        out.SetInParent()
        decode(out, obj)
    except _Invalid as exc:
        exc.path.append(name)
        raise


def _scalars(out: Any, obj: dict[str, Any], fields: tuple[tuple[str, str, Any], ...]) -> None:
    for name, attribute, convert in fields:
        if (value := obj.get(name)) is not None:
            setattr(out, attribute, convert(value, name))


def _resource_spans(out: Any, obj: dict[str, Any]) -> None:
    if (value := obj.get("resource")) is not None:
        _field(_resource, out.resource, value, "resource")
    for i, item in enumerate(_list(obj.get("scopeSpans"), "scopeSpans")):
        _each(_scope_spans, out.scope_spans.add(), item, "scopeSpans", i)
    _scalars(out, obj, _SCHEMA_URL)


def _resource(out: Any, obj: dict[str, Any]) -> None:
    _attributes(out.attributes, obj.get("attributes"), 3, "attributes")
    _scalars(out, obj, _DROPPED)
    for i, item in enumerate(_list(obj.get("entityRefs"), "entityRefs")):
        _each(_entity_ref, out.entity_refs.add(), item, "entityRefs", i)


def _entity_ref(out: Any, obj: dict[str, Any]) -> None:
    _scalars(out, obj, _ENTITY_REF)
    for name, repeated in (("idKeys", out.id_keys), ("descriptionKeys", out.description_keys)):
        repeated.extend(_str(key, f"{name}[{j}]") for j, key in enumerate(_list(obj.get(name), name)))


def _scope_spans(out: Any, obj: dict[str, Any]) -> None:
    if (value := obj.get("scope")) is not None:
        _field(_scope, out.scope, value, "scope")
    add = out.spans.add
    for i, item in enumerate(_list(obj.get("spans"), "spans")):
        _each(_span, add(), item, "spans", i)
    _scalars(out, obj, _SCHEMA_URL)


def _scope(out: Any, obj: dict[str, Any]) -> None:
    _scalars(out, obj, _SCOPE)
    _attributes(out.attributes, obj.get("attributes"), 4, "attributes")


def _span(out: Any, obj: dict[str, Any]) -> None:
    # What _scalars(out, obj, ...) would do, written out: 0.6 us/span less, and this runs for every span.
    if (value := obj.get("traceId")) is not None:
        out.trace_id = _id(value, "traceId")
    if (value := obj.get("spanId")) is not None:
        out.span_id = _id(value, "spanId")
    if (value := obj.get("parentSpanId")) is not None:
        out.parent_span_id = _id(value, "parentSpanId")
    if (value := obj.get("traceState")) is not None:
        out.trace_state = _str(value, "traceState")
    if (value := obj.get("flags")) is not None:
        out.flags = _u32(value, "flags")
    if (value := obj.get("name")) is not None:
        out.name = _str(value, "name")
    if (value := obj.get("kind")) is not None:
        out.kind = _kind(value, "kind")
    if (value := obj.get("startTimeUnixNano")) is not None:
        out.start_time_unix_nano = _u64(value, "startTimeUnixNano")
    if (value := obj.get("endTimeUnixNano")) is not None:
        out.end_time_unix_nano = _u64(value, "endTimeUnixNano")
    _scalars(out, obj, _SPAN_DROPPED)
    if (value := obj.get("attributes")) is not None:
        _attributes(out.attributes, value, 4, "attributes")
    if (value := obj.get("events")) is not None:
        for i, item in enumerate(_list(value, "events")):
            _each(_event, out.events.add(), item, "events", i)
    if (value := obj.get("links")) is not None:
        for i, item in enumerate(_list(value, "links")):
            _each(_link, out.links.add(), item, "links", i)
    if (value := obj.get("status")) is not None:
        _field(_status, out.status, value, "status")


def _status(out: Any, obj: dict[str, Any]) -> None:
    _scalars(out, obj, _STATUS)


def _event(out: Any, obj: dict[str, Any]) -> None:
    _scalars(out, obj, _EVENT)
    _attributes(out.attributes, obj.get("attributes"), 5, "attributes")


def _link(out: Any, obj: dict[str, Any]) -> None:
    _scalars(out, obj, _LINK)
    _attributes(out.attributes, obj.get("attributes"), 5, "attributes")


# --- attributes: KeyValue and AnyValue --------------------------------------------------


def _attributes(out: Any, items: Any, depth: int, name: str) -> None:
    """KeyValues at message depth ``depth`` (the request being 0) into the repeated field ``out``."""
    items = _list(items, name)
    if items and depth > MAX_DEPTH:
        raise _Invalid(name, _TOO_DEEP)
    add, shallow = out.add, depth < MAX_DEPTH
    for i, item in enumerate(items):
        try:
            if type(item) is dict and len(item) == 2 and shallow:  # the usual {"key": ..., "value": {...}}
                key, value = item.get("key"), item.get("value")
                if type(key) is str and type(value) is dict:
                    kv = add()
                    kv.key = key
                    if len(value) == 1:  # the commonest values inline; the rest, and all errors, in _any
                        if type(text := value.get("stringValue")) is str:
                            kv.value.string_value = text
                            continue
                        if type(text := value.get("intValue")) is str and len(text) < 19 and text.isdigit() \
                                and text.isascii():
                            kv.value.int_value = int(text)
                            continue
                    _any(kv.value, value, depth + 1, "value")
                    continue
            kv, item = add(), _object(item)
            _scalars(kv, item, _KEY_VALUE)
            if (value := item.get("value")) is not None:
                _any(kv.value, value, depth + 1, "value")
        except _Invalid as exc:
            exc.path.append(f"{name}[{i}]")
            raise
        except (TypeError, ValueError) as exc:  # a string upb will not store (a lone surrogate)
            raise _unstorable(f"{name}[{i}]", item, exc) from None


def _any(out: Any, obj: Any, depth: int, segment: str) -> None:
    """One AnyValue at message depth ``depth``: one member set, any other null or unknown."""
    if type(obj) is not dict:
        raise _Invalid(segment, f"expected an object, got {_json_type(obj)}")
    if depth > MAX_DEPTH:
        raise _Invalid(segment, _TOO_DEEP)
    out.SetInParent()
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
                array, inner = out.array_value, _object(value)
                array.SetInParent()
                if depth + 1 > MAX_DEPTH:
                    raise _Invalid("", _TOO_DEEP)
                add = array.values.add
                for i, item in enumerate(_list(inner.get("values"), "values")):
                    _any(add(), item, depth + 2, f"values[{i}]")
            elif member == "kvlistValue":
                kvlist, inner = out.kvlist_value, _object(value)
                kvlist.SetInParent()
                if depth + 1 > MAX_DEPTH:
                    raise _Invalid("", _TOO_DEEP)
                _attributes(kvlist.values, inner.get("values"), depth + 2, "values")
            else:
                attribute, convert = _ANY_SCALARS[member]
                setattr(out, attribute, convert(value, ""))
        except _Invalid as exc:
            exc.path += (name, segment)
            raise
        except (TypeError, ValueError) as exc:  # a string upb will not store (a lone surrogate)
            raise _unstorable(segment, obj, exc) from None


# --- shapes and scalars -----------------------------------------------------------------


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
    return value


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


_kind = _enum(_KINDS)


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
    """The error for a value upb refused to store: a string that is not valid Unicode, found if it can be."""
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


# --- the scalar fields of each message: (JSON name, attribute, converter) ------------------


def _fields(*fields: tuple[str, Any]) -> tuple[tuple[str, str, Any], ...]:
    snake = {camel: name for name, camel in _CAMEL.items()}
    return tuple((name, snake.get(name, name), convert) for name, convert in fields)


_SCHEMA_URL = _fields(("schemaUrl", _str))
_DROPPED = _fields(("droppedAttributesCount", _u32))
_ENTITY_REF = _fields(("schemaUrl", _str), ("type", _str))
_SCOPE = _fields(("name", _str), ("version", _str), ("droppedAttributesCount", _u32))
_SPAN_DROPPED = _fields(("droppedAttributesCount", _u32), ("droppedEventsCount", _u32), ("droppedLinksCount", _u32))
_STATUS = _fields(("message", _str), ("code", _enum(_CODES)))
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


# --- from codec.py at 482590a -------------------------------------------------------------------------------

import json  # noqa: E402

import msgspec  # noqa: E402

_parse_fast = msgspec.json.Decoder().decode


def parse_json(body: bytes) -> Any:
    try:
        return _parse_fast(body)
    except (ValueError, RecursionError):
        return json.loads(body)


def decode(body: bytes) -> ExportTraceServiceRequest:
    """decode_json_messages: an OTLP/JSON body in any form the spec allows, as protobuf messages."""
    try:
        document = parse_json(body) if body.strip() else {}
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    return decode_request(document)
