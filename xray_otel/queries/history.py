"""One candidate across a pipeline's runs, and the candidates a pipeline drops most often.

- ``GET /pipelines/{name}/candidates/{candidate_id}``: in which runs of the pipeline the candidate
  appeared, its fate in each (the same answer as ``/runs/{id}/candidates/{cid}``), and where that fate
  changed over time. Newest runs first, in pages.
- ``GET /pipelines/{name}/never-survives``: over the newest runs of a window, the candidates dropped
  most often by the same step for the same reason, and whether they ever survived a run.

Outcomes are stored packed per step (store/outcomes.py), so both read the runs' parts and search them;
a page reads at most ``MAX_SCANNED`` runs, and says how many it read and which ones, so a reader always
knows what the figures cover. Work on the parts runs off the event loop.
"""

from __future__ import annotations

import asyncio
import uuid
import zlib
import heapq
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import compress
from typing import Any

from aiohttp import web

from ..store.candidate_hours import Hour, hour_start, ordinals_before, whole_hours
from ..store.candidate_index import lookup
from ..store.outcomes import DISAGREE, INCOMPLETE, state
from ..store.reads import Reads, Row, RunsCandidates
from ..web import PROJECT, json_large_ok, json_ok
from .common import QueryError, project_steps, reads, shown_run_id
from .lineage import candidate_entries, lineage, not_passed_on
from .params import CURSOR, SINCE, UNTIL, Param, convert, decode_cursor, encode_cursor, limit_param, \
    link_headers, parse
from .pipelines import NAME, window

DEFAULT_WINDOW = timedelta(days=7)
RUNS_PER_READ = 50  # runs whose parts are read at once
MAX_SCANNED = 1_000  # runs one page of a history reads at most; the next page goes on from there
_CANDIDATE = Param("candidate_id", "string", "the candidate's id as the SDK recorded it (`id_fn`)")
_KEY = (datetime, uuid.UUID)

HISTORY_PARAMS = (
    Param("since", "datetime", f"{SINCE.description} (default {DEFAULT_WINDOW.days} days before `until`)"),
    Param("until", "datetime", f"{UNTIL.description} (default now)"),
    limit_param(default=100, maximum=10_000),
    CURSOR,
)
NEVER_PARAMS = (
    Param("since", "datetime", f"{SINCE.description} (default {DEFAULT_WINDOW.days} days before `until`)"),
    Param("until", "datetime", f"{UNTIL.description} (default now)"),
    Param("step", "string", "only drops by steps of this name"),
    Param("reason", "string", "only drops for this exact reason"),
    Param("runs", "integer", "read the newest this many runs of the window (default 100, max 1000)",
          minimum=1, maximum=MAX_SCANNED, default=100),
    limit_param(default=20, maximum=500),
)


# --- GET /pipelines/{name}/candidates/{candidate_id} -----------------------------------------------------


async def candidate_history(request: web.Request) -> web.Response:
    name = convert(NAME, request.match_info["name"])
    candidate = convert(_CANDIDATE, request.match_info["candidate_id"])
    p = parse(request.query, HISTORY_PARAMS)
    since, until = window(p, DEFAULT_WINDOW)
    page = _Page(request, name, candidate, p["limit"], decode_cursor(p["cursor"], "history", _KEY))
    store = reads(request)
    first, last = whole_hours(since, until)
    # The index holds every project's steps: a project-bound key reads its runs' own rows.
    hours = {} if request.get(PROJECT) is not None else {
        h.hour: h for h in await store.indexed_hours(name, first, last, zlib.crc32(candidate.encode()))}
    for start, end, hour in _segments(since, until, list(hours)):
        if page.full():
            break
        if hour in hours:
            await page.read_hour(hours[hour])
        else:
            await page.read_rows(start, end)
    if not page.read and p["cursor"] is None:
        await _exists(store, name, request)
    more = page.finish()
    await page.add_statuses()
    headers = link_headers(request.rel_url, encode_cursor("history", page.before)) if more else {}
    body = {
        "pipeline": name, "candidate_id": candidate, "window": {"since": since, "until": until},
        "runs": page.found, "summary": summary(page.found, page.read),
        "next_cursor": headers.get("X-Next-Cursor"),
    }
    return json_large_ok(body, headers=headers)  # 10,000 runs: 5 MB


