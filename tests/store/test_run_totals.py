"""Run totals kept at write time (runs.step_count, runs.total_cost, steps.run_span) equal the
read-time rule they replace, whatever the delivery: duplicated, shuffled, concurrent, run span
late, a better run span replacing the first, legacy /ingest, the row-by-row fallback, and a
database migrated from before the totals existed.

The read-time rule (what queries computed before migration 0005): a run's steps are its step
rows except the one whose span_id is runs.span_id when runs.source > 0; step_count counts them,
total_cost sums their cost.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from typing import Any

import asyncpg
import pytest
from multidict import MultiDict

from conftest import scratch_database
from helpers import call, db, deliver_chaotically, export_request, get_json, make_span, new_ids, pipeline_spans, post_otlp
from xray_otel.queries.steps import step_query
from xray_otel.store import filters
from xray_otel.store.filters import Page, RunFilters
from xray_otel.mapping.rows import SOURCE_PLACEHOLDER, SOURCE_RUN_SPAN, Batch, RunRow, StepRow
from xray_otel.store.migrate import migrate, migrations
from xray_otel.store.store import Store

MS = 1_000_000

# What the totals must equal, computed from the step rows at read time.
READ_TIME = """
SELECT r.id, r.step_count AS kept_count, r.total_cost AS kept_cost,
       r.steps_run_span IS NOT DISTINCT FROM (CASE WHEN r.source > 0 THEN r.span_id END) AS pointer_ok,
       agg.step_count, agg.total_cost, agg.flags_ok
