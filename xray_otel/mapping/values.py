"""OTLP attribute values to Python, and Python to text PostgreSQL will accept.

PostgreSQL refuses NUL characters in text and jsonb, lone UTF-16 surrogates (raw,
or as ``\ud800`` escapes in jsonb), and NaN/Infinity in jsonb; a span carrying one
must still be stored, so values are cleaned here rather than
failing the whole request at COPY time.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal, InvalidOperation
from json.encoder import c_make_encoder, encode_basestring
from json.scanner import c_make_scanner
from typing import Any

import msgspec

from ..conventions import TRUNCATION_MARKER

_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")
_SURROGATE = re.compile("[\ud800-\udfff]")
# A \uD800-\uDBFF escape not followed by a \uDC00-\uDFFF one, or the reverse: jsonb refuses it.
_HIGH, _LOW = r"\\u[dD][89abAB][0-9a-fA-F]{2}", r"\\u[dD][c-fC-F][0-9a-fA-F]{2}"
_JSON_LONE_SURROGATE = re.compile(f"{_HIGH}(?!{_LOW})|(?<!{_HIGH}){_LOW}")
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}
_JSON_SPACE = " \t\n\r"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _jsonb_number(text: str) -> float:
    """A JSON number jsonb (numeric) can hold: under 131072 digits before the point, 16383 after."""
    try:
        number = Decimal(text)
    except InvalidOperation:  # an exponent past even decimal's range
        raise ValueError(f"number {text[:40]} overflows PostgreSQL numeric") from None
    if number.as_tuple().exponent < -16383 or (number and number.adjusted() >= 131072):
        raise ValueError(f"number {text[:40]} overflows PostgreSQL numeric")
    return float(text)


def _jsonb_float(text: str) -> float:
    """parse_float hook: only a literal with an exponent, or one over 16383 characters, can overflow numeric
    (an integer literal that long is refused by int() first), so only those pay for the exact check."""
    if len(text) > 6 and ("e" in text or "E" in text or len(text) > 16383):
        return _jsonb_number(text)
    return float(text)


# Built once: json.loads/dumps with keyword arguments build a new coder per call, and
# JSONDecoder.decode / JSONEncoder.encode wrap the C scanner and encoder in a layer of Python per value.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_jsonb_float)
_SCAN = c_make_scanner(_DECODER)
# json_column's first try: msgspec validates a value in a third of the scanner's time, with the same float
# check. Whatever it refuses goes to the scanner, whose verdict stands.
_FAST_DECODE = msgspec.json.Decoder(float_hook=_jsonb_float).decode
# msgspec nests a few levels deeper than the scanner before RecursionError; text this short cannot get close.
_SHALLOW = 1600
# Compact, non-ASCII kept, NaN refused, default=str; no cycle check (a cycle ends in RecursionError, handled).
_ENCODE = c_make_encoder(None, str, encode_basestring, None, ":", ",", False, False, False)
_SAFE_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def attributes_to_dict(key_values: Any) -> dict[str, Any]:
    """Repeated KeyValue to a dict; later duplicates of a key win, as in the OTel SDKs."""
    return {kv.key: kv.value.string_value or any_value(kv.value) for kv in key_values}  # most values are text


def split_attributes(key_values: Any, limit: int, apart: frozenset[str]) -> tuple[dict[str, Any], dict[str, Any], int]:
    """A span's attributes as plain values, string values over ``limit`` characters cut (with the marker), and
    how many were cut; the values of ``apart`` keys are left as sent (AnyValues), uncapped, in a dict of their
    own, for a reader with limits of its own (outcomes.py): (attributes, apart, cut)."""
    attrs: dict[str, Any] = {}
    kept: dict[str, Any] = {}
    suspect = False
    for kv in key_values:
        value = kv.value
        if kv.key in apart:
            kept[kv.key] = value
            continue
        text = value.string_value
        if not text:
            text = any_value(value)
            suspect = suspect or type(text) is list or (type(text) is str and len(text) > limit)  # bytes: hex
        elif len(text) > limit:
            suspect = True
        attrs[kv.key] = text
    return attrs, kept, cap_strings(attrs, limit) if suspect else 0


def str_array(value: Any) -> Any:
    """any_value of a value expected to be an array of strings: read item by item only when it is not one
    (an OTLP item that is no string reads as "" in protobuf, None in the OTLP/JSON structs)."""
    if value.WhichOneof("value") == "array_value":
        texts = [v.string_value for v in value.array_value.values]
        if "" not in texts and None not in texts:
            return texts
    return any_value(value)


def int_array(value: Any) -> Any:
    """any_value of a value expected to be an array of small ints, faster when it is one: a protobuf array of
    ints from 0 to 127 serializes as 4 bytes an item (0a 02 18 nn), read at C speed; the OTLP/JSON structs hold
    None for an item that is no int."""
    if value.WhichOneof("value") == "array_value":
        array = value.array_value
        n = len(array.values)
        serialize = getattr(array, "SerializeToString", None)
        if serialize is not None:
            data = serialize()
            if len(data) == 4 * n and data[2::4] == b"\x18" * n and data[0::4] == b"\n" * n and \
                    data[1::4] == b"\x02" * n:
                return list(data[3::4])
        else:
            ints = [v.int_value for v in array.values]
            if None not in ints and all(type(i) is int for i in ints):
                return ints
    return any_value(value)


def any_value(value: Any) -> Any:
    """One OTLP AnyValue to a JSON-safe Python value (bytes become hex, NaN a string)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        number = value.double_value
        return number if math.isfinite(number) else _NON_FINITE.get(number, "NaN")
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_to_dict(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return None


def cap_strings(attrs: dict[str, Any], limit: int) -> int:
    """Cut string values (top level, or in a top-level list) longer than ``limit``; returns how many."""
    cut = 0
    for key, value in attrs.items():
        if isinstance(value, str):
            if len(value) > limit:
                attrs[key] = value[:limit] + TRUNCATION_MARKER
                cut += 1
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, str) and len(item) > limit:
                    value[i] = item[:limit] + TRUNCATION_MARKER
                    cut += 1
    return cut


