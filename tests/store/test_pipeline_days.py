"""/pipelines/{name} from per-day summaries (migration 0007) equals the read-time aggregate it
replaces, within the histograms' stated error, and stays equal as late spans change old days.

The reference is what the endpoint computed from the step rows before the summaries existed.
Data goes in over OTLP/HTTP; figures come back over HTTP from the running receiver.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest

from conftest import scratch_database
from helpers import call, db, export_request, get_json, make_span, new_ids, post_otlp
from xray_otel.store import pipeline_days, pipeline_stats
from xray_otel.store.pipeline_stats import (DROP_SCALE, GAMMA, drop_key_sql, drop_value, duration_key_sql,
                                            duration_value, histogram, percentile)
from xray_otel.store.migrate import migrate
from xray_otel.store.retention import sweep
from xray_otel.store.store import Store

MS = 1_000_000
DAY = timedelta(days=1)
DROP_ERROR = 0.5 / DROP_SCALE  # absolute, on a drop rate
DURATION_ERROR = (GAMMA - 1) / (GAMMA + 1)  # relative, on a duration

REFERENCE_STEPS = """
SELECT s.name, mode() WITHIN GROUP (ORDER BY s.type) AS type, count(*) AS count,
       count(*) FILTER (WHERE s.status = 'FAILED' OR s.error IS NOT NULL) AS failed,
       avg(d.rate) AS avg_drop_rate, percentile_cont(0.95) WITHIN GROUP (ORDER BY d.rate) AS p95_drop_rate,
       avg(s.cost) AS avg_cost,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY d.ms) AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY d.ms) AS p95_ms,
       avg(extract(epoch FROM s.started_at - r.started_at)) AS offset_s
FROM runs r
JOIN steps s ON s.run_id = r.id AND NOT (r.source > 0 AND s.span_id = r.span_id)
CROSS JOIN LATERAL (SELECT (s.input_count::float8 - s.output_count) / nullif(s.input_count, 0) AS rate,
                           extract(epoch FROM s.completed_at - s.started_at)::float8 * 1000 AS ms) d
