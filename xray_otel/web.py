"""The neutral HTTP edge the receiver and the queries share: the request's project, and JSON answers
(one encoder, one error shape, streaming for large ones)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timezone
from typing import Any, Iterable

import msgspec
from aiohttp import web


PROJECT = web.RequestKey("project", str)
"""Set by the API-key middleware: the project a bound key limits this request to (absent or None: all)."""
_CHUNK = 1 << 16  # bytes a streamed answer is written in


def iso(value: datetime | None) -> str | None:
    """ISO-8601 in UTC with a Z, as every timestamp in the API is shown."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def dumps(data: Any) -> str:
    return json.dumps(data, default=_default, ensure_ascii=False)


def json_ok(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=dumps)


_LARGE = msgspec.json.Encoder(decimal_format="number")  # a Decimal written as a number, not a string


def json_large_ok(data: Any, *, headers: dict[str, str] | None = None) -> web.Response:
    """json_ok for answers of megabytes (a month of series points, a candidate's history over 10,000 runs):
    msgspec encodes them in a ninth of json's time. Its datetimes must be aware UTC, as the store gives
    them (msgspec writes another offset as it is, and a naive time without one, where iso() turns
    both to Z); a float that is not finite becomes null (json would write NaN, which is not JSON); a
    type msgspec does not know goes through json as in any other answer."""
    try:
        body = _LARGE.encode(data)
    except TypeError:
        body = dumps(data).encode()
    return web.Response(body=body, headers=headers, content_type="application/json")


async def json_stream(request: web.Request, items: Iterable[Any], headers: dict[str, str] | None = None,
                      *, around: tuple[str, str] = ("[", "]")) -> web.StreamResponse:
    """A JSON array written as it is encoded, about 64 kB at a time: memory stays at one chunk and one
    item, a slow reader holds back only its own response, and the loop runs between chunks (one
    json.dumps of a whole large answer holds the GIL, even in a thread). ``around`` is the JSON text
    before and after the array's items, for an array inside an object."""
    response = web.StreamResponse(headers=headers)
    response.content_type = "application/json"
    await response.prepare(request)
    buffer = bytearray(around[0].encode())
    for index, item in enumerate(items):
        if index:
            buffer += b","
        buffer += dumps(item).encode()
        if len(buffer) >= _CHUNK:
            await response.write(bytes(buffer))
            buffer.clear()
            await asyncio.sleep(0)  # write() yields only when the socket is backed up
    buffer += around[1].encode()
    await response.write(bytes(buffer))
    await response.write_eof()
    return response


async def json_stream_field(request: web.Request, data: dict[str, Any], field: str) -> web.StreamResponse:
    """``data`` as JSON, its list ``field`` streamed item by item (json_stream), keys in their order."""
    keys = list(data)
    at = keys.index(field)
    before = "{" + "".join(f"{dumps(k)}:{dumps(data[k])}," for k in keys[:at]) + f"{dumps(field)}:["
    after = "]" + "".join(f",{dumps(k)}:{dumps(data[k])}" for k in keys[at + 1:]) + "}"
    return await json_stream(request, data[field], around=(before, after))


def json_error(status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    """``{"error": {"status": 404, "message": "..."}}``: the one error shape of the REST API."""
    return web.json_response({"error": {"status": status, "message": message}}, status=status, headers=headers)