FROM runs r
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE NOT (r.source > 0 AND s.span_id = r.span_id)) AS step_count,
           coalesce(sum(s.cost::numeric) FILTER (WHERE NOT (r.source > 0 AND s.span_id = r.span_id)), 0) AS total_cost,
           coalesce(bool_and(s.run_span = (r.source > 0 AND s.span_id = r.span_id)), true) AS flags_ok
    FROM steps s WHERE s.run_id = r.id
) agg
"""



def assert_totals_hold(dsn: str, run_ids: list[uuid.UUID] | None = None) -> int:
    """Every run (or the given ones): kept totals == read-time totals, flags and pointer right."""
    where = "" if run_ids is None else " WHERE r.id = ANY($1::uuid[])"
    rows = db(dsn, READ_TIME + where, *([run_ids] if run_ids is not None else []))
    bad = [dict(r) for r in rows if (r["kept_count"], r["kept_cost"]) != (r["step_count"], r["total_cost"])
           or not r["pointer_ok"] or not r["flags_ok"]]
    assert not bad, bad[:5]
    return len(rows)


def run_of(url: str, trace: bytes) -> dict:
    return get_json(f"{url}/runs/{uuid.UUID(bytes=trace)}")


def costed(trace: bytes, sid: int, name: str, cost: float, *, parent: int | None, start: int, **attrs: Any):
    return make_span(trace, sid, name, parent=parent, start=start,
                     attrs={"xray.step.type": "llm", "xray.step.cost": cost, **attrs})


# --- delivery orders -------------------------------------------------------------------------


def test_run_span_after_its_steps(receiver_url: str, pg_dsn: str) -> None:
    trace, base = new_ids()
    t0 = time.time_ns()
    spans = pipeline_spans(trace, base, t0)
    for step in spans[1:]:  # each step alone: the run is a RUNNING placeholder meanwhile
        assert post_otlp(receiver_url, export_request([step])).status == 200
    early = run_of(receiver_url, trace)
    assert (early["status"], early["step_count"]) == ("RUNNING", 4)
    assert early["total_cost"] == pytest.approx(0.003, abs=1e-15)
    assert post_otlp(receiver_url, export_request(spans[:1])).status == 200
    run = run_of(receiver_url, trace)
    assert (run["status"], run["step_count"], run["total_cost"]) == ("COMPLETED", 4, 0.003)
    assert_totals_hold(pg_dsn, [uuid.UUID(bytes=trace)])


@pytest.mark.parametrize("order", ["root_first", "run_span_first", "together"])
def test_better_run_span_replaces_the_first(receiver_url: str, pg_dsn: str, order: str) -> None:
    """A plain root span is the run until an xray.kind=run span arrives; then the root is a step
    (its cost counts) and the run span is not (its cost does not)."""
    trace, base = new_ids()
    t0 = time.time_ns()
    root = costed(trace, base, "POST /select", 0.5, parent=None, start=t0)
    run_span = costed(trace, base + 1, "select", 0.25, parent=base, start=t0 + MS, **{"xray.kind": "run"})
    step = costed(trace, base + 2, "draft", 0.125, parent=base + 1, start=t0 + 2 * MS, **{"xray.kind": "step"})
    deliveries = {"root_first": [[root, step], [run_span]], "run_span_first": [[run_span], [step], [root]],
                  "together": [[step, run_span, root]]}[order]
    for spans in deliveries:
        assert post_otlp(receiver_url, export_request(spans)).status == 200
        assert_totals_hold(pg_dsn, [uuid.UUID(bytes=trace)])
    run = run_of(receiver_url, trace)
    assert (run["name"], run["step_count"], run["total_cost"]) == ("select", 2, 0.625)
    steps = get_json(f"{receiver_url}/runs/{uuid.UUID(bytes=trace)}/steps")
    assert sorted(s["name"] for s in steps) == ["POST /select", "draft"]


def test_root_span_first_then_replaced_counts_root_once(receiver_url: str, pg_dsn: str) -> None:
    """The root span was the run (not counted); re-sending it after the better run span arrived
    must not count it twice now that it is a step."""
    trace, base = new_ids()
    t0 = time.time_ns()
    root = costed(trace, base, "root", 1.0, parent=None, start=t0)
    run_span = costed(trace, base + 1, "run", 2.0, parent=base, start=t0 + MS, **{"xray.kind": "run"})
    for spans in ([root], [run_span], [root], [run_span, root], [root]):
        assert post_otlp(receiver_url, export_request(spans)).status == 200
    run = run_of(receiver_url, trace)
    assert (run["step_count"], run["total_cost"]) == (1, 1.0)
    assert_totals_hold(pg_dsn, [uuid.UUID(bytes=trace)])


@pytest.mark.parametrize("run_known", [False, True])
def test_one_span_twice_in_a_request_with_different_costs_counts_the_stored_copy(
        receiver_url: str, pg_dsn: str, run_known: bool) -> None:
    trace, base = new_ids()
    t0 = time.time_ns()
    if run_known:  # the run row exists already: totals change by what INSERT_STEPS inserts
        assert post_otlp(receiver_url, export_request(pipeline_spans(trace, base, t0)[:1])).status == 200
    first = costed(trace, base + 7, "twice", 0.5, parent=base, start=t0 + MS)
    second = costed(trace, base + 7, "twice", 0.25, parent=base, start=t0 + MS)
    assert post_otlp(receiver_url, export_request([second, first, second])).status == 200
    run = run_of(receiver_url, trace)
    stored = db(pg_dsn, "SELECT cost FROM steps WHERE run_id = $1 AND span_id = $2",
                uuid.UUID(bytes=trace), (base + 7).to_bytes(8, "big").hex())
    assert run["step_count"] == 1 and run["total_cost"] == stored[0]["cost"]
    assert_totals_hold(pg_dsn, [uuid.UUID(bytes=trace)])


def _chaotic_traces(n: int, t0: int) -> list[list]:
    """Traces with run spans, steps, a plain root that a run span replaces, and costs that do not
    add up exactly in binary floating point (0.1 + 0.2 ...), so order would show in a float sum."""
    traces = []
    for i in range(n):
        trace, base = new_ids()
        spans = pipeline_spans(trace, base, t0 + i)
        if i % 3 == 0:  # a plain root above the run span: replaced by it, becomes a step
            root = costed(trace, base + 100, "GET /", 0.3, parent=None, start=t0 + i - MS)
            spans[0].parent_span_id = (base + 100).to_bytes(8, "big")
            spans.append(root)
        spans += [costed(trace, base + 10 + k, f"extra_{k}", c, parent=base, start=t0 + i + (5 + k) * MS,
                         **{"xray.kind": "step"}) for k, c in enumerate((0.1, 0.2, 0.7, 1e-9))]
        traces.append(spans)
    return traces


def test_duplicated_shuffled_concurrent_delivery_gives_in_order_totals(receiver_url: str, pg_dsn: str) -> None:
    rng = random.Random(11)
    t0 = time.time_ns()
    ordered, chaotic = _chaotic_traces(24, t0), _chaotic_traces(24, t0)
    for spans in ordered:
        assert post_otlp(receiver_url, export_request(spans)).status == 200
    deliver_chaotically(receiver_url, [s for spans in chaotic for s in spans], rng, batch=5)
    for a, b in zip(ordered, chaotic):
        ra, rb = run_of(receiver_url, a[0].trace_id), run_of(receiver_url, b[0].trace_id)
        assert (rb["step_count"], rb["total_cost"], rb["name"]) == (ra["step_count"], ra["total_cost"], ra["name"])
    ids = [uuid.UUID(bytes=t[0].trace_id) for t in ordered + chaotic]
    assert assert_totals_hold(pg_dsn, ids) == len(ids)


# --- legacy /ingest ----------------------------------------------------------------------------


def _post_events(url: str, events: list) -> int:
    reply = call("POST", url + "/ingest", json.dumps({"events": events}).encode(), {"Content-Type": "application/json"})
    assert reply.status == 200, reply.body
    return reply.status


def test_legacy_ingest_totals(receiver_url: str, pg_dsn: str) -> None:
    run_id = str(uuid.uuid4())
    run = {"type": "run_complete", "data": {"id": run_id, "name": "legacy_totals",
                                            "started_at": "2026-01-02T10:00:00Z", "completed_at": "2026-01-02T10:00:09Z"}}
    steps = [{"type": "step_complete", "data": {"id": str(uuid.uuid4()), "run_id": run_id, "name": f"s{i}",
                                                "cost": cost, "started_at": f"2026-01-02T10:00:0{i}Z"}}
             for i, cost in enumerate((0.1, 0.2, 0.25))]
    _post_events(receiver_url, steps[:2])
    early = get_json(f"{receiver_url}/runs/{run_id}")
    assert (early["step_count"], early["total_cost"]) == (2, 0.3)  # exact: summed as numeric, not float
    _post_events(receiver_url, [run])           # the run alone: no step row, totals unchanged
    _post_events(receiver_url, [*steps, run])   # re-sent with one new step
    got = get_json(f"{receiver_url}/runs/{run_id}")
    assert (got["status"], got["step_count"], got["total_cost"]) == ("COMPLETED", 3, 0.55)
    assert_totals_hold(pg_dsn, [uuid.UUID(run_id)])


def test_legacy_step_with_the_run_id_is_the_run_span_once_the_run_arrives(receiver_url: str, pg_dsn: str) -> None:
    """A legacy run's span_id is its own id; a step sent with that same id was counted as a step
    until the run event made it the run's own row (the read-time rule leaves it out)."""
    run_id = str(uuid.uuid4())
    same = {"type": "step_complete", "data": {"id": run_id, "run_id": run_id, "name": "whole", "cost": 0.5,
                                              "started_at": "2026-01-02T10:00:00Z"}}
    other = {"type": "step_complete", "data": {"id": str(uuid.uuid4()), "run_id": run_id, "name": "part",
                                               "cost": 0.25, "started_at": "2026-01-02T10:00:01Z"}}
    _post_events(receiver_url, [same, other])
    assert get_json(f"{receiver_url}/runs/{run_id}")["step_count"] == 2
    _post_events(receiver_url, [{"type": "run_complete", "data": {"id": run_id, "name": "legacy_self",
                                                                   "started_at": "2026-01-02T10:00:00Z"}}])
    got = get_json(f"{receiver_url}/runs/{run_id}")
    assert (got["step_count"], got["total_cost"]) == (1, 0.25)
    assert_totals_hold(pg_dsn, [uuid.UUID(run_id)])


