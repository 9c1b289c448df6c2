"""Query parameters declared once: parsed from the request and described in the OpenAPI document.

Each endpoint lists its ``Param``s; ``parse`` turns the query string into typed values or raises a
400 naming the parameter, and ``openapi.py`` renders the same list. An unknown parameter is a 400
too: a misspelt filter silently ignored would answer a different question than the one asked.
"""

from __future__ import annotations

import base64
import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from multidict import MultiMapping

from .common import QueryError

MAX_TEXT = 512  # characters: longer than any stored name (mapping caps names at 512)
_RELATIVE = re.compile(r"^(\d{1,6})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


class BadParameter(QueryError):
    """A query parameter that cannot be used: always a 400."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message)


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # string | integer | number | boolean | datetime | tag | cursor
    description: str
    enum: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None  # integers above it are capped, not refused (as /runs limit always was)
    repeat: bool = False
    required: bool = False
    default: Any = None


def limit_param(default: int = 100, maximum: int = 1000) -> Param:
    return Param("limit", "integer", f"page size (default {default}; larger values are capped at {maximum})",
                 minimum=1, maximum=maximum, default=default)


CURSOR = Param("cursor", "cursor", "the `X-Next-Cursor` value of the previous page")
SINCE = Param("since", "datetime", "from this time on (ISO-8601, or relative: `30m`, `24h`, `7d`)")
UNTIL = Param("until", "datetime", "before this time (ISO-8601, or relative: `30m`, `24h`, `7d`)")
TAG = Param("tag", "tag", "run tag `key:value`; repeat to require several", repeat=True)


def parse(query: MultiMapping[str], params: tuple[Param, ...]) -> dict[str, Any]:
    """Typed values for ``params`` (absent → default, repeatable → list); BadParameter otherwise."""
    known = {p.name: p for p in params}
    for name in query:
        if name not in known:
            raise BadParameter(f"unknown parameter {_show(name)}; this endpoint takes: {', '.join(known) or 'none'}")
    values: dict[str, Any] = {}
    for p in params:
        given = query.getall(p.name, [])
        if not given:
            if p.required:
                raise BadParameter(f"{p.name} is required")
            values[p.name] = [] if p.repeat else p.default
        elif p.repeat:
            values[p.name] = [convert(p, text) for text in given]
        elif len(given) > 1:
            raise BadParameter(f"{p.name} given {len(given)} times; it takes one value")
        else:
            values[p.name] = convert(p, given[0])
    return values


def convert(p: Param, text: str) -> Any:
    if p.type == "cursor":
        return text  # decode_cursor checks all of it, and says the one thing to do about a bad one
    text = _text(p.name, text)
    if p.enum is not None:
        if text.lower() not in p.enum:
            raise BadParameter(f"{p.name} must be one of {', '.join(p.enum)}, got {_show(text)}")
        return text.lower()
    if p.type == "integer":
        try:
            value = int(text)
        except ValueError:
            raise BadParameter(f"{p.name} must be an integer, got {_show(text)}") from None
        if p.minimum is not None and value < p.minimum:
            raise BadParameter(f"{p.name} must be at least {p.minimum:g}")
        if value > 2**31 - 1:  # PostgreSQL integer columns; larger filters cannot match anything anyway
            value = 2**31 - 1
        return min(value, int(p.maximum)) if p.maximum is not None else value
    if p.type == "number":
        try:
            value = float(text)
        except ValueError:
            raise BadParameter(f"{p.name} must be a number, got {_show(text)}") from None
        if not math.isfinite(value):
            raise BadParameter(f"{p.name} must be a finite number")
        if (p.minimum is not None and value < p.minimum) or (p.maximum is not None and value > p.maximum):
            raise BadParameter(f"{p.name} must be between {p.minimum:g} and {p.maximum:g}")
        return value
    if p.type == "boolean":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise BadParameter(f"{p.name} must be true or false, got {_show(text)}")
    if p.type == "datetime":
        return parse_time(p.name, text)
    if p.type == "tag":
        key, sep, value = text.partition(":")
        if not sep or not key:
            raise BadParameter(f"{p.name} must be key:value, got {_show(text)}")
        return key, value
    return text


def parse_time(name: str, text: str, *, now: datetime | None = None) -> datetime:
    """ISO-8601 (naive means UTC), or ``<n>s|m|h|d|w`` meaning that long ago; as an aware UTC time."""
    match = _RELATIVE.match(text)
    if match:
        try:
            return (now or datetime.now(timezone.utc)) - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        except OverflowError:
            raise BadParameter(f"{name} is out of range") from None
    try:
        value = datetime.fromisoformat(text.replace(" ", "+") if text.count(" ") == 1 else text)
    except ValueError:
        raise BadParameter(f"{name} must be an ISO-8601 time or a relative time like 24h, got {_show(text)}") from None
    if value.year < 2 or value.year > 9998:
        raise BadParameter(f"{name} is out of range")
    return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)  # shown in UTC


def encode_cursor(sort: str, key: list[Any]) -> str:
    """An opaque cursor: the sort it belongs to and the last row's sort key."""
    plain = [v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, uuid.UUID) else v for v in key]
    return _encode_plain([sort, plain])


