"""Reads built from a request's filters: plain values in, SQL text and its parameters out.

Each filter adds a fixed clause; values are numbered parameters and never enter the SQL text.
Sorts are keyset pages: a sort names an expression (spelt as its index is, read_sql.py), and the
row after which a page starts is given as that expression's value and the row's id. Every row
carries its sort expression's value as ``sort_key``, for the next page's cursor.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import read_sql as sql


@dataclass(frozen=True)
class Page:
    """``sort`` is a sort name, ``-`` first for descending; ``after`` the previous page's last key."""
    sort: str
    after: list[Any] | None
    limit: int


@dataclass(frozen=True)
class RunFilters:
    name: str | None = None
    name_contains: str | None = None  # case-insensitive
    status: str | None = None  # as stored: RUNNING, COMPLETED, FAILED
    service: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    min_cost: float | None = None
    max_cost: float | None = None
    has_error: bool | None = None


@dataclass(frozen=True)
class StepFilters:
    type: str | None = None
    name: str | None = None
    run_name: str | None = None
    service: str | None = None
    min_drop_rate: float | None = None
    max_drop_rate: float | None = None
    min_input_count: int | None = None
    reason: str | None = None  # a rejection reason the step counted at least once
    status: str | None = None  # as stored: COMPLETED, FAILED
    has_error: bool | None = None
    since: datetime | None = None
    until: datetime | None = None
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DecisionFilters:
    service: str | None = None  # only the decisions of this service's steps
    step: str | None = None  # a step name or span id
    accepted: bool | None = None
    reason: str | None = None
    candidate: str | None = None
    prefix: str | None = None  # candidate ids that start with it
    span_ids: tuple[str, ...] | None = None  # only these steps' decisions


# sort name → (SQL expression, Python type of its value)
_RUN_SORTS: dict[str, tuple[str, type]] = {
    "started_at": ("r.started_at", datetime),
    "cost": (sql.RUN_COST, float),
    "duration": (sql.RUN_DURATION_MS, float),
    "step_count": ("r.step_count", int),
}
# A sort by a value a step may lack (drop rate, duration, input count) lists only the steps that have it.
_STEP_SORTS: dict[str, tuple[str, type]] = {
    "started_at": (sql.STEP_TIME, datetime),
    "drop_rate": (sql.DROP_RATE, float),
    "cost": ("s.cost", float),
    "duration": (sql.STEP_DURATION_MS, float),
    "input_count": ("s.input_count", int),
}
_STEP_NEEDS = {"drop_rate": sql.HAS_DROP_RATE, "duration": sql.STEP_FINISHED,
               "input_count": "s.input_count IS NOT NULL"}
# Per sort name, the Python types of a page's key (a cursor's values): the sort's value, then the row's
# id (a step's: its run id and span id).
RUN_SORTS: dict[str, tuple[type, ...]] = {name: (kind, uuid.UUID) for name, (_, kind) in _RUN_SORTS.items()}
STEP_SORTS: dict[str, tuple[type, ...]] = {name: (kind, uuid.UUID, str) for name, (_, kind) in _STEP_SORTS.items()}
# Decisions come in one order, step time then step and place in the step.
DECISION_KEY: tuple[type, ...] = (datetime, str, int)


class Where:
    """WHERE clauses with their values as numbered parameters: values never enter the SQL text."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.args: list[object] = []

    def arg(self, value: object) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, clause: str, *values: object) -> None:
        """``clause`` with ``{}`` for each value, e.g. ``add("r.name = {}", name)``."""
        self.clauses.append(clause.format(*(self.arg(v) for v in values)))

    def sql(self) -> str:
        return " AND ".join(self.clauses) or "TRUE"


def like_pattern(text: str) -> str:
    """``%text%`` for ILIKE with the user's own % _ and \\ matched literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def tag_clause(where: Where, key: str, value: str) -> None:
    """Run tag ``key`` equals ``value``: as sent (a string), or as the number/boolean it spells,
    since tags set from code keep their JSON type. Containment, so the GIN index serves it."""
    alternatives: list[object] = [value]
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser: a plain string
        parsed = None
    if isinstance(parsed, bool) or (isinstance(parsed, (int, float)) and math.isfinite(parsed)):
        alternatives.append(parsed)
    where.add("(" + " OR ".join(["r.tags @> {}::jsonb"] * len(alternatives)) + ")",
              *(json.dumps({key: v}) for v in alternatives))


