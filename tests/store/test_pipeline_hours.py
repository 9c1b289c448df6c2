"""Per-hour summaries (migration 0013) are read while their runs are unchanged and never stale: a late
run makes its hour read from the step rows and stored again, the other hours are left alone. Runs go in
over OTLP/HTTP; the series comes back over HTTP from the running receiver."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from helpers import db, export_request, get_json, make_span, new_ids, post_otlp

from xray_otel.store.pipeline_stats import drop_value, duration_value, histogram, percentile

MS = 1_000_000
HOUR = timedelta(hours=1)


def send_run(url: str, name: str, start: datetime, kept: int) -> None:
    """A run of ``name`` at ``start`` with one filter step that keeps ``kept`` of 100 candidates."""
    trace, base = new_ids()
    t0 = int(start.timestamp() * 1e9)
    spans = [make_span(trace, base, name, attrs={"xray.kind": "run"}, start=t0, duration_ns=50 * MS),
             make_span(trace, base + 1, "filter", parent=base, start=t0 + MS, duration_ns=5 * MS,
                       attrs={"xray.kind": "step", "xray.step.type": "filter", "xray.step.input_count": 100,
                              "xray.step.output_count": kept, "xray.step.rejections": {"too_far": 100 - kept}})]
    assert post_otlp(url, export_request(spans)).status == 200


def counts(url: str, name: str, since: datetime, until: datetime) -> dict[datetime, Any]:
    """Per hour bucket with runs: the filter step's (count, input candidates)."""
    query = f"since={since.isoformat()}&until={until.isoformat()}&bucket=hour".replace("+", "%2B")
    body = get_json(f"{url}/pipelines/{name}/series?{query}")
    (step,) = body["steps"]
    return {p["start"]: (p["count"], p["input_count"]) for p in step["points"] if p["count"]}


def stored_hours(dsn: str, name: str) -> list[Any]:
    return [r["hour"] for r in db(dsn, "SELECT hour FROM pipeline_hours WHERE name = $1 ORDER BY hour", name)]


def eventually_stored(dsn: str, name: str, hours: list[datetime]) -> None:
    want = [h.replace(tzinfo=None) for h in hours]
    deadline = time.monotonic() + 30
    while stored_hours(dsn, name) != want and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored_hours(dsn, name) == want


def test_a_late_run_makes_its_stored_hour_stale(receiver_url: str, pg_dsn: str) -> None:
    name = f"hours_{uuid.uuid4().hex[:8]}"
    now = datetime.now(timezone.utc)
    one = now.replace(minute=0, second=0, microsecond=0) - 5 * HOUR
    two = one + 2 * HOUR
    since, until = one - 30 * timedelta(minutes=1), now
    send_run(receiver_url, name, one + timedelta(minutes=10), 40)
    send_run(receiver_url, name, two + timedelta(minutes=10), 70)
    key = lambda h: h.isoformat().replace("+00:00", "Z")  # noqa: E731
    assert counts(receiver_url, name, since, until) == {key(one): (1, 100), key(two): (1, 100)}
    eventually_stored(pg_dsn, name, [one, two])
    # The stored hours are what the series reads: changed behind its back, it serves them as they are...
    db(pg_dsn, "UPDATE pipeline_step_hours SET count = count + 100 WHERE name = $1", name)
    assert counts(receiver_url, name, since, until) == {key(one): (101, 100), key(two): (101, 100)}
    # ...until a run arrives late in hour one: that hour is read from its rows, the other stays stored.
    send_run(receiver_url, name, one + timedelta(minutes=50), 10)
    assert counts(receiver_url, name, since, until) == {key(one): (2, 200), key(two): (101, 100)}
    eventually_stored(pg_dsn, name, [one, two])
    deadline = time.monotonic() + 30
    while db(pg_dsn, "SELECT count FROM pipeline_step_hours WHERE name = $1 AND hour = $2", name,
             one.replace(tzinfo=None)) != [(2,)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert counts(receiver_url, name, since, until) == {key(one): (2, 200), key(two): (101, 100)}
    # By day the part-days at the window's ends are read from the same hours.
    by_day = get_json(f"{receiver_url}/pipelines/{name}/series?since={since.isoformat()}&until={until.isoformat()}"
                      .replace("+", "%2B"))
    assert sum(p["count"] for p in by_day["steps"][0]["points"]) == 103


def test_a_stored_hour_reads_as_its_rows_did(receiver_url: str, pg_dsn: str) -> None:
    """Each stored row keeps its own percentiles (migration 0014), the ones pipeline_stats finds from
    its histograms, to the bit: a point reads the same from the stored hour as from the step rows; a
    part-day made of two stored hours merges their histograms to the same figures."""
    name = f"hours_{uuid.uuid4().hex[:8]}"
    now = datetime.now(timezone.utc)
    hour = now.replace(minute=0, second=0, microsecond=0) - 3 * HOUR
    if (hour - HOUR).date() != (hour + HOUR).date():  # the two hours and the window's start in one UTC day
        hour -= 3 * HOUR
    kept = (3, 40, 41, 77, 90, 99, 100)
    for i, n in enumerate(kept):
        send_run(receiver_url, name, hour + timedelta(minutes=5 * i), n)
    send_run(receiver_url, name, hour + HOUR + timedelta(minutes=5), 50)
    query = f"since={(hour - HOUR / 2).isoformat()}&until={now.isoformat()}".replace("+", "%2B")
    from_rows = get_json(f"{receiver_url}/pipelines/{name}/series?{query}&bucket=hour")["steps"]
    eventually_stored(pg_dsn, name, [hour, hour + HOUR])
    assert get_json(f"{receiver_url}/pipelines/{name}/series?{query}&bucket=hour")["steps"] == from_rows
    point = next(p for p in from_rows[0]["points"] if p["count"])
    # drop rates 0, .01, .1, .23, .59, .6, .97: percentile_cont(0.95) is .6 + 0.7 * (.97 - .6)
    assert point["count"] == 7 and point["drop_rate"]["p95"] == 0.859

    rows = db(pg_dsn, "SELECT * FROM pipeline_step_hours WHERE name = $1", name)
    for row in rows:
        drops, durations = histogram(row["drop_histogram"]), histogram(row["duration_histogram"])
        assert row["drop_p95"] == percentile(*drops, 0.95, drop_value)
        assert row["duration_p50"] == percentile(*durations, 0.5, duration_value)
        assert row["duration_p95"] == percentile(*durations, 0.95, duration_value)

    by_day = get_json(f"{receiver_url}/pipelines/{name}/series?{query}&bucket=day")["steps"][0]["points"]
    (day,) = [p for p in by_day if p["count"]]
    # the eight drop rates: 0, .01, .1, .23, .5, .59, .6, .97; rank 0.95 * 7 = 6.65 lies between .6 and .97
    assert day["count"] == 8 and day["drop_rate"]["p95"] == round(0.6 + 0.65 * (0.97 - 0.6), 6)
    assert day["rejections"] == {"too_far": 700 - sum(kept) + 50}
    assert day["duration_ms"] == point["duration_ms"]  # every step took 5 ms
    # A row stored without its percentiles (by a process older than migration 0014) reads them from its histograms.
    db(pg_dsn, "UPDATE pipeline_step_hours SET drop_p95 = NULL, duration_p50 = NULL, duration_p95 = NULL "
               "WHERE name = $1", name)
    assert get_json(f"{receiver_url}/pipelines/{name}/series?{query}&bucket=hour")["steps"] == from_rows
