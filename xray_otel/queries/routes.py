"""REST queries: /runs, /runs/{id}, /runs/{id}/steps, /analyze/{id}."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web

from ..store.store import Store
from . import sql
from .analysis import analyze, tree_order
from .responses import json_error, json_ok

STORE = web.AppKey("store", Store)
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
_STATUSES = ("RUNNING", "COMPLETED", "FAILED")


class QueryError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def add_routes(app: web.Application) -> None:
    app.router.add_get("/runs", list_runs)
    app.router.add_get("/runs/{run_id}", get_run)
    app.router.add_get("/runs/{run_id}/steps", get_steps)
    app.router.add_get("/analyze/{run_id}", get_analysis)


@web.middleware
async def query_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Query failures as JSON: client mistakes as 4xx, an unreachable database as 503."""
    try:
        return await handler(request)
    except QueryError as exc:
        return json_error(exc.status, exc.message)
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, TimeoutError) as exc:
        return json_error(503, f"database unavailable: {type(exc).__name__}", headers={"Retry-After": "2"})


async def list_runs(request: web.Request) -> web.Response:
    """Newest first. The body is a JSON array (as the original X-Ray API); the next page is in Link."""
    q = request.query
    limit = _limit(q.get("limit"))
    status = q.get("status")
    if status is not None and status.upper() not in _STATUSES:
        raise QueryError(400, f"status must be one of {', '.join(_STATUSES)}")
    after_time, after_id = _decode_cursor(q.get("cursor"))
    rows = await request.app[STORE].pool.fetch(
        sql.LIST_RUNS, q.get("name"), status.upper() if status else None, after_time, after_id, limit
    )
    runs = [run_summary(r) for r in rows]
    headers = {}
    if len(rows) == limit:
        cursor = _encode_cursor(rows[-1]["started_at"], rows[-1]["id"])
        next_url = request.rel_url.update_query(cursor=cursor)
        headers = {"Link": f'<{next_url}>; rel="next"', "X-Next-Cursor": cursor}
    return json_ok(runs, headers=headers)


async def get_run(request: web.Request) -> web.Response:
    return json_ok(await _fetch_run(request))


async def get_steps(request: web.Request) -> web.Response:
    await _fetch_run(request)  # 404 for an unknown run rather than an empty list
    return json_ok(await _fetch_steps(request))


async def get_analysis(request: web.Request) -> web.Response:
    run = await _fetch_run(request)
    return json_ok(analyze(run, await _fetch_steps(request)))


async def _fetch_run(request: web.Request) -> dict[str, Any]:
    run_id = _run_id(request.match_info["run_id"])
    row = await request.app[STORE].pool.fetchrow(sql.GET_RUN, run_id)
    if row is None:
        raise QueryError(404, f"run {run_id} not found")
    run = run_summary(row)
    run["inputs"], run["outputs"] = _json(row["inputs"]), _json(row["outputs"])
    return run


async def _fetch_steps(request: web.Request) -> list[dict[str, Any]]:
    run_id = _run_id(request.match_info["run_id"])
    rows = await request.app[STORE].pool.fetch(sql.RUN_STEPS, run_id)
    return tree_order([_step(r, run_id) for r in rows])


def run_summary(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "status": row["status"],
        "service": row["service"],
        "tags": _json(row["tags"]) or {},
        "total_cost": float(row["total_cost"]),
        "step_count": row["step_count"],
        "started_at": row["started_at"],
        "completed_at": row["completed_at"],
        "duration_ms": _duration_ms(row["started_at"], row["completed_at"]),
        "error": row["error"],
    }


def _step(row: asyncpg.Record, run_id: uuid.UUID) -> dict[str, Any]:
    return {
        "id": row["span_id"],
        "run_id": str(run_id),
        "parent_id": row["parent_span_id"],
        "name": row["name"],
        "type": row["type"],
        "status": row["status"],
        "inputs": _json(row["inputs"]),
        "outputs": _json(row["outputs"]),
        "metadata": _json(row["metadata"]),
        "reasoning": row["reasoning"],
        "cost": row["cost"],
        "cost_source": row["cost_source"],
        "model": row["model"],
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
        "input_count": row["input_count"],
        "output_count": row["output_count"],
        "rejections": _json(row["rejections"]),
        "decisions": _json(row["decisions"]),
        "started_at": row["started_at"],
        "completed_at": row["completed_at"],
        "duration_ms": _duration_ms(row["started_at"], row["completed_at"]),
        "error": row["error"],
        "service": row["service"],
        "attributes": _json(row["attributes"]),
    }


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _duration_ms(start: datetime | None, end: datetime | None) -> float | None:
    return round((end - start).total_seconds() * 1000, 3) if start and end else None


def _run_id(text: str) -> uuid.UUID:
    """A run id as a UUID, or the 32-hex-digit trace id OTel tools print."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise QueryError(400, f"malformed run id {text[:64]!r}: expected a UUID or a 32-hex-digit trace id") from None


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    try:
        value = int(text)
    except ValueError:
        raise QueryError(400, f"limit must be an integer, got {text[:32]!r}") from None
    if value < 1:
        raise QueryError(400, "limit must be at least 1")
    return min(value, MAX_LIMIT)


def _encode_cursor(started_at: datetime, run_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{started_at.isoformat()}|{run_id}".encode()).decode()


def _decode_cursor(text: str | None) -> tuple[datetime | None, uuid.UUID | None]:
    if not text:
        return None, None
    try:
        started, run_id = base64.urlsafe_b64decode(text.encode()).decode().split("|")
        return datetime.fromisoformat(started), uuid.UUID(run_id)
    except (ValueError, UnicodeDecodeError):
        raise QueryError(400, "malformed cursor: pass the X-Next-Cursor value of the previous page") from None