def _segments(since: datetime, until: datetime, indexed: list[int]) -> list[tuple[datetime, datetime, int | None]]:
    """[start, end) pieces of the window, newest first: each indexed hour (with its epoch hour), and
    the stretches between them, read from rows. As many pieces as indexed hours, however long the window."""
    pieces: list[tuple[datetime, datetime, int | None]] = []
    end = until
    for hour in sorted(indexed, reverse=True):
        start, stop = hour_start(hour), hour_start(hour + 1)
        if stop < end:
            pieces.append((stop, end, None))
        pieces.append((start, stop, hour))
        end = start
    if since < end:
        pieces.append((since, end, None))
    return pieces


class _Page:
    """One page of a candidate's history, filled newest first: from an hour's index, or from runs' own
    rows; full when it holds one run past ``limit`` (so a next page is offered only when it has one) or
    has read MAX_SCANNED runs from their rows."""

    def __init__(self, request: web.Request, name: str, candidate: str, limit: int, before: list[Any] | None):
        self.request, self.name, self.candidate, self.limit, self.before = request, name, candidate, limit, before
        self.store = reads(request)
        self.found: list[dict[str, Any]] = []
        self.read: list[tuple[datetime, Any]] = []  # (started_at, run id) of every run read, newest first
        self.from_rows = 0
        self._found_at: list[int] = []  # each found run's place in ``read``
        self._more = False

    def full(self) -> bool:
        return self._more or len(self.found) > self.limit

    def _take(self, started: datetime, run_id: Any, entry: dict[str, Any] | None) -> None:
        self.read.append((started, run_id))
        self.before = [started, run_id]
        if entry is not None:
            self.found.append(entry)
            self._found_at.append(len(self.read) - 1)
        if self.from_rows >= MAX_SCANNED:
            self._more = True

    def finish(self) -> bool:
        """Whether a next page is to be offered; the run found past the limit is left to it."""
        if len(self.found) > self.limit:
            self.found.pop()
            self._found_at.pop()
            del self.read[self._found_at[-1] + 1:]
            self.before = list(self.read[-1])
            return True
        return self._more

    async def read_hour(self, hour: Hour) -> None:
        fates = dict(lookup(*hour.shard, self.candidate)) if hour.shard else {}
        per_run = set(hour.per_run)
        start = ordinals_before(hour, self.before)
        ordinals = range(start + 1, len(hour.run_ids) + 1)
        own = [o for o in ordinals if o in per_run]
        if not own and len(self.found) + len(fates) <= self.limit:  # as a rule: the whole hour, in one go
            self._take_hour(hour, start, fates)
            return
        own = own[:MAX_SCANNED - self.from_rows]
        answers = await self._from_rows({hour.run_ids[o - 1]: hour.run_started[o - 1] for o in own}, {}) if own else {}
        for o in ordinals:
            if self.full():
                return
            run_id, started = hour.run_ids[o - 1], hour.run_started[o - 1]
            if o in per_run:
                if run_id not in answers:  # past what this page reads from rows
                    self._more = True
                    return
                self.from_rows += 1
                self._take(started, run_id, answers[run_id])
            elif o in fates:
                fate = fates[o]
                step, reason = hour.fates[fate - 1] if fate else (None, None)
                self._take(started, run_id, _entry(run_id, started, "dropped" if fate else "kept", step, reason))
            else:
                self._take(started, run_id, None)

    def _take_hour(self, hour: Hour, start: int, fates: dict[int, int]) -> None:
        """Every run of the hour after its first ``start``, none answered per run, the page not filling:
        what read_hour's loop would take, without its checks run by run."""
        at = len(self.read) - start - 1  # ordinal o is read[at + o]
        self.read.extend(zip(hour.run_started[start:], hour.run_ids[start:]))
        for o in sorted(o for o in fates if o > start):
            fate, run_id, started = fates[o], hour.run_ids[o - 1], hour.run_started[o - 1]
            step, reason = hour.fates[fate - 1] if fate else (None, None)
            self.found.append(_entry(run_id, started, "dropped" if fate else "kept", step, reason))
            self._found_at.append(at + o)
        if len(hour.run_ids) > start:
            self.before = list(self.read[-1])

    async def read_rows(self, start: datetime, end: datetime) -> None:
        while not self.full():
            want = min(RUNS_PER_READ, MAX_SCANNED - self.from_rows)
            runs = await self.store.pipeline_run_page(self.name, start, end, self.before,
                                                      self.request.get(PROJECT), want)
            answers = await self._from_rows({r["id"]: r["started_at"] for r in runs},
                                            {r["id"]: r["trace_id"] for r in runs}) if runs else {}
            for run in runs:
                if self.full():
                    return
                self.from_rows += 1
                self._take(run["started_at"], run["id"], answers[run["id"]])
            if len(runs) < want:
                return

    async def _from_rows(self, started: dict[Any, datetime],
                         trace_ids: dict[Any, Any]) -> dict[Any, dict[str, Any] | None]:
        """The candidate's fate in each of these runs (id: start time), read from their own rows."""
        held = await self.store.runs_candidates(list(started), self.candidate)
        return await asyncio.to_thread(lambda: {
            run_id: _run_history(self.request, run_id, at, trace_ids.get(run_id), held, self.candidate)
            for run_id, at in started.items()})

    async def add_statuses(self) -> None:
        statuses = await self.store.run_statuses([e["run"]["stored_id"] for e in self.found]) if self.found else {}
        for entry in self.found:
            entry["run"]["status"] = statuses.get(entry["run"].pop("stored_id"))


