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
from collections import Counter
from datetime import datetime, timedelta, timezone
from itertools import compress, repeat
from typing import Any

from aiohttp import web

from ..store.outcomes import DISAGREE, INCOMPLETE, state
from ..store.reads import Reads, Row, RunsCandidates
from ..web import PROJECT, json_ok
from .common import QueryError, project_steps, reads, shown_run_id
from .lineage import candidate_entries, lineage, not_passed_on
from .params import CURSOR, SINCE, UNTIL, Param, convert, decode_cursor, encode_cursor, limit_param, \
    link_headers, parse
from .pipelines import NAME

DEFAULT_WINDOW = timedelta(days=7)
RUNS_PER_READ = 50  # runs whose parts are read at once
MAX_SCANNED = 1_000  # runs one page of a history reads at most; the next page goes on from there
_CANDIDATE = Param("candidate_id", "string", "the candidate's id as the SDK recorded it (`id_fn`)")
_KEY = (datetime, uuid.UUID)

HISTORY_PARAMS = (
    Param("since", "datetime", f"{SINCE.description} (default {DEFAULT_WINDOW.days} days before `until`)"),
    Param("until", "datetime", f"{UNTIL.description} (default now)"),
    limit_param(default=50, maximum=500),
    CURSOR,
)
NEVER_PARAMS = (
    Param("since", "datetime", f"{SINCE.description} (default {DEFAULT_WINDOW.days} days before `until`)"),
    Param("until", "datetime", f"{UNTIL.description} (default now)"),
    Param("step", "string", "only drops by steps of this name"),
    Param("reason", "string", "only drops for this exact reason"),
    Param("runs", "integer", "read the newest this many runs of the window (default 200, max 1000)",
          minimum=1, maximum=MAX_SCANNED, default=200),
    limit_param(default=20, maximum=500),
)


# --- GET /pipelines/{name}/candidates/{candidate_id} -----------------------------------------------------


async def candidate_history(request: web.Request) -> web.Response:
    name = convert(NAME, request.match_info["name"])
    candidate = convert(_CANDIDATE, request.match_info["candidate_id"])
    p = parse(request.query, HISTORY_PARAMS)
    since, until = _window(p)
    before = decode_cursor(p["cursor"], "history", _KEY)
    store = reads(request)
    found: list[dict[str, Any]] = []
    scanned: list[Row] = []
    more = True
    while more and len(found) < p["limit"] and len(scanned) < MAX_SCANNED:
        runs = await store.pipeline_run_page(name, since, until, before, request.get(PROJECT),
                                             min(RUNS_PER_READ, MAX_SCANNED - len(scanned)))
        more = len(runs) == min(RUNS_PER_READ, MAX_SCANNED - len(scanned))
        if not runs:
            break
        held = await store.runs_candidates([r["id"] for r in runs], candidate)
        for run in runs:
            scanned.append(run)
            before = [run["started_at"], run["id"]]
            entry = await asyncio.to_thread(_run_history, request, run, held, candidate)
            if entry is not None:
                found.append(entry)
                if len(found) == p["limit"]:
                    more = more or run is not runs[-1]
                    break
    if not scanned and p["cursor"] is None:
        await _exists(store, name, request)
    headers = link_headers(request.rel_url, encode_cursor("history", before)) if more and before else {}
    body = {
        "pipeline": name, "candidate_id": candidate, "window": {"since": since, "until": until},
        "runs": found, "summary": summary(found, scanned, request),
        "next_cursor": headers.get("X-Next-Cursor"),
    }
    return json_ok(body, headers=headers)


def _run_history(request: web.Request, run: Row, held: RunsCandidates, candidate: str) -> dict[str, Any] | None:
    """The candidate's fate in one run, as /runs/{id}/candidates/{cid} gives it; None when the run shows
    no trace of it."""
    steps = project_steps(request, held.steps.get(run["id"], []))
    path = candidate_entries(steps, held.parts.get(run["id"], []), held.decisions.get(run["id"], []), candidate)
    if not path:
        return None
    if all(d["accepted"] is not False for d in path):
        parents = {s["span_id"]: s["parent_span_id"] for s in steps}
        path += not_passed_on(path, parents, project_steps(request, held.wrappers.get(run["id"], [])))
    shown = shown_run_id(request, run["id"], run["trace_id"])
    answer = lineage({"id": shown, "status": run["status"], "started_at": run["started_at"]}, candidate, path)
    answer["path"] = [{"step_id": d["step_id"], "step": d["step"], "type": d["type"], "outcome": d["outcome"],
                       "reason": d["reason"], "rank": d["rank"], "source": d["source"]} for d in path]
    del answer["candidate_id"]
    return answer