WHERE r.name = $1 AND r.started_at >= $2 AND r.started_at < $3
GROUP BY s.name
ORDER BY offset_s NULLS LAST, s.name
"""
REFERENCE_REASONS = """
SELECT s.name, j.key AS reason, sum(j.value::numeric)::float8 AS count
FROM runs r
JOIN steps s ON s.run_id = r.id AND NOT (r.source > 0 AND s.span_id = r.span_id)
CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(s.rejections) = 'object' THEN s.rejections ELSE '{}' END) j
WHERE r.name = $1 AND r.started_at >= $2 AND r.started_at < $3 AND jsonb_typeof(j.value) = 'number'
GROUP BY 1, 2
ORDER BY 1, 3 DESC, 2
"""



def ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1e9)


def send_run(url: str, name: str, start: datetime, rng: random.Random, *, trace: bytes | None = None,
             base: int | None = None, with_run_span: bool = True, steps: int = 4) -> tuple[bytes, int]:
    """A run of ``name`` at ``start``: retrieve, a filter and a ranker with funnel figures and
    reasons, and an LLM call that sometimes fails; durations spread over four decades."""
    if trace is None:
        trace, base = new_ids()
    t0 = ns(start)
    n = rng.randrange(50, 5000)
    kept = rng.randrange(0, n + 1)
    spans = [
        make_span(trace, base + 1, "retrieve", parent=base, start=t0 + MS, duration_ns=rng.randrange(1, 10_000) * 1000,
                  attrs={"xray.kind": "step", "xray.step.type": "retrieval", "xray.step.output_count": n}),
        make_span(trace, base + 2, "filter_price", parent=base, start=t0 + 2 * MS,
                  duration_ns=rng.randrange(1, 5_000_000) * 1000,
                  attrs={"xray.kind": "step", "xray.step.type": "filter", "xray.step.input_count": n,
                         "xray.step.output_count": kept,
                         "xray.step.rejections": {rng.choice(("price_too_high", "out_of_stock", "banned")): n - kept,
                                                  "price_too_low": rng.randrange(0, 3)}}),
        make_span(trace, base + 3, "call_llm", parent=base, start=t0 + 3 * MS, duration_ns=rng.randrange(0, 3_000) * MS,
                  attrs={"xray.kind": "step", "xray.step.type": "llm",
                         "xray.step.cost": round(rng.uniform(0, 0.05), 6)},
                  error="timeout" if rng.random() < 0.1 else None),
        make_span(trace, base + 4, "rank", parent=base, start=t0 + 4 * MS, duration_ns=rng.randrange(1, 50) * MS,
                  attrs={"xray.kind": "step", "xray.step.type": "rank", "xray.step.input_count": max(kept, 1),
                         "xray.step.output_count": rng.choice((1, max(kept, 1) + 3))}),  # may add: drop < 0
    ][:steps]
    if with_run_span:
        spans.insert(0, make_span(trace, base, name, attrs={"xray.kind": "run"}, start=t0, duration_ns=5000 * MS))
    assert post_otlp(url, export_request(spans)).status == 200
    return trace, base


def pipeline(url: str, name: str, since: datetime, until: datetime) -> dict:
    return get_json(f"{url}/pipelines/{name}?since={since.isoformat()}&until={until.isoformat()}".replace("+", "%2B"))


def assert_matches_reference(dsn: str, got: dict, name: str, since: datetime, until: datetime) -> None:
    expected = db(dsn, REFERENCE_STEPS, name, since, until)
    reasons: dict[str, list[dict]] = {}
    for r in db(dsn, REFERENCE_REASONS, name, since, until):
        reasons.setdefault(r["name"], []).append({"reason": r["reason"], "count": r["count"]})
    assert [s["name"] for s in got["steps"]] == [e["name"] for e in expected]
    for step, want in zip(got["steps"], expected):
        assert (step["type"], step["count"], step["failed_count"]) == (want["type"], want["count"], want["failed"])
        assert step["avg_cost"] == pytest.approx(want["avg_cost"], rel=1e-12, abs=1e-15)
        assert step["top_rejections"] == reasons.get(want["name"], [])[:5]
        if want["p95_drop_rate"] is None:
            assert step["avg_drop_rate"] is None and step["p95_drop_rate"] is None
        else:
            assert step["avg_drop_rate"] == pytest.approx(want["avg_drop_rate"], abs=1e-6)
            assert abs(step["p95_drop_rate"] - want["p95_drop_rate"]) <= DROP_ERROR + 1e-6
        for q in ("p50", "p95"):
            exact, got_ms = want[f"{q}_ms"], step["duration_ms"][q]
            assert got_ms == exact if exact is None else abs(got_ms - exact) <= DURATION_ERROR * abs(exact) + 1e-3


@pytest.fixture(scope="module")
def spread(receiver_url: str) -> tuple[str, datetime, datetime]:
    """A pipeline with 120 runs over the last four and a half days (so a 4-day window has whole
    days and a part of a day at each end)."""
    name, rng = f"days_{uuid.uuid4().hex[:8]}", random.Random(7)
    until = datetime.now(timezone.utc).replace(microsecond=0)
    for i in range(120):
        send_run(receiver_url, name, until - timedelta(seconds=rng.uniform(60, 4.5 * 86_400)), rng)
    return name, until - 4 * DAY, until


def stored_days(dsn: str, name: str) -> list[Any]:
    return [r["day"] for r in db(dsn, "SELECT day FROM pipeline_days WHERE name = $1 ORDER BY day", name)]


def stored_eventually(dsn: str, name: str, days: list[Any]) -> None:
    """The background refresher stores what a read found missing or out of date soon after the
    read answers: wait until exactly ``days`` are stored and none of them is out of date."""
    def settled() -> bool:
        if stored_days(dsn, name) != days:
            return False
        start = datetime.combine(days[0], datetime.min.time(), timezone.utc) if days else None
        return not days or not db(dsn, pipeline_days.STALE_PIPELINE_DAYS, name, start,
                                  datetime.combine(days[-1], datetime.min.time(), timezone.utc) + DAY)

    deadline = time.monotonic() + 30
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored_days(dsn, name) == days and settled()


def test_figures_equal_the_read_time_aggregate(receiver_url: str, pg_dsn: str, spread: tuple) -> None:
    name, since, until = spread
    got = pipeline(receiver_url, name, since, until)  # from the rows: no day is stored yet
    assert_matches_reference(pg_dsn, got, name, since, until)
    first, last = pipeline_days.whole_days(since, until)
    stored_eventually(pg_dsn, name, [(first + i * DAY).date() for i in range((last - first).days)])
    again = pipeline(receiver_url, name, since, until)  # from the stored days this time
    assert again == got
    within_a_day = pipeline(receiver_url, name, until - timedelta(hours=20), until)  # no whole day at all
    assert_matches_reference(pg_dsn, within_a_day, name, until - timedelta(hours=20), until)


def test_late_spans_bring_a_stored_day_up_to_date(receiver_url: str, pg_dsn: str) -> None:
    name, rng = f"late_{uuid.uuid4().hex[:8]}", random.Random(11)
    until = datetime.now(timezone.utc).replace(microsecond=0)
    since = until - 3 * DAY
    old = pipeline_days.whole_days(since, until)[0] + timedelta(hours=3)  # its runs stay on one day
    runs = [send_run(receiver_url, name, old + timedelta(minutes=i), rng, steps=2) for i in range(6)]
    assert_matches_reference(pg_dsn, pipeline(receiver_url, name, since, until), name, since, until)
    stored_eventually(pg_dsn, name, [old.date()])
    orphan = send_run(receiver_url, name, old + timedelta(hours=2), rng, with_run_span=False)  # no name yet
    changes = [
        lambda: send_run(receiver_url, name, old, rng, trace=runs[0][0], base=runs[0][1], with_run_span=False),
        lambda: send_run(receiver_url, name, old + timedelta(hours=1), rng),  # a new run on a stored day
        lambda: send_run(receiver_url, name, old, rng, trace=orphan[0], base=orphan[1]),  # its run span, late
    ]
    for change in changes:
        before = pipeline(receiver_url, name, since, until)
        stored_eventually(pg_dsn, name, [old.date()])
        change()
        after = pipeline(receiver_url, name, since, until)
        assert after != before
        assert_matches_reference(pg_dsn, after, name, since, until)


def test_stored_days_are_read_and_only_changed_days_recomputed(receiver_url: str, pg_dsn: str) -> None:
    name, rng = f"cache_{uuid.uuid4().hex[:8]}", random.Random(5)
    until = datetime.now(timezone.utc).replace(microsecond=0)
    since = until - 4 * DAY
    first, _ = pipeline_days.whole_days(since, until)
    day_one, day_two = first + timedelta(hours=3), first + DAY + timedelta(hours=3)
    trace, base = send_run(receiver_url, name, day_one, rng, steps=2)
    send_run(receiver_url, name, day_two, rng, steps=2)
    counts = {s["name"]: s["count"] for s in pipeline(receiver_url, name, since, until)["steps"]}
    assert counts == {"retrieve": 2, "filter_price": 2}
    stored_eventually(pg_dsn, name, [day_one.date(), day_two.date()])
    # Change the stored summaries behind the endpoint's back: it serves them as they are...
    db(pg_dsn, "UPDATE pipeline_step_days SET count = count + 100 WHERE name = $1", name)
    assert {s["name"]: s["count"] for s in pipeline(receiver_url, name, since, until)["steps"]} == \
        {"retrieve": 202, "filter_price": 202}
    # ...until the runs of a day change: that day is read from the rows and stored again, the
    # other is left alone.
    send_run(receiver_url, name, day_one, rng, trace=trace, base=base, with_run_span=False)
    for _ in range(2):
        got = {s["name"]: s["count"] for s in pipeline(receiver_url, name, since, until)["steps"]}
        assert got == {"retrieve": 102, "filter_price": 102, "call_llm": 1, "rank": 1}
        stored_eventually(pg_dsn, name, [day_one.date(), day_two.date()])
    assert db(pg_dsn, "SELECT day, count FROM pipeline_step_days WHERE name = $1 AND step = 'retrieve' ORDER BY day",
              name) == [(day_one.date(), 1), (day_two.date(), 101)]


def test_a_role_that_may_read_only_runs_and_steps_is_answered_from_the_rows(pg_dsn: str, receiver_url: str) -> None:
    """A reader role granted before migration 0007 (GRANT SELECT ON ALL TABLES covers the tables
    that existed then)."""
    name, rng = f"ro_{uuid.uuid4().hex[:8]}", random.Random(3)
    until = datetime.now(timezone.utc).replace(microsecond=0)
    since = until - 3 * DAY
    for i in range(10):
        send_run(receiver_url, name, until - timedelta(hours=7 * i + 1), rng)
    role = f"reader_{uuid.uuid4().hex[:8]}"
    db(pg_dsn, f"CREATE ROLE {role} LOGIN PASSWORD 'x'")
    db(pg_dsn, f"GRANT SELECT ON runs, steps TO {role}")

    async def read() -> tuple[list[dict], list]:
        conn = await asyncpg.connect(pg_dsn, user=role, password="x")
        try:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                rows, stale = await pipeline_days.step_figures(conn, name, since, until, 5, 500)
            return [pipeline_stats.step_figures(row) for row in rows], stale
        finally:
            await conn.close()

    steps, stale = asyncio.run(read())
    assert stale == [] and stored_days(pg_dsn, name) == []
    assert_matches_reference(pg_dsn, {"steps": steps}, name, since, until)


def test_reads_never_wait_for_a_refresh(receiver_url: str, pg_dsn: str) -> None:
    """While another process holds the pipeline's refresh lock, reads answer from the rows and
    leave the storing to it."""
    name, rng = f"held_{uuid.uuid4().hex[:8]}", random.Random(12)
    until = datetime.now(timezone.utc).replace(microsecond=0)
    since = until - 4 * DAY
    for i in range(8):
        send_run(receiver_url, name, until - timedelta(hours=11 * i + 1), rng)

    async def with_lock_held() -> dict:
        holder = await asyncpg.connect(pg_dsn)
        try:
            async with holder.transaction():
                assert await holder.fetchval(pipeline_days.TRY_LOCK_PIPELINE, name)
                got = await asyncio.to_thread(pipeline, receiver_url, name, since, until)
                await asyncio.sleep(0.5)  # the refresher's turn came and went
                assert await asyncio.to_thread(stored_days, pg_dsn, name) == []
                return got
        finally:
            await holder.close()

    assert_matches_reference(pg_dsn, asyncio.run(with_lock_held()), name, since, until)
    pipeline(receiver_url, name, since, until)  # the lock is free: this read's refresh stores the days
    first, last = pipeline_days.whole_days(since, until)
    stored_eventually(pg_dsn, name, sorted({(until - timedelta(hours=11 * i + 1)).date() for i in range(8)}
                                           & {(first + k * DAY).date() for k in range((last - first).days)}))


def test_concurrent_first_reads_agree(receiver_url: str, pg_dsn: str) -> None:
    """Four readers at once over eleven days never summarised (stored in two transactions)."""
    name, rng = f"race_{uuid.uuid4().hex[:8]}", random.Random(9)
    until = datetime.now(timezone.utc).replace(microsecond=0)
    since = until - 12 * DAY
    starts = [until - timedelta(hours=10.5 * i + 1) for i in range(25)]
    for start in starts:
        send_run(receiver_url, name, start, rng)
    results: list[dict] = []
    threads = [threading.Thread(target=lambda: results.append(pipeline(receiver_url, name, since, until)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r == results[0] for r in results)
    assert_matches_reference(pg_dsn, results[0], name, since, until)
    first, last = pipeline_days.whole_days(since, until)
    days = sorted({s.date() for s in starts if first <= s < last})
    assert len(days) > pipeline_days.DAYS_PER_TRANSACTION
    stored_eventually(pg_dsn, name, days)
    assert pipeline(receiver_url, name, since, until) == results[0]


def test_a_refresh_stores_the_days_asked_for_not_those_between(receiver_url: str, pg_dsn: str) -> None:
    """Days of two windows pending for one pipeline: the stale days between them wait for a read
    that asks for them (a store transaction stays a week at most)."""
    name, rng = f"gap_{uuid.uuid4().hex[:8]}", random.Random(13)
    today = datetime.combine(datetime.now(timezone.utc).date(), datetime.min.time(), timezone.utc)
    days = [today - 30 * DAY, today - 20 * DAY, today - 10 * DAY]
    for day in days:
        send_run(receiver_url, name, day + timedelta(hours=6), rng, steps=2)

    async def store() -> int:
        conn = await asyncpg.connect(pg_dsn)
        try:
            return await pipeline_days.store_days(conn, name, [days[0].date(), days[2].date()])
        finally:
            await conn.close()

    assert asyncio.run(store()) == 2
    assert stored_days(pg_dsn, name) == [days[0].date(), days[2].date()]


def test_retention_forgets_the_summaries_of_days_it_emptied(receiver_url: str, pg_dsn: str) -> None:
    name, rng = f"ret_{uuid.uuid4().hex[:8]}", random.Random(4)
    now = datetime.now(timezone.utc)
    today = datetime.combine(now.date(), datetime.min.time(), timezone.utc)
    days = [today - age * DAY for age in (900, 899, 898)]
    for day in days:
        send_run(receiver_url, name, day + timedelta(hours=12), rng, steps=2)
    pipeline(receiver_url, name, today - 901 * DAY, now)
    stored_eventually(pg_dsn, name, [day.date() for day in days])

    async def run_sweep() -> None:
        store = await Store.open(pg_dsn, pool_size=2)
        try:
            await sweep(store, now - days[2])  # cutoff: the last day's midnight, before its run
        finally:
            await store.close()

    asyncio.run(run_sweep())
    assert stored_days(pg_dsn, name) == [days[2].date()]
    assert pipeline(receiver_url, name, today - 901 * DAY, now)["run_count"] == 1


def test_day_signature_is_read_from_the_runs_index_alone(pg_dsn: str) -> None:
    """In a database of its own, so the VACUUM ANALYZE it needs (pages all visible, an index-only
    scan then needs no heap) changes no other test's plans."""
    first = datetime(2026, 1, 1, tzinfo=timezone.utc)

    async def plan() -> str:
        async with scratch_database(pg_dsn) as conn:
            await migrate(conn)
            await conn.execute("""
                INSERT INTO runs (id, source, name, status, started_at, step_count)
                SELECT gen_random_uuid(), 2, 'p' || (i % 20), 'COMPLETED',
                       $1::timestamptz + i * interval '1 minute', i % 7
                FROM generate_series(1, 20000) i""", first)
            await conn.execute("VACUUM (ANALYZE) runs")
            await conn.execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
            return "\n".join(r[0] for r in await conn.fetch(
                "EXPLAIN " + pipeline_days.STALE_PIPELINE_DAYS, "p3", first, first + 7 * DAY))

    text = asyncio.run(plan())
    assert "Index Only Scan using runs_name_started_idx on runs" in text, text