# --- the row-by-row fallback -------------------------------------------------------------------


def _step(run_id: uuid.UUID, span: str, cost: float, inputs: str | None = None) -> StepRow:
    at = time.time_ns() // 1000
    return StepRow(run_id, span, None, span, "llm", "COMPLETED", inputs, None, None, None, cost, None, None, None,
                   None, None, None, None, at, at, None, "svc", "{}", "{}", "{}", "explicit")


def test_row_by_row_fallback_keeps_totals(pg_dsn: str) -> None:
    """A batch PostgreSQL refuses (one step's inputs are not JSON) is stored row by row: the good
    rows count, the refused one does not, and a run span that changes in that batch is honoured."""
    at = time.time_ns() // 1000
    a, b = uuid.uuid4(), uuid.uuid4()
    batch = Batch()
    batch.add_run(RunRow(a, SOURCE_RUN_SPAN, "a-run", "fallback", "COMPLETED", "svc", "{}", None, None, None, at, at))
    batch.add_run(RunRow(b, SOURCE_PLACEHOLDER, "b1", None, "RUNNING", "svc", "{}", None, None, None, at, None))
    batch.steps += [_step(a, "a-run", 4.0), _step(a, "a1", 0.5), _step(a, "a2", 0.25, inputs="{not json"),
                    _step(b, "b1", 0.125), _step(b, "b1", 0.125)]

    async def go() -> tuple[int, list[str]]:
        store = await Store.open(pg_dsn, pool_size=1)
        try:
            return await store.write(batch)
        finally:
            await store.close()

    refused, errors = asyncio.run(go())
    assert refused == 1 and errors
    rows = {r["id"]: r for r in db(pg_dsn, "SELECT id, step_count, total_cost FROM runs WHERE id = ANY($1::uuid[])",
                                   [a, b])}
    assert (rows[a]["step_count"], float(rows[a]["total_cost"])) == (1, 0.5)
    assert (rows[b]["step_count"], float(rows[b]["total_cost"])) == (1, 0.125)
    assert_totals_hold(pg_dsn, [a, b])


