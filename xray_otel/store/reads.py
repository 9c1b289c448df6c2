"""The named reads the queries call: one method per thing asked of the stored runs and steps.

The SQL is in read_sql.py (named statements), filters.py (statements built from filters) and
pipeline_days.py (the per-day summaries). Rows come back as read-only mappings
(``row["name"]``; asyncpg Records), so asyncpg stays inside store/.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from . import candidate_hours, filters, pipeline_days, pipeline_hours, pipeline_series, read_sql as sql
from .candidate_hours import Hour
from .filters import DecisionFilters, Page, RunFilters, StepFilters
from .outcomes import Part
from .pipeline_stats import step_figures
from .refresher import Refresher

Row = Mapping[str, Any]

# A value PostgreSQL cannot take as a read's parameter (e.g. a date out of its range): the asker's mistake.
REFUSED_VALUE_ERRORS = (asyncpg.DataError,)


@dataclass(frozen=True)
class RunsCandidates:
    """What a page of runs holds of their candidates, read from one snapshot: per run id, its steps that
    answer for candidates (as ``candidate_steps``), their stored outcome parts, and the recorded decisions
    on one candidate of those steps that sent no outcomes."""
    steps: dict[uuid.UUID, list[Row]]
    parts: dict[uuid.UUID, list[Part]]
    decisions: dict[uuid.UUID, list[Row]]
    wrappers: dict[uuid.UUID, list[Row]]  # retrieval and rank steps (queries/lineage.py not_passed_on)


@dataclass(frozen=True)
class Pipeline:
    """One pipeline's figures over a window, read from one snapshot."""
    runs: Row | None  # read_sql.PIPELINE_RUNS's row; None when no run of it started in the window
    steps: list[dict[str, Any]]  # per step name, as pipeline_stats.step_figures reads them


@dataclass(frozen=True)
class Series:
    """One window of a pipeline, per bucket (UTC day or hour): ``rows`` are summary rows
    (pipeline_days.SUMMARY_COLUMNS, ``day`` the bucket; pipeline_stats.Sums adds them up),
    ``runs`` its runs and failed runs per bucket (``day``, ``runs``, ``failed``)."""
    rows: list[Row]
    runs: list[Row]