def summary(found: list[dict[str, Any]], scanned: list[Row], request: web.Request) -> dict[str, Any]:
    """Pure: what the page's runs say together: how often the candidate appeared, its outcomes, where it
    left, and each time its fate differed from the run before (oldest first)."""
    outcomes = Counter(f["outcome"] for f in found)
    left = Counter((f["left_at"]["step"], f["left_at"]["reason"]) for f in found if f["left_at"])
    changes = []
    previous: dict[str, Any] | None = None
    for f in reversed(found):
        fate = _fate(f)
        if previous is not None and fate != _fate(previous):
            changes.append({"at": f["run"]["started_at"], "run_id": f["run"]["id"], "previous_run_id":
                            previous["run"]["id"], "from": _fate(previous), "to": fate})
        previous = f
    return {
        "runs_read": len(scanned),
        "read_from": scanned[-1]["started_at"] if scanned else None,
        "read_until": scanned[0]["started_at"] if scanned else None,
        "runs_with_candidate": len(found),
        "outcomes": {k: outcomes.get(k, 0) for k in ("kept", "dropped", "unknown")},
        "left_at": [{"step": step, "reason": reason, "runs": n} for (step, reason), n in left.most_common()],
        "changes": changes,
    }


def _fate(entry: dict[str, Any]) -> dict[str, Any]:
    left = entry["left_at"]
    return {"outcome": entry["outcome"], "step": left["step"] if left else None,
            "reason": left["reason"] if left else None}


# --- GET /pipelines/{name}/never-survives ---------------------------------------------------------------


async def never_survives(request: web.Request) -> web.Response:
    name = convert(NAME, request.match_info["name"])
    p = parse(request.query, NEVER_PARAMS)
    since, until = _window(p)
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
        self.dropped: Counter[tuple[str, str, str]] = Counter()
        self.seen: Counter[str] = Counter()
        self.lost: Counter[str] = Counter()  # runs in which it was dropped by some step
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
        drops: set[tuple[str, str, str]] = set()
        for part in parts:
            name = names.get(part.span_id)
            if name is None:
                continue
            ids, codes = part.ids(), part.codes()
            appeared.update(ids)
            reasons = (None, *part.reasons)
            drops.update(zip(compress(ids, codes), repeat(name), map(reasons.__getitem__, compress(codes, codes))))
        self.seen.update(appeared)
        self.lost.update({d[0] for d in drops})
        if self.step is not None or self.reason is not None:
            drops = {d for d in drops if self.step in (None, d[1]) and self.reason in (None, d[2])}
        self.dropped.update(drops)

    def result(self, limit: int) -> dict[str, Any]:
        ranked = sorted(self.dropped.items(), key=lambda item: (-item[1], item[0]))[:limit]
        return {
            "runs_counted": self.runs,
            "runs_not_counted": {"runs": self.skipped, "why": dict(self.skipped_why)} if self.skipped else None,
            "steps_sampled_only": sorted(self.sampled_steps),
            "candidates": [{"candidate_id": cid, "step": step, "reason": reason, "dropped_runs": n,
                            "seen_runs": self.seen[cid], "survived_runs": self.seen[cid] - self.lost[cid],
                            "never_survives": self.seen[cid] == self.lost[cid]}
                           for (cid, step, reason), n in ranked],
        }


async def _exists(store: Reads, name: str, request: web.Request) -> None:
    if not await store.pipeline_exists(name, request.get(PROJECT)):
        raise QueryError(404, f"no run named {name[:64]!r}")


def _window(p: dict[str, Any]) -> tuple[datetime, datetime]:
    until = p["until"] or datetime.now(timezone.utc)
    since = p["since"] or until - DEFAULT_WINDOW
    if since >= until:
        raise QueryError(400, "since must be before until")
    return since, until