def _encode_plain(document: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


_CURSOR_TEXT = re.compile(r"[A-Za-z0-9_-]+")  # the urlsafe base64 alphabet, unpadded: what encode_cursor writes
_SORT_NAME = re.compile(r"-?[a-z_]{1,32}")
MALFORMED_CURSOR = ("malformed cursor: not one this server issued; start again without it, "
                    "then pass each page's X-Next-Cursor as it is")


def decode_cursor(text: str | None, sort: str, types: tuple[type, ...]) -> list[Any] | None:
    """The key encoded by ``encode_cursor``, each value converted to ``types``; None without a cursor.

    A cursor is client input like any other, so anything but exactly what ``encode_cursor`` writes is a
    400: the same base64 and JSON text byte for byte, ``[sort, key]`` with one value per type, each of
    that type's exact JSON type, in range (finite numbers, 64-bit integers, canonical UUIDs, UTC times
    as ``isoformat`` writes them, text PostgreSQL takes). Nothing of a forged cursor reaches SQL.
    """
    if not text:
        return None
    try:
        if len(text) > 4 * MAX_TEXT or not _CURSOR_TEXT.fullmatch(text):
            raise ValueError
        document = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), parse_constant=_no_constant)
        if not (isinstance(document, list) and len(document) == 2 and isinstance(document[0], str)
                and isinstance(document[1], list)):
            raise ValueError
        if _encode_plain(document) != text:  # not as encode_cursor writes it: altered, or made by hand
            raise ValueError
        got_sort, plain = document
    except (ValueError, TypeError, RecursionError, OverflowError):  # UnicodeDecodeError and binascii.Error too
        raise BadParameter(MALFORMED_CURSOR) from None
    if got_sort != sort:
        if _SORT_NAME.fullmatch(got_sort):
            raise BadParameter(f"cursor belongs to sort={got_sort}, not sort={sort}: start again without it")
        raise BadParameter(MALFORMED_CURSOR)
    if len(plain) != len(types):
        raise BadParameter(MALFORMED_CURSOR)
    try:
        return [_cursor_value(t, v) for t, v in zip(types, plain)]
    except (ValueError, TypeError, OverflowError):
        raise BadParameter(MALFORMED_CURSOR) from None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # json.loads would otherwise take NaN, Infinity, -Infinity


def _cursor_value(kind: type, value: Any) -> Any:
    """``value`` as ``encode_cursor`` wrote a value of ``kind``, converted back; ValueError otherwise."""
    if kind is float:  # keys from double precision columns: json.dumps writes them with a . or an e
        if not isinstance(value, float) or not math.isfinite(value):  # 1e999 parses as inf
            raise ValueError
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:  # bigint
            raise ValueError
        return value
    if not isinstance(value, str):
        raise ValueError
    if kind is datetime:
        parsed = datetime.fromisoformat(value)  # keys come from timestamptz columns: UTC, as the store gives them
        if parsed.utcoffset() != timedelta(0) or parsed.isoformat() != value:
            raise ValueError
        return parsed
    if kind is uuid.UUID:
        parsed_id = uuid.UUID(value)
        if str(parsed_id) != value:
            raise ValueError
        return parsed_id
    if kind is not str or "\x00" in value or len(value) > 4 * MAX_TEXT:
        raise ValueError
    value.encode("utf-8")  # a lone surrogate (JSON allows \ud800) is UnicodeEncodeError, a ValueError
    return value


def _text(name: str, text: str) -> str:
    """Text PostgreSQL can take: no NUL, valid UTF-8, not absurdly long."""
    if "\x00" in text:
        raise BadParameter(f"{name} must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadParameter(f"{name} is not valid UTF-8") from None
    if len(text) > 4 * MAX_TEXT:
        raise BadParameter(f"{name} is longer than {4 * MAX_TEXT} characters")
    return text


def _show(text: str) -> str:
    return repr(text[:64])


def link_headers(request_url: Any, cursor: str) -> Mapping[str, str]:
    """The next page, as `/runs` has always given it: a Link header and X-Next-Cursor."""
    return {"Link": f'<{request_url.update_query(cursor=cursor)}>; rel="next"', "X-Next-Cursor": cursor}
