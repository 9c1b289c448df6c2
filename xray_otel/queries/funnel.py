"""GET /analyze/{id}: a run's decision funnels (analysis.py), streamed."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiohttp import web

from ..store.outcomes import COMPLETE, state
from ..store.reads import Row
from ..web import json_stream_field
from .analysis import analyze, tree_order
from .common import fetch_run, project_steps, reads, step
from .streams import IdSample

# Steps whose candidate ids are compared to tell streams apart (streams.py), the first in time order: each
# costs its first stored part (at most 20,000 ids, ~1 ms to unpack); later steps are placed by their counts.
ID_STEPS = 200


async def get_analysis(request: web.Request) -> web.StreamResponse:
    run, stored_id = await fetch_run(request, request.match_info["run_id"])
    rows = project_steps(request, await reads(request).run_step_figures(stored_id))
    return await json_stream_field(request, await run_analysis(request, run, stored_id, rows), "funnel")


async def run_analysis(request: web.Request, run: dict[str, Any], stored_id: uuid.UUID,
                       rows: list[Row]) -> dict[str, Any]:
    """analysis.analyze over a run's step rows, with what their candidate outcomes say: whether whole, and
    a sample of their ids to group the steps into streams by."""
    store = reads(request)
    summaries = await store.outcome_states(stored_id)
    outcomes = {r["span_id"]: state(r) for r in summaries}
    whole = {r["span_id"] for r in summaries if r["parts"] == 1 and outcomes[r["span_id"]][0] == COMPLETE}
    ids = {p.span_id: IdSample(p.ids, p.codes, p.span_id in whole)
           for p in await store.first_outcome_parts(stored_id, ID_STEPS)}
    # A run of 100,000 steps takes a while to order (in a thread, so the loop keeps answering) and to
    # encode (streamed a funnel entry at a time).
    return await asyncio.to_thread(lambda: analyze(run, tree_order([step(r, run["id"]) for r in rows]), outcomes, ids))
