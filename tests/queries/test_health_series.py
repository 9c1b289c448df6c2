"""GET /pipelines/{name}/series over HTTP against the running receiver: every bucket's figures equal
what was sent (added up here, without the server), whether a day came from its stored summary or
from the step rows, by day and by hour; empty buckets are there with run_count 0; bad input is a 400."""

from __future__ import annotations

import math
import random
import time
import uuid
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import pytest

from conftest import serve
from helpers import call, db, get_json
from query_data import HealthRun, health_runs
from xray_otel.store.pipeline_stats import DROP_SCALE, GAMMA

DAY, HOUR = timedelta(days=1), timedelta(hours=1)
DURATION_ERROR = (GAMMA - 1) / (GAMMA + 1)


def iso(moment: datetime) -> str:
    """As the API writes a UTC time."""
    return moment.isoformat().replace("+00:00", "Z")


def midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.fixture(scope="module")
def sent(receiver_url: str) -> tuple[str, datetime, list[HealthRun]]:
    """Runs every 40 minutes from 18:00 five days ago to 06:00 two days ago (a part-day, two whole
    days, a part-day), none from 10:00 to 14:00 on the second day."""
    name, rng = f"series_{uuid.uuid4().hex[:8]}", random.Random(20)
    d0 = midnight(datetime.now(timezone.utc)) - 5 * DAY
    starts, t = [], d0 + 18 * HOUR
    while t < d0 + 3 * DAY + 6 * HOUR:
        if not d0 + DAY + 10 * HOUR <= t < d0 + DAY + 14 * HOUR:
            starts.append(t + timedelta(seconds=rng.randrange(0, 60)))
        t += timedelta(minutes=40)
    return name, d0, health_runs(receiver_url, name, starts, rng)


def series(url: str, name: str, **params: Any) -> dict:
    query = urlencode({k: v.isoformat() if isinstance(v, datetime) else v for k, v in params.items()}, doseq=True)
    return get_json(f"{url}/pipelines/{name}/series?{query}")


