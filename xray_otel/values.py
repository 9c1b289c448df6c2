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
from decimal import Decimal
from typing import Any

from .conventions import TRUNCATION_MARKER

_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")
_SURROGATE = re.compile("[\ud800-\udfff]")
# A \uD800-\uDBFF escape not followed by a \uDC00-\uDFFF one, or the reverse: jsonb refuses it.
_HIGH, _LOW = r"\\u[dD][89abAB][0-9a-fA-F]{2}", r"\\u[dD][c-fC-F][0-9a-fA-F]{2}"
_JSON_LONE_SURROGATE = re.compile(f"{_HIGH}(?!{_LOW})|(?<!{_HIGH}){_LOW}")
_LONG_EXPONENT = re.compile(r"[eE][+-]?\d{5}")
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _jsonb_number(text: str) -> float:
    """A JSON number jsonb (numeric) can hold: under 131072 digits before the point, 16383 after."""
    number = Decimal(text)
    if number.as_tuple().exponent < -16383 or (number and number.adjusted() >= 131072):
        raise ValueError(f"number {text[:40]} overflows PostgreSQL numeric")
    return float(text)


# Built once: json.loads/dumps with keyword arguments build a new coder per call (~1.3 µs each).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_CAREFUL_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_jsonb_number)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)
_SAFE_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def attributes_to_dict(key_values: Any) -> dict[str, Any]:
    """Repeated KeyValue to a dict; later duplicates of a key win, as in the OTel SDKs."""
    return {kv.key: any_value(kv.value) for kv in key_values}


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
        text = _ENCODER.encode(value)
    except (ValueError, RecursionError):
        text = _SAFE_ENCODER.encode(_json_safe(value))
    if not text.isascii() and _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    return _JSON_NUL.sub(r"\1", text) if "\\u0000" in text else text


def json_column(value: Any) -> str | None:
    """A JSON-valued attribute for a jsonb column: valid JSON text kept as is, anything else stored as a string."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            # Only a long text or a 5-digit exponent can hold a number numeric cannot; check those.
            careful = len(value) > 16383 or _LONG_EXPONENT.search(value)
            parsed = (_CAREFUL_DECODER if careful else _DECODER).decode(value)
        except (ValueError, RecursionError):
            return to_json(value)
        if ("\\u" in value and _JSON_LONE_SURROGATE.search(value)) or (
            not value.isascii() and _SURROGATE.search(value)
        ):
            return to_json(parsed)
        return _JSON_NUL.sub(r"\1", value) if "\\u0000" in value else value
    return to_json(value)



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