def test_a_run_renamed_and_moved_to_another_day_leaves_one_pipeline_for_the_other(receiver_url: str,
                                                                                   pg_dsn: str) -> None:
    """A run named by its root span first, on one day, then by an xray run span of another name
    starting two days later; one of its steps has no start time. Both pipelines follow."""
    rng = random.Random(4)
    a, b = f"ren_a_{uuid.uuid4().hex[:6]}", f"ren_b_{uuid.uuid4().hex[:6]}"
    until = datetime.now(timezone.utc).replace(microsecond=0)
    since = until - 5 * DAY
    first, _ = pipeline_days.whole_days(since, until)
    trace, base = new_ids()
    t0 = ns(first + timedelta(hours=1))
    no_start = make_span(trace, base + 1, "no_start", parent=base, start=t0 + MS, attrs={"xray.kind": "step"})
    no_start.start_time_unix_nano = 0
    assert post_otlp(receiver_url, export_request([make_span(trace, base, a, start=t0, duration_ns=MS),
                                                   no_start])).status == 200
    send_run(receiver_url, a, first + timedelta(hours=3), rng, steps=2)
    send_run(receiver_url, b, first + 2 * DAY + timedelta(hours=3), rng, steps=2)
    for name in (a, b):
        assert_matches_reference(pg_dsn, pipeline(receiver_url, name, since, until), name, since, until)
        stored_eventually(pg_dsn, name, [(first + (2 * DAY if name == b else timedelta())).date()])
    run_span = make_span(trace, base + 5, b, start=ns(first + 2 * DAY + timedelta(hours=5)), duration_ns=MS,
                         attrs={"xray.kind": "run"})
    assert post_otlp(receiver_url, export_request([run_span])).status == 200
    for name, has_it in ((a, False), (b, True)):
        got = pipeline(receiver_url, name, since, until)
        assert_matches_reference(pg_dsn, got, name, since, until)
        assert ("no_start" in {s["name"] for s in got["steps"]}) is has_it


