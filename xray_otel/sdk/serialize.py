"""Any Python value to a JSON string of bounded size, for span attributes. Never raises.

Dicts, lists and primitives go straight to the C JSON encoder; dataclasses, pydantic-style
models (anything with ``model_dump()``), sets, datetimes, bytes, enums, UUIDs, Decimals and
numpy-style values (``tolist()``) and plain objects (their ``__dict__``) are converted on
the way. Anything else becomes its ``str``/``repr``. Text over the cap is cut and ends with
``conventions.TRUNCATION_MARKER``; the receiver then keeps it as a string.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..conventions import TRUNCATION_MARKER

MAX_ATTRIBUTE_CHARS = 16_384
"""Cap for each JSON or text attribute (inputs, outputs, metadata, reasoning), in characters."""
MAX_DEPTH = 64
_DUMPS = {"ensure_ascii": False, "separators": (",", ":"), "allow_nan": False}


def to_json(value: Any, limit: int | None = MAX_ATTRIBUTE_CHARS) -> str:
    """``value`` as JSON text of at most ``limit`` characters (None: no cap)."""
    try:
        text = json.dumps(value, default=_convert, **_DUMPS)
    except Exception:  # non-string keys, NaN, cycles, a converter that raised...
        text = _to_json_slowly(value)
    return truncate(text, limit)


def truncate(text: str, limit: int | None = MAX_ATTRIBUTE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, the marker included, when it is longer."""
    if limit is None or len(text) <= limit:
        return text
    return text[: max(limit - len(TRUNCATION_MARKER), 0)] + TRUNCATION_MARKER


def _to_json_slowly(value: Any) -> str:
    try:
        return json.dumps(_plain(value, 0, set()), **_DUMPS)
    except Exception:
        return json.dumps(_describe(value))


def _convert(value: Any) -> Any:
    """JSON-encoder fallback: one step towards plain data; unknown types become their repr."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)):
        return value.model_dump()
    if isinstance(value, (set, frozenset)):
        return _ordered(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "base64:" + base64.b64encode(bytes(value[:MAX_ATTRIBUTE_CHARS])).decode("ascii")
    if isinstance(value, enum.Enum):
        return value.value
    if callable(getattr(value, "tolist", None)):
        return value.tolist()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    if _is_plain_object(value):
        return vars(value)
    return _describe(value)  # UUID, Decimal, Path and the rest: their str/repr


def _is_plain_object(value: Any) -> bool:
    """An instance of an ordinary class with no repr of its own: its fields say more than its repr."""
    return hasattr(value, "__dict__") and not callable(value) and type(value).__repr__ is object.__repr__


def _ordered(items: set | frozenset) -> list:
    try:
        return sorted(items)
    except TypeError:  # mixed types: keep them, unordered
        return list(items)


def _describe(value: Any) -> str:
    try:
        return truncate(str(value))  # str() falls back to repr()
    except Exception:
        return f"<unprintable {type(value).__qualname__}>"


def _plain(value: Any, depth: int, seen: set[int]) -> Any:
    """Recursive conversion for what the fast path refused: str keys, finite floats, no cycles."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth >= MAX_DEPTH:
        return "…[nested too deep]"
    if id(value) in seen:
        return "…[circular reference]"
    seen.add(id(value))
    try:
        if isinstance(value, dict):
            return {_key(k): _plain(v, depth + 1, seen) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_plain(v, depth + 1, seen) for v in value]
        try:
            converted = _convert(value)
        except Exception:  # e.g. a model_dump() that raises: describe this value, keep the rest
            return _describe(value)
        return _plain(converted, depth + 1, seen)
    finally:
        seen.discard(id(value))


def _key(key: Any) -> str:
    return key if isinstance(key, str) else _describe(key)
