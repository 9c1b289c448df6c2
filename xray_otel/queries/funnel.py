"""GET /analyze/{id}: a run's decision funnel (analysis.py), streamed."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..store.outcomes import state
from ..web import json_stream_field
from .analysis import analyze, tree_order
from .common import fetch_run, project_steps, reads, step


async def get_analysis(request: web.Request) -> web.StreamResponse:
    run, stored_id = await fetch_run(request, request.match_info["run_id"])
    rows = project_steps(request, await reads(request).run_step_figures(stored_id))
    outcomes = {r["span_id"]: state(r) for r in await reads(request).outcome_states(stored_id)}
    # A run of 100,000 steps takes a while to order (in a thread, so the loop keeps answering) and to
    # encode (streamed a funnel entry at a time).
    answer = await asyncio.to_thread(lambda: analyze(run, tree_order([step(r, run["id"]) for r in rows]), outcomes))
    return await json_stream_field(request, answer, "funnel")
