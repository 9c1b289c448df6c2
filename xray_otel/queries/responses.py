"""JSON responses for the REST API: one encoder, one error shape."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timezone
from typing import Any, Iterable

from aiohttp import web


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


async def json_big(data: Any, *, headers: dict[str, str] | None = None) -> web.Response:
    """json_ok for an answer that may run to megabytes: encoded in a thread, so the event loop (and
    /health) keeps answering meanwhile."""
    body = await asyncio.to_thread(lambda: dumps(data).encode())
    return web.Response(body=body, headers=headers, content_type="application/json")


async def json_stream(request: web.Request, items: Iterable[Any], headers: dict[str, str] | None = None,
                      chunk: int = 1 << 16) -> web.StreamResponse:
    """A JSON array written as it is encoded, about ``chunk`` bytes at a time: memory stays at one chunk
    and one item, a slow reader holds back only its own response, and the loop runs between chunks."""
    response = web.StreamResponse(headers=headers)
    response.content_type = "application/json"
    await response.prepare(request)
    buffer = bytearray(b"[")
    for index, item in enumerate(items):
        if index:
            buffer += b","
        buffer += dumps(item).encode()
        if len(buffer) >= chunk:
            await response.write(bytes(buffer))
            buffer.clear()
            await asyncio.sleep(0)  # write() yields only when the socket is backed up
    buffer += b"]"
    await response.write(bytes(buffer))
    await response.write_eof()
    return response


def json_error(status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    """``{"error": {"status": 404, "message": "..."}}``: the one error shape of the REST API."""
    return web.json_response({"error": {"status": status, "message": message}}, status=status, headers=headers)