def _entry(run_id: Any, started: datetime, outcome: str, step: str | None, reason: str | None,
           why: str | None = None, shown: str | None = None) -> dict[str, Any]:
    return {"run": {"id": shown or str(run_id), "stored_id": run_id, "status": None, "started_at": started},
            "outcome": outcome, "left_at": {"step": step, "reason": reason} if outcome == "dropped" else None,
            "why": why}


def _run_history(request: web.Request, run_id: Any, started: datetime, trace_id: Any, held: RunsCandidates,
                 candidate: str) -> dict[str, Any] | None:
    """The candidate's fate in one run read from its rows, as /runs/{id}/candidates/{cid} gives it; None
    when the run shows no trace of it."""
    steps = project_steps(request, held.steps.get(run_id, []))
    path = candidate_entries(steps, held.parts.get(run_id, []), held.decisions.get(run_id, []), candidate)
    if not path:
        return None
    if all(d["accepted"] is not False for d in path):
        parents = {s["span_id"]: s["parent_span_id"] for s in steps}
        path += not_passed_on(path, parents, project_steps(request, held.wrappers.get(run_id, [])))
    answer = lineage({}, candidate, path)
    left = answer["left_at"] or {}
    return _entry(run_id, started, answer["outcome"], left.get("step"), left.get("reason"), answer["why"],
                  shown_run_id(request, run_id, trace_id))


def summary(found: list[dict[str, Any]], read: list[tuple[datetime, Any]]) -> dict[str, Any]:
    """Pure: what the page's runs say together: how often the candidate appeared, its outcomes, where it
    left, and each time its fate differed from the run before (oldest first)."""
    fates = [_fate(f) for f in found]
    outcomes = Counter(outcome for outcome, _, _ in fates)
    left = Counter((step, reason) for outcome, step, reason in fates if outcome == "dropped")
    changes = []
    for i in range(len(found) - 2, -1, -1):  # oldest first: each run against the one before it
        if fates[i] != fates[i + 1]:
            f, previous = found[i], found[i + 1]
            changes.append({"at": f["run"]["started_at"], "run_id": f["run"]["id"],
                            "previous_run_id": previous["run"]["id"], "from": _shown(fates[i + 1]),
                            "to": _shown(fates[i])})
    return {
        "runs_read": len(read),
        "read_from": read[-1][0] if read else None,
        "read_until": read[0][0] if read else None,
        "runs_with_candidate": len(found),
        "outcomes": {k: outcomes.get(k, 0) for k in ("kept", "dropped", "unknown")},
        "left_at": [{"step": step, "reason": reason, "runs": n} for (step, reason), n in left.most_common()],
        "changes": changes,
    }


def _fate(entry: dict[str, Any]) -> tuple[str, str | None, str | None]:
    left = entry["left_at"]
    return (entry["outcome"], left["step"], left["reason"]) if left else (entry["outcome"], None, None)


def _shown(fate: tuple[str, str | None, str | None]) -> dict[str, Any]:
    return {"outcome": fate[0], "step": fate[1], "reason": fate[2]}


# --- GET /pipelines/{name}/never-survives ---------------------------------------------------------------