@pytest.mark.parametrize("year", [1901, 1969, 2999, 9998])
def test_legacy_runs_far_from_now(receiver_url: str, pg_dsn: str, year: int) -> None:
    """Days before the epoch and far ahead (read from the rows: they have not ended), from legacy
    /ingest steps that have no start time."""
    name = f"legacy_{year}_{uuid.uuid4().hex[:6]}"
    start = datetime(year, 6, 15, 23, 30, tzinfo=timezone.utc)
    events = []
    for i in range(3):
        run_id, at = str(uuid.uuid4()), start + timedelta(hours=6 * i)
        events.append({"type": "run_complete", "data": {"id": run_id, "name": name, "started_at": at.isoformat(),
                                                          "completed_at": (at + timedelta(seconds=5)).isoformat()}})
        events.append({"type": "step_complete", "data": {
            "id": str(uuid.uuid4()), "run_id": run_id, "name": "a", "type": "filter",
            "completed_at": (at + timedelta(seconds=2)).isoformat(),
            "metadata": {"input_count": 10, "output_count": 3 + i, "rejections": {"x": 7 - i}}}})
    reply = call("POST", receiver_url + "/ingest", json.dumps({"events": events}).encode(),
                 {"Content-Type": "application/json"})
    assert reply.status == 200, reply.body
    since, until = start - 2 * DAY, start + 3 * DAY
    got = pipeline(receiver_url, name, since, until)
    assert_matches_reference(pg_dsn, got, name, since, until)
    days = sorted({(start + timedelta(hours=6 * i)).date() for i in range(3)})
    stored_eventually(pg_dsn, name, days if start.year < 2100 else [])  # days yet to come are never whole
    assert pipeline(receiver_url, name, since, until) == got


