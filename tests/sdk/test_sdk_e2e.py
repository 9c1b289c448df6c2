"""End to end: the example pipeline through the real OTLP/HTTP exporter into the running receiver.

``receiver_url`` (tests/conftest.py) is a receiver on real PostgreSQL, shared by the whole
session, so everything here is looked up by this test's own run id.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from demo_funnel import EXPECTED_FUNNEL, SELECTED

from xray_otel import configure
from xray_otel.demo.competitor_selection import MODEL, STEP_NAMES, run_pipeline
from xray_otel.sdk import build_provider, flush
from xray_otel.sdk.provider import EXIT_TIMEOUT_S
from xray_otel.pricing import cost_of

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "competitor_selection.py"


def get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:  # not arrived yet
            return None
        raise


def wait_for_run(url: str, run_id: str, timeout_s: float = 30) -> dict[str, Any]:
    """/analyze once the run span and every step have been stored."""
    deadline = time.monotonic() + timeout_s
    while True:
        analysis = get_json(f"{url}/analyze/{run_id}")
        if analysis and analysis["run"]["status"] != "RUNNING" and len(analysis["funnel"]) >= len(STEP_NAMES):
            return analysis
        assert time.monotonic() < deadline, f"run {run_id} incomplete at the receiver: {analysis}"
        time.sleep(0.2)


@pytest.fixture
def exported_run(receiver_url: str) -> str:
    """One pipeline run exported by the stock OTLP/HTTP exporter, as configure() wires it."""
    provider = build_provider("sdk-e2e", endpoint=receiver_url)
    configure(tracer_provider=provider)
    try:
        run_id, best = run_pipeline()
        assert best.asin == SELECTED
        assert flush(timeout=30)
    finally:
        provider.shutdown()
    return run_id


def test_analyze_shows_the_exact_funnel_and_reasons(receiver_url, exported_run):
    analysis = wait_for_run(receiver_url, exported_run)
    run = analysis["run"]
    assert (run["id"], run["name"], run["status"], run["service"]) == (
        exported_run, "competitor_selection", "COMPLETED", "sdk-e2e")
    assert run["tags"] == {"product_id": "B0SELLER01", "version": "1.4"}
    got = [(f["name"], f["type"], f["input_count"], f["output_count"], f["rejections"]) for f in analysis["funnel"]]
    assert got == EXPECTED_FUNNEL
    assert [f["status"] for f in analysis["funnel"]] == ["COMPLETED"] * len(STEP_NAMES)
    price = analysis["funnel"][2]
    assert (price["dropped"], price["drop_rate"]) == (3269, pytest.approx(3269 / 5000))
    expected_cost = cost_of(MODEL, 812, 40) + cost_of(MODEL, 150 * 72, 5 * 72)
    assert run["total_cost"] == pytest.approx(expected_cost)
    summary = analysis["summary"]
    assert (summary["initial_candidates"], summary["final_count"]) == (5000, 1)
    assert (summary["biggest_drop"]["step"], summary["biggest_drop"]["dropped"]) == ("filter_by_price", 3269)
    assert analysis["final_outputs"]["selected"] == SELECTED


def test_the_stored_decisions_explain_the_winner(receiver_url, exported_run):
    wait_for_run(receiver_url, exported_run)
    steps = {s["name"]: s for s in get_json(f"{receiver_url}/runs/{exported_run}/steps")}
    ranking = steps["rank_and_select"]["decisions"]
    assert ranking[0]["id"] == SELECTED and (ranking[0]["rank"], ranking[0]["accepted"]) == (1, True)
    assert [d["rank"] for d in ranking[1:6]] == [2, 3, 4, 5, 6]  # the first cut: the ranking's boundary
    assert [d["sampled_as"] for d in ranking[:6]] == ["boundary"] * 6
    assert all(d["sampled_as"] == "reservoir" and d["rank"] > 6 for d in ranking[6:])  # more of the cut, at random
    assert all(d["reason"] == "below_top_k" and d["score"] <= ranking[0]["score"] for d in ranking[1:])
    price_rejections = {d["reason"] for d in steps["filter_by_price"]["decisions"] if not d["accepted"]}
    assert price_rejections == {"price_too_low", "price_too_high"}
    assert steps["generate_keywords"]["model"] == MODEL
    assert steps["generate_keywords"]["outputs"] == {"keywords": ["insulated water bottle", "stainless steel bottle",
                                                                  "vacuum flask 32oz"]}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_with_no_receiver_the_example_completes_and_exits_within_the_timeout():
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}
    env.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert f"selected {SELECTED}" in result.stdout
    assert result.stderr.count("xray-otel: cannot send spans") <= 1 and "Traceback" not in result.stderr
    # Interpreter start and the pipeline take a few seconds on a busy machine; the exit adds at most EXIT_TIMEOUT_S.
    assert elapsed < 10 + EXIT_TIMEOUT_S
