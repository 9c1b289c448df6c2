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


class OutcomeRow(NamedTuple):
    """One part of a step's candidate outcomes (docs/conventions.md, "Candidate outcomes"), as sent and
    checked (mapping/outcomes.py); store/outcomes.py packs it into a ``step_outcomes`` row."""

    run_id: uuid.UUID
    span_id: str  # the step's: a continuation span's parent
    part: int  # 0-based; -1 for an outcome set refused before its part number could be read
    parts: int  # how many parts the step sends, as this part says
    total: int | None  # candidates the step decided on over all parts, as this part says; None: not said
    ids: list[str]  # input order
    codes: list[int]  # per id: 0 kept, r >= 1 dropped for reasons[r - 1]
    ranks: list[int] | None  # per id: rank (1 = best), 0 unranked; None: no ranks sent
    reasons: list[str]
    incomplete: str | None  # why this part does not hold every outcome sent for it; None when it does
    service: str | None = None  # the service.name of the span that carried it: a part counts for its step
    # only when the step's service is the same (store/read_sql.py), so no other service adds to a step's


@dataclass
class Batch:
    """What one request stores: runs merged per trace, one step row per span."""

    runs: dict[uuid.UUID, RunRow] = field(default_factory=dict)
    steps: list[StepRow] = field(default_factory=list)
    outcomes: list[OutcomeRow] = field(default_factory=list)  # parts of steps' candidate outcomes
    continuations: int = 0  # spans stored as outcomes of their parent step only (xray.kind=outcomes): no step row
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    truncated: int = 0  # attribute values cut at the size cap (stored, with a marker)
    services_cut: int = 0  # resources whose service.name was cut at MAX_NAME (it is indexed)
    outcome_notes: list[str] = field(default_factory=list)  # why outcome parts were stored incomplete (5 kept)
    outcomes_incomplete: int = 0  # outcome parts stored incomplete: their steps answer unknown, not kept

    def add_outcomes(self, row: OutcomeRow, step_name: str) -> None:
        self.outcomes.append(row)
        if row.incomplete is not None:
            self.outcomes_incomplete += 1
            if len(self.outcome_notes) < 5:
                self.outcome_notes.append(f"step {step_name[:64]!r} ({row.span_id}) part {row.part}: {row.incomplete}")

    def add_run(self, row: RunRow) -> None:
        current = self.runs.get(row.id)
        if current is None or row.beats(current):
            self.runs[row.id] = row

    def add_placeholder(self, step: StepRow, project: str | None = None, trace_id: uuid.UUID | None = None) -> None:
        """The RUNNING run a step implies until its run span arrives. Built only when no better row is
        already here: a placeholder never beats a run or root span's row (most steps, most requests)."""
        self.add_placeholder_run(step.run_id, step.span_id, step.service,
                                 step.started_at if step.started_at is not None else step.completed_at, project, trace_id)

    def add_placeholder_run(self, run_id: uuid.UUID, span_id: str, service: str | None, at: int | None,
                            project: str | None = None, trace_id: uuid.UUID | None = None) -> None:
        """add_placeholder for any span of the run (a step's, or a continuation span's whose outcomes are stored
        with the run, so that retention deletes them with it)."""
        current = self.runs.get(run_id)
        if current is None or current.source == SOURCE_PLACEHOLDER:
            self.add_run(RunRow(run_id, SOURCE_PLACEHOLDER, span_id, None, c.STATUS_RUNNING, service,
                                "{}", None, None, None, at, None, project, trace_id))

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
        if self.outcomes_incomplete:
            said.append(f"{self.outcomes_incomplete} candidate outcome parts were stored incomplete (their steps "
                        "answer unknown for a candidate not found, never kept): " + "; ".join(self.outcome_notes))
        return said


def project_run_id(project: str, trace_id: uuid.UUID) -> uuid.UUID:
    """The run id of a trace's spans written with a key bound to ``project``: each project's part of a
    trace is a run of its own, so what one project writes can neither change, reveal nor swallow what
    another wrote into the same trace id. Not invertible, and no project can make another's id (SHA-1)."""
    return uuid.uuid5(_PROJECT_RUNS, f"{project}/{trace_id.hex}")


_PROJECT_RUNS = uuid.UUID("6f1d0c5e-8a51-4f7e-9d0b-7872617970f1")  # uuid5 namespace of project_run_id