# --- the histograms ------------------------------------------------------------------------------


def test_bucket_values_are_within_the_stated_error(pg_dsn: str) -> None:
    rng = random.Random(1)
    durations = [0.0, 0.001, 1.0, 1e9, -3.5] + [10 ** rng.uniform(-3, 8) for _ in range(2000)]
    rates = [1.0, 0.0, -4.0, 0.9995, -1e6] + [rng.uniform(-1, 1) for _ in range(2000)]
    rows = db(pg_dsn, f"""SELECT d, {duration_key_sql('d')} AS key FROM unnest($1::float8[]) d""", durations)
    for row in rows:
        assert abs(duration_value(row["key"]) - row["d"]) <= DURATION_ERROR * abs(row["d"]) * (1 + 1e-12)
    rows = db(pg_dsn, f"""SELECT r, {drop_key_sql('r')} AS key FROM unnest($1::float8[]) r""", rates)
    for row in rows:
        assert abs(drop_value(row["key"]) - row["r"]) <= DROP_ERROR * (1 + 1e-9)


def test_percentiles_over_parts_equal_percentile_cont_of_the_bucket_values(pg_dsn: str) -> None:
    rng = random.Random(2)
    keys = [rng.choice((rng.randrange(990, 1100), rng.randrange(1, 3000), -rng.randrange(1, 900), 0))
            for _ in range(997)]
    rows = db(pg_dsn, """
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS p50, percentile_cont(0.95) WITHIN GROUP (ORDER BY v) AS p95,
               percentile_cont(0.0) WITHIN GROUP (ORDER BY v) AS p0, percentile_cont(1.0) WITHIN GROUP (ORDER BY v) AS p100
        FROM unnest($1::float8[]) v""", [duration_value(k) for k in keys])[0]
    # several days' histograms, concatenated as the query concatenates them
    merged = histogram(b"".join(_packed(keys[i:i + 100]) for i in range(0, len(keys), 100)))
    assert merged == histogram(_packed(keys))
    for q, column in ((0.5, "p50"), (0.95, "p95"), (0.0, "p0"), (1.0, "p100")):
        assert percentile(*merged, q, duration_value) == pytest.approx(rows[column], rel=1e-12)
    assert percentile(*histogram(None), 0.5, duration_value) is None
    assert percentile(*histogram(_packed([7])), 0.95, duration_value) == duration_value(7)