class Reads:
    """The reads, over the store's pool; ``Store.reads`` is the one to use."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        # Stores the per-day summaries reads found missing or out of date, in the background.
        self._refresher = Refresher(pool, pipeline_days.store_days, pipeline_days.DAYS_PER_TRANSACTION,
                                    "pipeline day summaries")
        self._hour_refresher = Refresher(pool, pipeline_hours.store_hours, pipeline_hours.HOURS_PER_TRANSACTION,
                                         "pipeline hour summaries")
        # Indexes the hours reads found missing or out of date (candidate_hours.py), in the background.
        self.hour_indexer = Refresher(pool, candidate_hours.store_hours, 1, "candidate hours")

    async def close(self) -> None:
        await self._refresher.close()
        await self._hour_refresher.close()
        await self.hour_indexer.close()

    # --- one run ---------------------------------------------------------------------------

    async def run(self, run_id: uuid.UUID) -> Row | None:
        """The run row (with inputs, outputs and steps_run_span), or None."""
        return await self._pool.fetchrow(sql.GET_RUN, run_id)

    async def trace_parts(self, trace_id: uuid.UUID) -> list[Row]:
        """The runs (id, project) the projects wrote into one trace, by project."""
        return await self._pool.fetch(sql.TRACE_PARTS, trace_id)

    async def run_has_service(self, run_id: uuid.UUID, service: str) -> bool:
        """Whether any span of the run came from ``service``."""
        return await self._pool.fetchval(sql.RUN_HAS_SERVICE, run_id, service)

    async def run_steps(self, run_id: uuid.UUID) -> list[Row]:
        """The run's steps, whole, in start order."""
        return await self._pool.fetch(sql.RUN_STEPS, run_id)

    async def run_step_figures(self, run_id: uuid.UUID) -> list[Row]:
        """The run's steps in start order without their payload (inputs, outputs, ... are None)."""
        return await self._pool.fetch(sql.RUN_STEP_FIGURES, run_id)

    async def step_tree(self, run_id: uuid.UUID) -> list[Row]:
        """(span_id, parent_span_id, service) of the run's steps, in start order."""
        return await self._pool.fetch(sql.RUN_STEP_TREE, run_id)

    async def steps_by_id(self, run_id: uuid.UUID, span_ids: Sequence[str]) -> list[Row]:
        """The run's steps of those span ids, whole, in no order."""
        return await self._pool.fetch(sql.RUN_STEPS_BY_ID, run_id, list(span_ids))

    async def wrappers(self, run_id: uuid.UUID) -> list[Row]:
        """The run's retrieval and rank steps, each with ``decision_count`` (None: no decision list)."""
        return await self._pool.fetch(sql.RUN_WRAPPERS, run_id)

    async def outcome_states(self, run_id: uuid.UUID) -> list[Row]:
        """Per step of the run that sent candidate outcomes, what arrived (outcomes.state tells whether whole)."""
        return await self._pool.fetch(sql.RUN_OUTCOME_STATES, run_id)

    async def candidate_steps(self, run_id: uuid.UUID) -> list[Row]:
        """The run's steps that sent candidate outcomes or recorded decisions, in step time order, each with
        what arrived of its outcomes (``has_outcomes``; outcomes.state) and ``decision_count``."""
        return await self._pool.fetch(sql.RUN_CANDIDATE_STEPS, run_id)

    async def outcome_parts(self, run_id: uuid.UUID, span_ids: Sequence[str]) -> list[Part]:
        """The stored outcome parts of those steps, by step and part number."""
        return [Part(row) for row in await self._pool.fetch(sql.RUN_OUTCOME_PARTS, run_id, list(span_ids))]

    async def first_outcome_parts(self, run_id: uuid.UUID, most: int) -> list[Part]:
        """Part 0 of the run's steps that sent outcomes, of the first ``most`` of them in step time order."""
        return [Part(row) for row in await self._pool.fetch(sql.RUN_FIRST_OUTCOME_PARTS, run_id, most)]

    async def step_outcome_parts(self, run_id: uuid.UUID, span_id: str, first: int, count: int) -> list[Part]:
        """Up to ``count`` stored outcome parts of one step, from part number ``first`` on, in order."""
        return [Part(row) for row in await self._pool.fetch(sql.STEP_OUTCOME_PARTS, run_id, span_id, first, count)]

    async def decisions(self, run_id: uuid.UUID, f: DecisionFilters, after: list[Any] | None,
                        limit: int) -> list[Row]:
        """The run's recorded decisions in step time order, after the key ``after`` (filters.DECISION_KEY)."""
        query, args = filters.decisions(run_id, f, after, limit)
        return await self._pool.fetch(query, *args)

    # --- across runs -----------------------------------------------------------------------

    async def list_runs(self, f: RunFilters, page: Page) -> list[Row]:
        """Runs passing ``f``, a page of them in ``page.sort`` order (filters.RUN_SORTS), each with ``sort_key``."""
        query, args = filters.list_runs(f, page)
        return await self._pool.fetch(query, *args)

    async def search_steps(self, f: StepFilters, page: Page) -> list[Row]:
        """Steps passing ``f`` with their run's trace_id and name (run_name), a page in ``page.sort``
        order (filters.STEP_SORTS), each with ``sort_key``."""
        query, args = filters.search_steps(f, page)
        return await self._pool.fetch(query, *args)

    async def pipeline_run_page(self, name: str, since: datetime, until: datetime, before: list[Any] | None,
                                project: str | None, limit: int) -> list[Row]:
        """Up to ``limit`` runs of pipeline ``name`` that started in [since, until), newest first, before the
        key (started_at, id) ``before``; only ``project``'s when one is given."""
        args: list[Any] = [name, since, until, *(before or (None, None))]
        where = "TRUE"
        if project is not None:
            args.append(project)
            where = f"r.project = ${len(args)}"
        args.append(limit)
        query = sql.PIPELINE_RUN_PAGE.format(where=where, limit=f"${len(args)}")
        return await self._pool.fetch(query, *args)

    async def pipeline_exists(self, name: str, project: str | None) -> bool:
        """Whether a run was ever named ``name`` (one of ``project``'s, when given)."""
        return await self._pool.fetchval(sql.PROJECT_RUN_NAME_EXISTS, name, project)

    async def indexed_hours(self, name: str, first: int, last: int, crc: int) -> list[Hour]:
        """The stored candidate index of pipeline ``name``'s whole hours in [first, last) (epoch hours) that
        is still up to date, newest first, with the shard row of the candidate whose id's crc32 is ``crc``.
        Hours found missing or out of date are indexed in the background, for the next read."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            hours, stale = await candidate_hours.read_hours(conn, name, first, last, crc)
        if stale:
            self.hour_indexer.request(name, stale)
        return hours

    async def run_statuses(self, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        return {r["id"]: r["status"] for r in await self._pool.fetch(sql.RUN_STATUSES, list(run_ids))}

    async def runs_candidates(self, run_ids: Sequence[uuid.UUID], candidate: str | None) -> RunsCandidates:
        """The candidates the runs hold (RunsCandidates); decisions and wrappers only when ``candidate`` is given."""
        ids = list(run_ids)
        steps: dict[uuid.UUID, list[Row]] = {}
        parts: dict[uuid.UUID, list[Part]] = {}
        decisions: dict[uuid.UUID, list[Row]] = {}
        wrappers: dict[uuid.UUID, list[Row]] = {}
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            for row in await conn.fetch(sql.RUNS_CANDIDATE_STEPS, ids):
                steps.setdefault(row["run_id"], []).append(row)
            for row in await conn.fetch(sql.RUNS_OUTCOME_PARTS, ids):
                parts.setdefault(row["run_id"], []).append(Part(row))
            sampled = [s["span_id"] for rows in steps.values() for s in rows if not s["has_outcomes"]]
            if candidate is not None and sampled:
                for row in await conn.fetch(sql.RUNS_CANDIDATE_DECISIONS, ids, candidate, sampled):
                    decisions.setdefault(row["run_id"], []).append(row)
            if candidate is not None:
                for row in await conn.fetch(sql.RUNS_WRAPPERS, ids):
                    wrappers.setdefault(row["run_id"], []).append(row)
        return RunsCandidates(steps, parts, decisions, wrappers)

    async def pipelines(self, since: datetime, until: datetime, service: str | None, limit: int) -> list[Row]:
        """Per run name, its runs that started in [since, until): counts, durations, cost."""
        query, args = filters.pipelines(since, until, service, limit)
        return await self._pool.fetch(query, *args)

    async def pipeline(self, name: str, since: datetime, until: datetime, *, top_reasons: int,
                       max_steps: int) -> Pipeline | None:
        """Pipeline ``name``'s figures over runs that started in [since, until), and per step name
        (at most ``max_steps``, with the ``top_reasons`` reasons) its figures; None when no run
        was ever named so. Days whose stored summary was out of date are stored again in the
        background, for the next read."""
        async with self._pool.acquire() as conn, \
                conn.transaction(isolation="repeatable_read", readonly=True):  # one snapshot for all figures
            runs = await conn.fetch(sql.ONE_PIPELINE_RUNS, since, until, name)
            if not runs and not await conn.fetchval(sql.RUN_NAME_EXISTS, name):
                return None
            steps, stale = await pipeline_days.step_figures(conn, name, since, until, top_reasons, max_steps)
        if stale:
            self._refresher.request(name, stale)
        # Decoding a long window's histograms takes a while: off the event loop, so ingest goes on.
        figures = await asyncio.to_thread(lambda: [step_figures(row) for row in steps])
        return Pipeline(runs[0] if runs else None, figures)


    async def pipeline_series(self, name: str, windows: Sequence[tuple[datetime, datetime]], *, hourly: bool,
                              steps: Sequence[str] | None = None, points: bool = False) -> list[Series] | None:
        """Pipeline ``name``'s figures per UTC day (or hour) and step over each window [since,
        until) (only ``steps`` when given; only what a chart's point shows with ``points``), all read
        from one snapshot; None when no run was ever named so. Days and hours whose stored summary was
        out of date are stored again in the background."""
        found, stale_days, stale_hours = [], set(), set()
        async with self._pool.acquire() as conn, \
                conn.transaction(isolation="repeatable_read", readonly=True):  # one snapshot for all windows
            for since, until in windows:
                rows, runs, plan = await pipeline_series.series(conn, name, since, until, hourly,
                                                                list(steps) if steps else None, points=points)
                found.append(Series(rows, runs))
                if plan is not None:
                    stale_days.update(plan.stale_days)
                    stale_hours.update(plan.stale_hours)
            if not any(series.runs for series in found) and not await conn.fetchval(sql.RUN_NAME_EXISTS, name):
                return None
        if stale_days:
            self._refresher.request(name, sorted(stale_days))
        if stale_hours:
            self._hour_refresher.request(name, sorted(stale_hours))
        return found

    async def active_pipelines(self, since: datetime, until: datetime, limit: int) -> list[str]:
        """Run names with runs started in [since, until), most runs first."""
        return [row["name"] for row in await self._pool.fetch(pipeline_series.ACTIVE_PIPELINES, since, until, limit)]

    async def example_runs(self, name: str, since: datetime, until: datetime,
                           wanted: Sequence[tuple[str, str | None]]) -> dict[tuple[str, str | None], uuid.UUID]:
        """Per (step, reason or None) of ``wanted``, the newest run of pipeline ``name`` started in
        [since, until) that has that step (whose step names that reason), when there is one."""
        if not wanted:
            return {}
        rows = await self._pool.fetch(pipeline_series.EXAMPLE_RUNS, name, since, until,
                                      [step for step, _ in wanted], [reason or "" for _, reason in wanted])
        return {(row["step"], row["reason"] or None): row["run_id"] for row in rows if row["run_id"] is not None}