async def never_survives(request: web.Request) -> web.Response:
    name = convert(NAME, request.match_info["name"])
    p = parse(request.query, NEVER_PARAMS)
    since, until = window(p, DEFAULT_WINDOW)
    store = reads(request)
    runs: list[Row] = []
    before: list[Any] | None = None
    tally = Tally(p["step"], p["reason"])
    while len(runs) < p["runs"]:
        page = await store.pipeline_run_page(name, since, until, before, request.get(PROJECT),
                                             min(RUNS_PER_READ, p["runs"] - len(runs)))
        if not page:
            break
        held = await store.runs_candidates([r["id"] for r in page], None)
        for run in page:
            await asyncio.to_thread(tally.add, project_steps(request, held.steps.get(run["id"], [])),
                                    held.parts.get(run["id"], []))
        runs += page
        before = [page[-1]["started_at"], page[-1]["id"]]
        if len(page) < RUNS_PER_READ:
            break
    if not runs:
        await _exists(store, name, request)
    return json_ok({
        "pipeline": name, "window": {"since": since, "until": until},
        "runs_read": len(runs), "read_from": runs[-1]["started_at"] if runs else None,
        "read_until": runs[0]["started_at"] if runs else None,
        **tally.result(p["limit"]),
    })


class Tally:
    """Counts, over runs, the runs in which each candidate was dropped by a step (by name) for a reason,
    the runs in which it appeared, and the runs in which it was dropped at all. Only runs whose outcomes
    are all complete count: in another, a candidate's absence or survival is not known."""

    def __init__(self, step: str | None, reason: str | None) -> None:
        self.step, self.reason = step, reason
        self.dropped: dict[tuple[str, str], Counter[str]] = {}  # (step, reason) -> runs each id was dropped so
        # Per run counted, its ids and those some step dropped: looked up for the few ids reported only.
        self.seen: list[set[str]] = []
        self.lost: list[set[str]] = []
        self.runs = self.skipped = 0
        self.sampled_steps: set[str] = set()
        self.skipped_why: Counter[str] = Counter()

    def add(self, steps: list[Row], parts: list[Any]) -> None:
        exact = [s for s in steps if s["has_outcomes"]]
        self.sampled_steps.update(s["name"] for s in steps if not s["has_outcomes"])
        for step in exact:
            status, why = state(step)
            if status == INCOMPLETE:
                self.skipped += 1
                self.skipped_why["a part disagrees" if why and DISAGREE in why else "outcomes incomplete"] += 1
                return
        if not exact:
            return
        self.runs += 1
        names = {s["span_id"]: s["name"] for s in exact}
        appeared: set[str] = set()
        drops: dict[tuple[str, str], set[str]] = {}  # counted once a run, however often dropped in it
        for part in parts:
            name = names.get(part.span_id)
            if name is None:
                continue
            ids, codes = part.ids(), part.codes()
            appeared.update(ids)
            for code, dropped in _by_code(ids, codes):
                drops.setdefault((name, part.reasons[code - 1]), set()).update(dropped)
        self.seen.append(appeared)
        self.lost.append(set().union(*drops.values()))
        for key, dropped in drops.items():
            if self.step in (None, key[0]) and self.reason in (None, key[1]):
                self.dropped.setdefault(key, Counter()).update(dropped)

    def result(self, limit: int) -> dict[str, Any]:
        ranked = heapq.nsmallest(limit, ((-n, cid, step, reason) for (step, reason), counts in self.dropped.items()
                                         for cid, n in counts.items()))
        seen = {cid: sum(cid in ids for ids in self.seen) for _, cid, _, _ in ranked}
        lost = {cid: sum(cid in ids for ids in self.lost) for _, cid, _, _ in ranked}
        return {
            "runs_counted": self.runs,
            "runs_not_counted": {"runs": self.skipped, "why": dict(self.skipped_why)} if self.skipped else None,
            "steps_sampled_only": sorted(self.sampled_steps),
            "candidates": [{"candidate_id": cid, "step": step, "reason": reason, "dropped_runs": -n,
                            "seen_runs": seen[cid], "survived_runs": seen[cid] - lost[cid],
                            "never_survives": seen[cid] == lost[cid]}
                           for n, cid, step, reason in ranked],
        }


def _by_code(ids: list[str], codes: Any) -> Iterator[tuple[int, Iterator[str]]]:
    """Per code other than kept in a part, the ids dropped with it; at C speed for one-byte codes."""
    packed = codes.tobytes() if codes.itemsize == 1 else None
    for code in set(codes) - {0}:
        if packed is not None:
            yield code, compress(ids, packed.translate(_MASKS[code]))
        else:
            yield code, compress(ids, [c == code for c in codes])


_MASKS = [bytes(1 if i == code else 0 for i in range(256)) for code in range(256)]


async def _exists(store: Reads, name: str, request: web.Request) -> None:
    if not await store.pipeline_exists(name, request.get(PROJECT)):
        raise QueryError(404, f"no run named {name[:64]!r}")