def _packed(keys: list[int]) -> bytes:
    """The stored form of a histogram: (key, count) int8 pairs in key order, network order."""
    return b"".join(key.to_bytes(8, "big", signed=True) + keys.count(key).to_bytes(8, "big", signed=True)
                    for key in sorted(set(keys)))


@pytest.mark.parametrize("since, until, whole", [
    ("2026-01-01T00:00:00+00:00", "2026-01-03T00:00:00+00:00", ("2026-01-01", "2026-01-03")),
    ("2026-01-01T00:00:01+00:00", "2026-01-03T23:59:59+00:00", ("2026-01-02", "2026-01-03")),
    ("2026-01-01T05:00:00+00:00", "2026-01-01T23:00:00+00:00", None),
    ("2026-01-01T23:00:00-05:00", "2026-01-04T03:00:00+02:00", ("2026-01-03", "2026-01-04")),  # UTC days
    ("2026-01-01T12:00:00+00:00", "2026-01-02T12:00:00+00:00", None),
])
def test_whole_days_are_utc_days_inside_the_window(since: str, until: str, whole: tuple | None) -> None:
    start, end = datetime.fromisoformat(since), datetime.fromisoformat(until)
    first, last = pipeline_days.whole_days(start, end)
    if whole is None:
        assert first == last
    else:
        assert (first.date().isoformat(), last.date().isoformat()) == whole
        assert start <= first and last <= end and first.utcoffset() == timedelta(0)


