"""What every query builds on: its errors, the store's reads, finding a run as the request's key may
see it, and stored rows as the API shows them."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from aiohttp import web
from multidict import MultiDict, MultiMapping

from .. import conventions as c
from ..mapping.rows import project_run_id
from ..store.reads import REFUSED_VALUE_ERRORS, Reads, Row
from ..store.store import UNAVAILABLE_ERRORS, Store
from ..web import PROJECT, json_error

STORE = web.AppKey("store", Store)


class QueryError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@web.middleware
async def query_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Query failures as JSON: client mistakes as 4xx, an unreachable database as 503."""
    try:
        return await handler(request)
    except QueryError as exc:
        return json_error(exc.status, exc.message)
    except web.HTTPException as exc:  # aiohttp's own 404/405 for unmatched routes: the same JSON shape
        if exc.status < 400:
            raise
        return json_error(exc.status, f"{exc.reason}: {request.method} {request.path}", headers={
            k: v for k, v in exc.headers.items() if k in ("Allow",)})
    except REFUSED_VALUE_ERRORS as exc:  # a value PostgreSQL cannot take (e.g. a date out of its range)
        return json_error(400, f"a parameter value is out of range: {exc}")
    except UNAVAILABLE_ERRORS as exc:  # the same list the writer treats as "retry later"
        return json_error(503, f"database unavailable: {type(exc).__name__}", headers={"Retry-After": "2"})


def reads(request: web.Request) -> Reads:
    """The store's named reads."""
    return request.app[STORE].reads


# --- scoping: what a project-bound key may see ---------------------------------------------------


def scoped_query(request: web.Request) -> MultiMapping[str]:
    """The query string, with ``service`` pinned to a project-bound key's project (403 for another)."""
    project = request.get(PROJECT)
    if project is None:
        return request.query
    if any(asked != project for asked in request.query.getall("service", [])):
        raise QueryError(403, f"this API key may only read project {project!r}")
    pinned = MultiDict(request.query)
    pinned["service"] = project
    return pinned


async def check_project(request: web.Request, run_id: uuid.UUID, service: str | None) -> bool:
    """For a project-bound key: 404, as for an unknown run, unless the run holds spans of its project.

    Returns True when the run's own fields came from another project's span (a trace that crosses
    services, or one whose run span another key wrote): the caller then hides them. Steps are
    filtered to the project's own spans by ``project_steps``.
    """
    project = request.get(PROJECT)
    if project is None or service == project:
        return False
    if not await reads(request).run_has_service(run_id, project):
        raise QueryError(404, f"run {run_id} not found")
    return True


def project_steps(request: web.Request, rows: list[Row]) -> list[Row]:
    """A project-bound key sees only the steps its own project's spans made."""
    project = request.get(PROJECT)
    return rows if project is None else [r for r in rows if r["service"] == project]


def hide_foreign_fields(run: dict[str, Any]) -> None:
    """Blank what a run's span from another project carried (its inputs, outputs and error)."""
    run["inputs"] = run["outputs"] = run["error"] = None


def shown_run_id(request: web.Request, run_id: uuid.UUID, trace_id: uuid.UUID | None) -> str:
    """The id a run is shown by. A project-bound key sees its project's runs by their trace ids (each is
    its project's part of that trace); a key bound to no project sees their own ids, which tell the parts
    of one trace apart (``trace_id`` and ``project`` say whose)."""
    return str(trace_id if trace_id is not None and request.get(PROJECT) is not None else run_id)


# --- run lookup ----------------------------------------------------------------------------------


async def find_run(request: web.Request, text: str) -> tuple[Row, bool]:
    """The stored run a path's run id names for this request's key, and whether its run fields came
    from another project's span; 404 when unknown or not this key's to see.

    With a project-bound key, the trace id names the project's own run (mapping.project_run_id)
    first; any run id names a run of that project, or one written by a key bound to no project
    that holds spans of it. A run another project wrote is a 404, as an unknown one.
    """
    run_id = parse_run_id(text)
    store = reads(request)
    project = request.get(PROJECT)
    if project is not None:
        row = await store.run(project_run_id(project, run_id))
        if row is not None:
            return row, False
    row = await store.run(run_id)
    if row is None and project is None:
        row = await _trace_part(store, run_id)
    if row is None or (project is not None and row["project"] not in (None, project)):
        raise QueryError(404, f"run {run_id} not found")
    return row, await check_project(request, run_id, row["service"])