def list_runs(f: RunFilters, page: Page) -> tuple[str, list[Any]]:
    """GET /runs: the statement and its arguments."""
    where = Where()
    if f.name is not None:
        where.add("r.name = {}", f.name)
    if f.name_contains:
        where.add("r.name ILIKE {}", like_pattern(f.name_contains))
    if f.status:
        where.add("r.status = {}", f.status)
    if f.service is not None:
        where.add("r.service = {}", f.service)
    for key, value in f.tags:
        tag_clause(where, key, value)
    if f.since:
        where.add("r.started_at >= {}", f.since)
    if f.until:
        where.add("r.started_at < {}", f.until)
    if f.min_cost is not None:
        where.add(f"{sql.RUN_COST} >= {{}}", f.min_cost)
    if f.max_cost is not None:
        where.add(f"{sql.RUN_COST} <= {{}}", f.max_cost)
    if f.has_error is not None:
        where.add(sql.RUN_HAS_ERROR if f.has_error else f"NOT {sql.RUN_HAS_ERROR}")

    expr, _ = _RUN_SORTS[page.sort.lstrip("-")]
    direction, compare = ("DESC", "<") if page.sort.startswith("-") else ("ASC", ">")
    if page.sort.lstrip("-") == "duration":
        where.add("r.completed_at IS NOT NULL")
    if page.after:
        where.add(f"({expr}, r.id) {compare} ({{}}, {{}})", *page.after)
    statement = sql.LIST_RUNS_FILTERED.format(
        key=expr, where=where.sql(), order=f"{expr} {direction}, r.id {direction}", limit=where.arg(page.limit))
    return statement, where.args


def search_steps(f: StepFilters, page: Page) -> tuple[str, list[Any]]:
    """GET /steps: the statement and its arguments (bench/ EXPLAINs it)."""
    where = Where()
    for column, value in (("type", f.type), ("name", f.name), ("service", f.service)):
        if value is not None:
            where.add(f"s.{column} = {{}}", value)
    if f.run_name is not None:
        where.add("r.name = {}", f.run_name)
    if f.min_drop_rate is not None or f.max_drop_rate is not None:
        where.add(sql.HAS_DROP_RATE)
    if f.min_drop_rate is not None:
        where.add(f"{sql.DROP_RATE} >= {{}}", f.min_drop_rate)
    if f.max_drop_rate is not None:
        where.add(f"{sql.DROP_RATE} <= {{}}", f.max_drop_rate)
    if f.min_input_count is not None:
        where.add("s.input_count >= {}", f.min_input_count)
    if f.reason is not None:  # a count that is a positive number; a reason counted 0 or "lots" is no match
        where.add("jsonb_typeof(s.rejections -> {}) = 'number' AND (s.rejections ->> {})::numeric > 0",
                  f.reason, f.reason)
    if f.status:
        where.add("s.status = {}", f.status)
    if f.has_error is not None:
        where.add(sql.STEP_HAS_ERROR if f.has_error else f"NOT {sql.STEP_HAS_ERROR}")
    if f.since:
        where.add(f"{sql.STEP_TIME} >= {{}}", f.since)
    if f.until:
        where.add(f"{sql.STEP_TIME} < {{}}", f.until)
    for key, value in f.tags:
        tag_clause(where, key, value)

    sort = page.sort.lstrip("-")
    key, _ = _STEP_SORTS[sort]
    if sort in _STEP_NEEDS and _STEP_NEEDS[sort] not in where.clauses:
        where.add(_STEP_NEEDS[sort])
    direction, compare = ("DESC", "<") if page.sort.startswith("-") else ("ASC", ">")
    if page.after:
        where.add(f"({key}, s.run_id, s.span_id) {compare} ({{}}, {{}}, {{}})", *page.after)
    statement = sql.SEARCH_STEPS.format(key=key, where=where.sql(), direction=direction, limit=where.arg(page.limit))
    return statement, where.args


def decisions(run_id: uuid.UUID, f: DecisionFilters, after: list[Any] | None, limit: int) -> tuple[str, list[Any]]:
    """A run's recorded decisions ($1 is the run), in step time order, after the key ``after``."""
    where = Where()
    where.arg(run_id)
    if f.service is not None:
        where.add("s.service = {}", f.service)
    if f.step is not None:
        where.add("(s.name = {} OR s.span_id = {})", f.step, f.step)
    if f.accepted is not None:
        where.add("d.elem -> 'accepted' = {}::jsonb", json.dumps(f.accepted))
    if f.reason is not None:
        where.add("d.elem ->> 'reason' = {}", f.reason)
    if f.candidate is not None:
        where.add("d.elem ->> 'id' = {}", f.candidate)
    if f.prefix:
        where.add("starts_with(d.elem ->> 'id', {})", f.prefix)
    if f.span_ids is not None:
        where.add("s.span_id = ANY({}::text[])", list(f.span_ids))
    if after:
        where.add(f"({sql.STEP_TIME}, s.span_id COLLATE \"C\", d.ord) > ({{}}, {{}}, {{}})", *after)
    return sql.RUN_DECISIONS.format(where=where.sql(), limit=where.arg(limit)), where.args


def pipelines(since: datetime, until: datetime, service: str | None, limit: int) -> tuple[str, list[Any]]:
    """GET /pipelines: per run name over [since, until), most runs first."""
    where = Where()
    where.args += [since, until]
    if service is not None:
        where.add("r.service = {}", service)
    return sql.PIPELINE_RUNS.format(where=where.sql(), limit=where.arg(limit)), where.args