def test_fallback_and_batch_writers_lock_runs_in_one_order(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writers on both paths, concurrently, over the same runs (some new, some stored): no deadlock.

    With the retry switched off, a lock-order cycle between the batch path (new runs, then stored
    ones) and the row-by-row fallback would surface as DeadlockDetectedError (it did: 9 in 450
    batches when the fallback locked run by run); and the totals still hold."""
    from xray_otel.store import store as store_module

    monkeypatch.setattr(store_module, "_RETRY_ONCE", store_module._STALE_CONNECTION)
    rng = random.Random(7)
    at = time.time_ns() // 1000
    runs = [uuid.uuid4() for _ in range(12)]
    seen: list[uuid.UUID] = []

    def batch() -> Batch:
        b = Batch()
        for run_id in rng.sample(runs, rng.randint(1, 6)):
            b.add_run(RunRow(run_id, SOURCE_RUN_SPAN, "s1", "order", "COMPLETED", "svc", "{}", None, None, None, at, at))
            b.steps += [_step(run_id, f"s{rng.randrange(20)}", 0.25) for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.3:  # refused as a batch: this one takes the row-by-row path
            b.steps.append(_step(rng.choice(list(b.runs)), f"bad{rng.randrange(10**9)}", 1.0, inputs="{not json"))
        return b

    async def go() -> None:
        store = await Store.open(pg_dsn, pool_size=16)
        try:
            for _ in range(15):
                seen.extend(runs)
                runs[:] = rng.sample(runs, 6) + [uuid.uuid4() for _ in range(6)]
                await asyncio.gather(*(store.write(batch()) for _ in range(30)))
        finally:
            await store.close()

    asyncio.run(go())
    assert_totals_hold(pg_dsn, list(set(seen + runs)))


# --- migration 0005 backfills what was stored before it -------------------------------------


def test_migration_backfills_totals_and_flags(pg_dsn: str) -> None:
    async def go() -> None:
        async with scratch_database(pg_dsn) as conn:
            await conn.execute("CREATE TABLE xray_schema_version (version integer PRIMARY KEY, name text NOT NULL,"
                               " applied_at timestamptz NOT NULL DEFAULT now())")
            for version, file, text in migrations():
                if version < 5:
                    await conn.execute(text)
                    await conn.execute("INSERT INTO xray_schema_version (version, name) VALUES ($1, $2)",
                                       version, file)
            r1, r2, r3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            await conn.execute("""
                INSERT INTO runs (id, source, span_id, name, status, started_at) VALUES
                    ($1, 2, 'run', 'a', 'COMPLETED', now()), ($2, 0, 's1', NULL, 'RUNNING', now()),
                    ($3, 1, 'gone', 'c', 'COMPLETED', now())""", r1, r2, r3)
            await conn.execute("""
                INSERT INTO steps (run_id, span_id, name, type, status, cost) VALUES
                    ($1, 'run', 'run', 'logic', 'COMPLETED', 9), ($1, 'x', 'x', 'llm', 'COMPLETED', 0.1),
                    ($1, 'y', 'y', 'llm', 'COMPLETED', 0.2), ($2, 's1', 's1', 'llm', 'COMPLETED', 0.5),
                    ($3, 'z', 'z', 'llm', 'COMPLETED', 0.75)""", r1, r2, r3)
            assert await migrate(conn) >= 5
            got = {r["id"]: (r["step_count"], r["total_cost"], r["steps_run_span"]) for r in
                   await conn.fetch("SELECT id, step_count, total_cost::text, steps_run_span FROM runs")}
            assert got == {r1: (2, "0.3", "run"), r2: (1, "0.5", None), r3: (1, "0.75", "gone")}
            flagged = await conn.fetch("SELECT run_id, span_id FROM steps WHERE run_span")
            assert [(r["run_id"], r["span_id"]) for r in flagged] == [(r1, "run")]

    asyncio.run(go())


# --- endpoints equal what a read-time aggregate computes ---------------------------------------


@pytest.fixture(scope="module")
def costed_runs(receiver_url: str) -> str:
    """A pipeline of its own: runs with varied costs and step counts, some with a replaced root."""
    name = f"totals_{uuid.uuid4().hex[:8]}"
    rng = random.Random(3)
    t0 = time.time_ns() - 3600 * 10**9
    spans = []
    for i in range(40):
        trace, base = new_ids()
        start = t0 + i * 10**9
        run_span = make_span(trace, base, name, attrs={"xray.kind": "run", "xray.step.cost": 100.0},
                             start=start, duration_ns=rng.randrange(1, 500) * MS)
        if i % 4 == 0:
            spans.append(costed(trace, base + 50, "GET /", 0.01 * i, parent=None, start=start - MS))
            run_span.parent_span_id = (base + 50).to_bytes(8, "big")
        spans.append(run_span)
        for k in range(rng.randrange(0, 6)):
            spans.append(make_span(trace, base + 1 + k, f"step_{k}", parent=base, start=start + (k + 1) * MS,
                                   duration_ns=rng.randrange(1, 900) * MS,
                                   attrs={"xray.kind": "step", "xray.step.type": "llm",
                                          "xray.step.cost": round(rng.uniform(0, 0.05), 5)}))
    rng.shuffle(spans)
    for i in range(0, len(spans), 9):
        assert post_otlp(receiver_url, export_request(spans[i:i + 9])).status == 200
    return name


def _expected_runs(dsn: str, name: str) -> list[dict]:
    rows = db(dsn, READ_TIME + " WHERE r.name = $1", name)
    return [{"id": str(r["id"]), "step_count": r["step_count"], "total_cost": float(r["total_cost"])} for r in rows]


def _all_pages(url: str) -> list[dict]:
    items = []
    while True:
        reply = call("GET", url)
        assert reply.status == 200, reply.body
        items += reply.json()
        cursor = reply.headers.get("X-Next-Cursor")
        if not cursor:
            return items
        url = url.split("&cursor=")[0] + "&cursor=" + cursor


@pytest.mark.parametrize("sort", ["-cost", "cost", "-step_count", "step_count"])
def test_runs_sorted_by_totals_equal_a_read_time_aggregate(receiver_url: str, pg_dsn: str, costed_runs: str,
                                                           sort: str) -> None:
    expected = _expected_runs(pg_dsn, costed_runs)
    key = "total_cost" if sort.lstrip("-") == "cost" else "step_count"
    desc = sort.startswith("-")
    expected.sort(key=lambda r: (r[key], uuid.UUID(r["id"])), reverse=desc)
    got = _all_pages(f"{receiver_url}/runs?name={costed_runs}&sort={sort}&limit=7")
    assert [(r["id"], r["step_count"], r["total_cost"]) for r in got] == \
           [(r["id"], r["step_count"], r["total_cost"]) for r in expected]


def test_runs_cost_bounds_equal_a_read_time_aggregate(receiver_url: str, pg_dsn: str, costed_runs: str) -> None:
    expected = _expected_runs(pg_dsn, costed_runs)
    costs = sorted(r["total_cost"] for r in expected)
    low, high = costs[len(costs) // 4], costs[3 * len(costs) // 4]
    got = get_json(f"{receiver_url}/runs?name={costed_runs}&min_cost={low}&max_cost={high}&limit=1000")
    assert sorted(r["id"] for r in got) == sorted(r["id"] for r in expected if low <= r["total_cost"] <= high)
    assert all(r["total_cost"] < 100 for r in got)  # the run span's own cost is never counted


def test_pipeline_figures_equal_a_read_time_aggregate(receiver_url: str, pg_dsn: str, costed_runs: str) -> None:
    expected = _expected_runs(pg_dsn, costed_runs)
    got = get_json(f"{receiver_url}/pipelines/{costed_runs}?since=1d")
    assert got["run_count"] == len(expected)
    assert got["avg_cost"] == pytest.approx(sum(r["total_cost"] for r in expected) / len(expected), rel=1e-12)
    durations = sorted(r["duration"] for r in db(pg_dsn, """
        SELECT extract(epoch FROM completed_at - started_at)::float8 * 1000 AS duration FROM runs WHERE name = $1""",
        costed_runs))
    assert got["duration_ms"]["p50"] == pytest.approx(
        (durations[19] + durations[20]) / 2, abs=1e-3)  # percentile_cont of 40 values
    steps = {s["name"]: s for s in got["steps"]}
    assert costed_runs not in steps  # the run spans are not steps
    expected_steps = db(pg_dsn, """
        SELECT s.name, count(*) AS n FROM steps s JOIN runs r ON r.id = s.run_id
        WHERE r.name = $1 AND NOT (r.source > 0 AND s.span_id = r.span_id) GROUP BY s.name""", costed_runs)
    assert {r["name"]: r["n"] for r in expected_steps} == {n: s["count"] for n, s in steps.items()}
    listed = {p["name"]: p for p in get_json(f"{receiver_url}/pipelines?since=1d&limit=1000")["pipelines"]}
    assert listed[costed_runs]["avg_cost"] == got["avg_cost"]


def test_steps_by_duration_equal_a_read_time_listing(receiver_url: str, pg_dsn: str, costed_runs: str) -> None:
    rows = db(pg_dsn, """
        SELECT s.run_id, s.span_id FROM steps s JOIN runs r ON r.id = s.run_id
        WHERE r.name = $1 AND NOT (r.source > 0 AND s.span_id = r.span_id)
          AND s.started_at IS NOT NULL AND s.completed_at IS NOT NULL
        ORDER BY s.completed_at - s.started_at DESC, s.run_id DESC, s.span_id DESC""", costed_runs)
    got = _all_pages(f"{receiver_url}/steps?run_name={costed_runs}&sort=-duration&limit=6")
    assert [(h["run_id"], h["id"]) for h in got] == [(str(r["run_id"]), r["span_id"]) for r in rows]


def test_every_stored_run_keeps_its_totals(pg_dsn: str) -> None:
    """Whatever the other test modules sent through this database so far, every run holds."""
    assert assert_totals_hold(pg_dsn) > 0


# --- the indexes migration 0005/0006 made are the ones the queries can use ----------------------


@pytest.mark.parametrize("statement, hide, index", [
    (lambda: filters.search_steps(*step_query(MultiDict(sort="-duration"))), None, "steps_duration_idx"),
    # steps_time_idx serves the window too, and on some statistics the planner prefers it; the
    # window must be in the index condition, not only the type (the index's first column)
    (lambda: filters.search_steps(*step_query(MultiDict(type="llm", since="1d", sort="-cost"))), "steps_time_idx",
     "Index Cond: ((type = 'llm'::text) AND (COALESCE(started_at, created_at) >="),
    (lambda: filters.list_runs(RunFilters(), Page("-cost", None, 10)), None, "runs_cost_idx"),
    (lambda: filters.list_runs(RunFilters(), Page("-step_count", None, 10)), None, "runs_step_count_idx"),
])
def test_queries_match_their_index_expressions(receiver_url: str, pg_dsn: str, statement: Any, hide: str | None,
                                               index: str) -> None:
    """With sequential scans and sorts priced out, a query whose expression no longer matches its
    index (spelt differently in store/read_sql.py and the migration) would show a Sort, not the index."""
    query, values = statement()

    async def plan() -> str:
        conn = await asyncpg.connect(pg_dsn)
        try:
            # Without the index ``hide`` (DROP INDEX in a transaction is rolled back with it).
            transaction = conn.transaction()
            await transaction.start()
            if hide:
                await conn.execute(f"DROP INDEX {hide}")
            await conn.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off;"
                               " SET LOCAL enable_bitmapscan = off")
            text = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + query, *values))
            await transaction.rollback()
            return text
        finally:
            await conn.close()

    text = asyncio.run(plan())
    assert index in text, text
