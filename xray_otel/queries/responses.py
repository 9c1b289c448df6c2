"""JSON responses for the REST API: one encoder, one error shape."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

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


def json_error(status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    """``{"error": {"status": 404, "message": "..."}}``: the one error shape of the REST API."""
    return web.json_response({"error": {"status": status, "message": message}}, status=status, headers=headers)