def clean_text(text: str) -> str:
    """Drop NUL characters and replace lone surrogates (U+FFFD), which PostgreSQL text cannot hold."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii() and _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    return text


def to_json(value: Any) -> str:
    """Encode for a jsonb column; values that JSON cannot express become strings."""
    if not value and isinstance(value, dict):
        return "{}"
    try:
        text = "".join(_ENCODE(value, 0))
    except (ValueError, RecursionError):
        text = _SAFE_ENCODER.encode(_json_safe(value))
    if not text.isascii() and _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    return _JSON_NUL.sub(r"\1", text) if "\\u0000" in text else text


def json_column(value: Any) -> str | None:
    """A JSON-valued attribute for a jsonb column: valid JSON text kept as is, anything else stored as a string."""
    if value is None:
        return None
    if not isinstance(value, str):
        return to_json(value)
    try:
        parsed = _decode(value)
    except (ValueError, RecursionError):
        return to_json(value)
    if ("\\u" in value and _JSON_LONE_SURROGATE.search(value)) or (not value.isascii() and _SURROGATE.search(value)):
        return to_json(parsed)
    return _JSON_NUL.sub(r"\1", value) if "\\u0000" in value else value


def _decode(text: str) -> Any:
    """json.loads with our hooks (a ValueError when not one JSON value): msgspec when it accepts the text,
    else the scanner's verdict."""
    if len(text) < _SHALLOW or text.count("[") + text.count("{") < _SHALLOW // 2:
        try:
            return _FAST_DECODE(text)
        except (ValueError, RecursionError):  # msgspec.DecodeError is a ValueError
            pass
    return _scan(text)


def _scan(text: str) -> Any:
    start = len(text) - len(text.lstrip(_JSON_SPACE)) if text[:1] in _JSON_SPACE else 0
    try:
        value, end = _SCAN(text, start)
    except StopIteration:
        raise ValueError("no JSON value") from None
    if end != len(text) and text[end:].strip(_JSON_SPACE):
        raise ValueError("extra data after the JSON value")
    return value


def _json_safe(value: Any, depth: int = 0) -> Any:
    if depth > 200:
        return "…[nested too deep]"
    if isinstance(value, float) and not math.isfinite(value):
        return _NON_FINITE.get(value, "NaN")
    if isinstance(value, dict):
        return {str(k): _json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, depth + 1) for v in value]
    return value


MAX_NAME = 512  # characters of a name, a type or a service.name: they are indexed


def cap_name(text: str) -> str:
    """A run or step name, type or service name, capped: they are indexed, and a btree entry must stay
    under ~2.7 kB."""
    text = clean_text(text)
    return text if len(text) <= MAX_NAME else text[:MAX_NAME] + TRUNCATION_MARKER