def percentile_cont(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    position = q * (len(values) - 1)
    low, high = math.floor(position), math.ceil(position)
    return values[low] + (position - low) * (values[high] - values[low])


def expected(runs: list[HealthRun], size: timedelta, since: datetime, until: datetime) -> dict:
    """(bucket start, step) -> figures, and bucket start -> (runs, failed), added up from what was sent."""
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    steps: dict = defaultdict(lambda: {"count": 0, "in": 0, "out": 0, "drops": [], "reasons": defaultdict(int),
                                       "cost": 0.0, "ms": []})
    buckets: dict = defaultdict(lambda: [0, 0])
    for run in runs:
        if not since <= run.start < until:
            continue
        start = epoch + ((run.start - epoch) // size) * size
        buckets[start][0] += 1
        buckets[start][1] += run.failed
        for step in run.steps:
            figures = steps[(start, step["name"])]
            figures["count"] += 1
            figures["in"] += step["input_count"] or 0
            figures["out"] += step["output_count"] or 0
            if step["input_count"] and step["output_count"] is not None:
                figures["drops"].append((step["input_count"] - step["output_count"]) / step["input_count"])
            for reason, n in (step["rejections"] or {}).items():
                figures["reasons"][reason] += n
            figures["cost"] += step["cost"]
            figures["ms"].append(step["duration_ms"])
    return {"steps": steps, "buckets": buckets}


def assert_matches(got: dict, want: dict) -> None:
    for bucket in got["buckets"]:
        start = datetime.fromisoformat(bucket["start"])
        assert [bucket["run_count"], bucket["failed_count"]] == want["buckets"].get(start, [0, 0]), start
    assert {s["name"] for s in got["steps"]} == {name for _, name in want["steps"]}
    for step in got["steps"]:
        assert len(step["points"]) == len(got["buckets"])
        for point in step["points"]:
            start = datetime.fromisoformat(point["start"])
            w = want["steps"].get((start, step["name"]))
            if w is None:
                assert point["count"] == 0 and point["drop_rate"]["mean"] is None and point["rejections"] == {}
                continue
            assert (point["count"], point["input_count"], point["output_count"]) == (w["count"], w["in"], w["out"])
            assert point["rejections"] == dict(w["reasons"])
            assert point["cost"]["total"] == pytest.approx(w["cost"], abs=1e-9)
            if w["drops"]:
                assert point["drop_rate"]["mean"] == pytest.approx(sum(w["drops"]) / len(w["drops"]), abs=1e-6)
                assert abs(point["drop_rate"]["p95"] - percentile_cont(w["drops"], 0.95)) <= 0.5 / DROP_SCALE + 1e-6
            for q, key in ((0.5, "p50"), (0.95, "p95")):
                exact = percentile_cont(w["ms"], q)
                assert abs(point["duration_ms"][key] - exact) <= DURATION_ERROR * exact + 1e-3


def test_day_buckets_equal_what_was_sent_from_rows_and_from_stored_days(receiver_url, pg_dsn, sent):
    name, d0, runs = sent
    since, until = d0 + 12 * HOUR, d0 + 5 * DAY  # a part-day first, two days after the runs with none
    want = expected(runs, DAY, since, until)
    first = series(receiver_url, name, since=since, until=until, bucket="day")
    assert [b["start"] for b in first["buckets"]] == [iso(d0 + i * DAY) for i in range(5)]
    assert [b["partial"] for b in first["buckets"]] == [True, False, False, False, False]
    assert [b["run_count"] for b in first["buckets"]][3:] == [9, 0]  # 00:00-06:00 of day 3; day 4 empty
    assert_matches(first, want)
    deadline = time.monotonic() + 30  # the read asked for the whole days to be stored
    while len(db(pg_dsn, "SELECT day FROM pipeline_days WHERE name = $1", name)) < 3:  # day 4 has no runs
        assert time.monotonic() < deadline, "whole days were not stored"
        time.sleep(0.2)
    again = series(receiver_url, name, since=since, until=until, bucket="day")
    assert again["buckets"] == first["buckets"] and again["steps"] == first["steps"]


def test_hour_buckets_equal_what_was_sent_and_add_up_to_the_days(receiver_url, sent):
    name, d0, runs = sent
    since, until = d0 + DAY, d0 + 2 * DAY
    got = series(receiver_url, name, since=since, until=until, bucket="hour")
    assert len(got["buckets"]) == 24
    assert_matches(got, expected(runs, HOUR, since, until))
    empty = [b["start"] for b in got["buckets"] if b["run_count"] == 0]
    assert empty == [iso(d0 + DAY + h * HOUR) for h in range(10, 14)]  # the gap, shown, not skipped
    day = series(receiver_url, name, since=since, until=until, bucket="day")
    for step, hourly in zip(day["steps"], got["steps"]):
        assert step["name"] == hourly["name"]
        assert step["points"][0]["count"] == sum(p["count"] for p in hourly["points"])
        assert step["points"][0]["input_count"] == sum(p["input_count"] for p in hourly["points"])


def test_a_window_cut_mid_hour_counts_only_runs_inside_it(receiver_url, sent):
    name, d0, runs = sent
    since, until = d0 + DAY + 30 * timedelta(minutes=1), d0 + DAY + 5 * HOUR + 20 * timedelta(minutes=1)
    got = series(receiver_url, name, since=since, until=until, bucket="hour")
    assert got["buckets"][0]["partial"] and got["buckets"][-1]["partial"]
    assert_matches(got, expected(runs, HOUR, since, until))


def test_step_narrows_to_those_steps(receiver_url, sent):
    name, d0, runs = sent
    got = series(receiver_url, name, since=d0, until=d0 + 4 * DAY, step=["filter_by_price", "call_llm"])
    assert [s["name"] for s in got["steps"]] == ["filter_by_price", "call_llm"]  # in run order
    assert got["step"] == ["filter_by_price", "call_llm"]
    whole = series(receiver_url, name, since=d0, until=d0 + 4 * DAY)
    assert got["steps"] == [s for s in whole["steps"] if s["name"] in ("filter_by_price", "call_llm")]


def test_a_late_run_in_a_stored_day_shows_at_once(receiver_url, pg_dsn, sent):
    name, d0, runs = sent
    since, until = d0 + DAY, d0 + 3 * DAY
    series(receiver_url, name, since=since, until=until)
    deadline = time.monotonic() + 30
    while len(db(pg_dsn, "SELECT day FROM pipeline_days WHERE name = $1 AND day < $2", name, (d0 + 3 * DAY).date())) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    late = health_runs(receiver_url, name, [d0 + DAY + 12 * HOUR], random.Random(1))
    got = series(receiver_url, name, since=since, until=until)
    assert_matches(got, expected(runs + late, DAY, since, until))


@pytest.mark.parametrize("query, message", [
    ("bucket=week", "bucket must be one of hour, day"),
    ("since=2d&until=3d", "since must be before until"),
    ("since=60d&bucket=hour", "at most 1000"),
    ("since=yesterday", "since must be an ISO-8601 time"),
    ("stepp=x", "unknown parameter"),
])
def test_bad_parameters_are_a_400_naming_them(receiver_url, sent, query, message):
    reply = call("GET", f"{receiver_url}/pipelines/{sent[0]}/series?{query}")
    assert reply.status == 400 and message in reply.json()["error"]["message"], reply.body


def test_an_unknown_pipeline_is_a_404(receiver_url):
    assert call("GET", f"{receiver_url}/pipelines/nope_{uuid.uuid4().hex}/series").status == 404


def test_a_project_bound_key_reads_no_pipeline_series(pg_dsn, sent):
    with serve(pg_dsn, api_keys="ingest+read@shopA:key-a,ingest+read:admin") as server:
        path = f"{server.url}/pipelines/{sent[0]}/series"
        assert call("GET", path, headers={"x-api-key": "key-a"}).status == 403
        assert call("GET", path, headers={"x-api-key": "admin"}).status == 200