def test_summaries_keep_up_with_a_day_of_many_runs(receiver_url: str, pg_dsn: str) -> None:
    """A day's histogram holds at most one entry per bucket however many runs it has."""
    name, rng = f"busy_{uuid.uuid4().hex[:8]}", random.Random(8)
    until = datetime.now(timezone.utc).replace(microsecond=0)
    day = pipeline_days.whole_days(until - 2 * DAY, until)[0]
    trace_runs = []
    for i in range(300):
        trace, base = new_ids()
        trace_runs.append(make_span(trace, base, name, attrs={"xray.kind": "run"},
                                    start=ns(day + timedelta(seconds=i * 60)), duration_ns=MS))
        trace_runs.append(make_span(trace, base + 1, "wait", parent=base, start=ns(day + timedelta(seconds=i * 60)),
                                    duration_ns=rng.choice((5, 7)) * MS,
                                    attrs={"xray.kind": "step", "xray.step.type": "logic"}))
    assert post_otlp(receiver_url, export_request(trace_runs)).status == 200
    got = pipeline(receiver_url, name, until - 2 * DAY, until)
    assert got["steps"][0]["count"] == 300
    stored_eventually(pg_dsn, name, [day.date()])
    sizes = db(pg_dsn, "SELECT length(duration_histogram) AS n FROM pipeline_step_days WHERE name = $1", name)
    assert [r["n"] for r in sizes] == [2 * 16]  # two buckets, 5 ms and 7 ms, of 16 bytes each
    assert_matches_reference(pg_dsn, got, name, until - 2 * DAY, until)