async def _trace_part(store: Reads, trace_id: uuid.UUID) -> Row | None:
    """For a key bound to no project, a trace id that only projects wrote into: its one part, or a 404
    naming every part (choosing one would answer for a part the reader did not ask about)."""
    parts = await store.trace_parts(trace_id)
    if len(parts) == 1:
        return await store.run(parts[0]["id"])
    if parts:
        raise QueryError(404, f"trace {trace_id} is one run per project that wrote into it: " + ", ".join(
            f"{part['id']} ({part['project']})" for part in parts))
    return None


async def fetch_run(request: web.Request, text: str) -> tuple[dict[str, Any], uuid.UUID]:
    """One run as the API shows it, as this request's key may see it, and its stored id; 404 when unknown."""
    row, foreign = await find_run(request, text)
    run = run_summary(row, request)
    run["inputs"], run["outputs"] = json_value(row["inputs"]), json_value(row["outputs"])
    if foreign:
        hide_foreign_fields(run)
    return run, row["id"]


def parse_run_id(text: str) -> uuid.UUID:
    """A run id as a UUID, or the 32-hex-digit trace id OTel tools print."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise QueryError(400, f"malformed run id {text[:64]!r}: expected a UUID or a 32-hex-digit trace id") from None


# --- stored rows as the API shows them -----------------------------------------------------------


def run_summary(row: Row, request: web.Request) -> dict[str, Any]:
    return {
        "id": shown_run_id(request, row["id"], row["trace_id"]),
        "name": row["name"],
        "status": row["status"],
        "service": row["service"],
        "tags": json_value(row["tags"]) or {},
        "total_cost": float(row["total_cost"]),
        "step_count": row["step_count"],
        "started_at": row["started_at"],
        "completed_at": row["completed_at"],
        "duration_ms": duration_ms(row["started_at"], row["completed_at"]),
        "error": row["error"],
        "project": row["project"],
        "trace_id": str(row["trace_id"] or row["id"]),
    }


_SAMPLE_KEYS = (("rule", c.STEP_SAMPLE_RULE), ("rate", c.STEP_SAMPLE_RATE), ("seed", c.STEP_SAMPLE_SEED),
                ("counts", c.STEP_SAMPLE_COUNTS))


def step(row: Row, run_id: str) -> dict[str, Any]:
    attributes = json_value(row["attributes"])
    return {
        "id": row["span_id"],
        "run_id": run_id,
        "parent_id": row["parent_span_id"],
        "name": row["name"],
        "type": row["type"],
        "status": row["status"],
        "inputs": json_value(row["inputs"]),
        "outputs": json_value(row["outputs"]),
        "metadata": json_value(row["metadata"]),
        "reasoning": row["reasoning"],
        "cost": row["cost"],
        "cost_source": row["cost_source"],
        "model": row["model"],
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
        "input_count": row["input_count"],
        "output_count": row["output_count"],
        "rejections": json_value(row["rejections"]),
        "decisions": json_value(row["decisions"]),
        "started_at": row["started_at"],
        "completed_at": row["completed_at"],
        "duration_ms": duration_ms(row["started_at"], row["completed_at"]),
        "error": row["error"],
        "service": row["service"],
        "attributes": attributes,
        "sample": sample_drawn(attributes),
        "funnel": _given_name(row["funnel"]),
    }


def sample_drawn(attributes: Any) -> dict[str, Any] | None:
    """How a step's decisions sample was drawn, from its ``xray.step.sample.*`` attributes (rule, rate, seed,
    sampled and total per outcome); None when the step sent none of them."""
    if not isinstance(attributes, dict):
        return None
    drawn = {field: attributes[key] for field, key in _SAMPLE_KEYS if key in attributes}
    return drawn or None


def _given_name(text: str | None) -> str | None:
    """The funnel name the SDK gave (xray.step.funnel), None when blank."""
    return text.strip() or None if text is not None else None


def json_value(text: str | None) -> Any:
    """A stored JSON text as its value; None stays None."""
    return None if text is None else json.loads(text)


def duration_ms(start: datetime | None, end: datetime | None) -> float | None:
    return round((end - start).total_seconds() * 1000, 3) if start and end else None
