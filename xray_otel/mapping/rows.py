"""The rows mapping produces and the store writes: the contract between the two stages.

A run row per trace (per trace and project, for spans a project-bound key wrote), a step row per
span. Several spans of a trace each propose a run row; the best one wins, by ``RunRow.beats`` here
(within a request) and by store/sql.py UPSERT_RUNS (across requests), so the stored result does not
depend on the order or batching in which spans arrive.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import NamedTuple

from .. import conventions as c
from .values import MAX_NAME

SOURCE_PLACEHOLDER, SOURCE_ROOT, SOURCE_RUN_SPAN = 0, 1, 2
COST_EXPLICIT, COST_PRICE_TABLE, COST_NONE = "explicit", "price_table", "none"  # steps.cost_source


class RunRow(NamedTuple):
    """Columns of ``runs`` in table order (see store/migrations)."""

    id: uuid.UUID
    source: int
    span_id: str
    name: str | None
    status: str
    service: str | None
    tags: str  # JSON
    inputs: str | None  # JSON
    outputs: str | None  # JSON
    error: str | None
    started_at: int  # microseconds since the Unix epoch, UTC (store/sql.py makes them timestamptz)
    completed_at: int | None
    project: str | None = None  # the project-bound key that wrote it; None: a key bound to no project
    trace_id: uuid.UUID | None = None  # set with project: the trace id, as id is project_run_id's


    def beats(self, other: RunRow) -> bool:
        """The merge rule shared with store/sql.py UPSERT_RUNS."""
        if self.source != other.source:
            return self.source > other.source
        return (self.started_at, self.span_id) < (other.started_at, other.span_id)


class StepRow(NamedTuple):
    """Columns of ``steps`` in table order, as written by COPY."""

    run_id: uuid.UUID
    span_id: str
    parent_span_id: str | None
    name: str
    type: str
    status: str
    inputs: str | None
    outputs: str | None
    metadata: str | None
    reasoning: str | None
    cost: float
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    input_count: int | None
    output_count: int | None
    rejections: str | None
    decisions: str | None
    started_at: int | None  # microseconds since the Unix epoch, as RunRow
    completed_at: int | None
    error: str | None
    service: str | None
    attributes: str
    otel: str
    resource: str
    cost_source: str | None = None  # a COST_* value; None where unknown (legacy /ingest)


@dataclass
class Batch:
    """What one request stores: runs merged per trace, one step row per span."""

    runs: dict[uuid.UUID, RunRow] = field(default_factory=dict)
    steps: list[StepRow] = field(default_factory=list)
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    truncated: int = 0  # attribute values cut at the size cap (stored, with a marker)
    services_cut: int = 0  # resources whose service.name was cut at MAX_NAME (it is indexed)

    def add_run(self, row: RunRow) -> None:
        current = self.runs.get(row.id)
        if current is None or row.beats(current):
            self.runs[row.id] = row

    def add_placeholder(self, step: StepRow, project: str | None = None, trace_id: uuid.UUID | None = None) -> None:
        """The RUNNING run a step implies until its run span arrives. Built only when no better row is
        already here: a placeholder never beats a run or root span's row (most steps, most requests)."""
        current = self.runs.get(step.run_id)
        if current is None or current.source == SOURCE_PLACEHOLDER:
            self.add_run(RunRow(step.run_id, SOURCE_PLACEHOLDER, step.span_id, None, c.STATUS_RUNNING, step.service,
                                "{}", None, None, None, step.started_at if step.started_at is not None else step.completed_at, None,
                                project, trace_id))

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if len(self.errors) < 5:  # enough to act on; the count says how many
            self.errors.append(reason)

    @property
    def message(self) -> str:
        return "; ".join(self.errors)

    def warnings(self, cap: int) -> list[str]:
        """What the sender should know about spans that were stored, but not exactly as sent."""
        said = []
        if self.truncated:
            said.append(f"{self.truncated} attribute values over {cap} characters were truncated (marked "
                        f"{c.TRUNCATION_MARKER!r}); the spans were stored")
        if self.services_cut:
            said.append(f"{self.services_cut} service.name values over {MAX_NAME} characters were truncated (marked "
                        f"{c.TRUNCATION_MARKER!r}); the spans were stored")
        return said


def project_run_id(project: str, trace_id: uuid.UUID) -> uuid.UUID:
    """The run id of a trace's spans written with a key bound to ``project``: each project's part of a
    trace is a run of its own, so what one project writes can neither change, reveal nor swallow what
    another wrote into the same trace id. Not invertible, and no project can make another's id (SHA-1)."""
    return uuid.uuid5(_PROJECT_RUNS, f"{project}/{trace_id.hex}")


_PROJECT_RUNS = uuid.UUID("6f1d0c5e-8a51-4f7e-9d0b-7872617970f1")  # uuid5 namespace of project_run_id
