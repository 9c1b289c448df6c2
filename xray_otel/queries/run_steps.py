"""GET /runs/{id}/steps: a run's steps in tree order, a page at a time, streamed.

A run may hold 100,000 steps and megabytes each: the tree is ordered from the steps' ids alone (and
kept for the next page), and a page reads and encodes only its own steps.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from aiohttp import web

from ..store.reads import Row
from ..web import PROJECT, json_stream
from .analysis import tree_order
from .common import QueryError, find_run, project_steps, reads, shown_run_id, step
from .params import CURSOR, decode_cursor, encode_cursor, limit_param, link_headers, parse

PARAMS = (limit_param(default=1000, maximum=1000), CURSOR)


async def get_steps(request: web.Request) -> web.StreamResponse:
    """A page of a run's steps in tree order, streamed; the next page in Link / X-Next-Cursor."""
    p = parse(request.query, PARAMS)
    row, _ = await find_run(request, request.match_info["run_id"])  # 404 for an unknown run, not []
    shown = shown_run_id(request, row["id"], row["trace_id"])
    order = await _step_tree(request, row)
    start = _tree_position(order, decode_cursor(p["cursor"], "tree", (int, str)))
    page = order[start:start + p["limit"]]
    rows = await reads(request).steps_by_id(row["id"], [span for span, _ in page])
    by_id = {r["span_id"]: r for r in rows}
    headers = {}
    if start + len(page) < len(order):
        headers = dict(link_headers(request.rel_url, encode_cursor("tree", [start + len(page), page[-1][0]])))
    return await json_stream(request, ({**step(by_id[span], shown), "depth": depth}
                                       for span, depth in page if span in by_id), headers)


# Step trees of recent runs, by what fixes a run's step rows (id, count, run span) and the reader's
# project: paging a large run orders its tree once, not once per page.
_TREES: OrderedDict[tuple[Any, ...], list[tuple[str, int]]] = OrderedDict()
_TREES_KEPT = 8


async def _step_tree(request: web.Request, run: Row) -> list[tuple[str, int]]:
    """(span id, depth) of the run's steps in tree order, as this request's key may see them."""
    key = (run["id"], run["step_count"], run["steps_run_span"], request.get(PROJECT))
    order = _TREES.get(key)
    if order is None:
        rows = project_steps(request, await reads(request).step_tree(run["id"]))
        order = await asyncio.to_thread(
            lambda: [(s["id"], s["depth"]) for s in tree_order(
                [{"id": r["span_id"], "parent_id": r["parent_span_id"]} for r in rows])])
        _TREES[key] = order
        while len(_TREES) > _TREES_KEPT:
            _TREES.popitem(last=False)
    _TREES.move_to_end(key)
    return order


def _tree_position(order: list[tuple[str, int]], after: list[Any] | None) -> int:
    """Where the page after a cursor starts. Steps that arrived since the last page can move the one the
    cursor names: the page starts after wherever it is now."""
    if after is None:
        return 0
    position, span = after
    if 0 < position <= len(order) and order[position - 1][0] == span:
        return position
    for index, (known, _) in enumerate(order):
        if known == span:
            return index + 1
    raise QueryError(400, "the cursor names a step this run does not have: start again without it")
