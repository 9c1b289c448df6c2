"""`xray-otel runs | steps | analyze | compare` against the real receiver: tables, --json, errors."""

from __future__ import annotations

import json
import time

import pytest
from query_data import Sent, listing_run, send_all

from xray_otel.cli import main


@pytest.fixture(scope="module")
def sent(receiver_url: str) -> Sent:
    return send_all(receiver_url)


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "220")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_steps_table_finds_the_over_strict_filter(receiver_url: str, sent: Sent, capsys) -> None:
    status, out, _ = run(capsys, "steps", "--url", receiver_url, "--type", "filter", "--min-drop-rate", "0.9",
                         "--service", sent.service)
    assert status == 0
    lines = [line for line in out.splitlines() if sent.runs["bad"] in line]
    assert len(lines) == 1 and "filter_price" in lines[0] and "95.0%" in lines[0] and "price_too_high 19" in lines[0]
    header = out.splitlines()[0]
    assert header.index("step") < header.index("type") < header.index("dropped")  # one aligned table


def test_runs_json_and_env_url(receiver_url: str, sent: Sent, capsys, monkeypatch) -> None:
    monkeypatch.setenv("XRAY_URL", receiver_url)
    status, out, _ = run(capsys, "runs", "--service", sent.service, "--tag", "env:prod", "--json")
    assert status == 0
    assert [r["id"] for r in json.loads(out)] == [sent.runs["failed"], sent.runs["good"]]
    status, out, _ = run(capsys, "runs", "--service", sent.service, "--has-error", "--limit", "1")
    assert status == 0 and sent.runs["failed"] in out and "upstream timeout" in out and "more: --cursor" in out


def test_analyze_and_compare_tables(receiver_url: str, sent: Sent, capsys) -> None:
    status, out, _ = run(capsys, "analyze", sent.runs["bad"], "--url", receiver_url)
    assert status == 0 and "filter_price" in out and "20 candidates → 1" in out and "95.0%" in out
    status, out, _ = run(capsys, "compare", sent.runs["good"], sent.runs["bad"], "--url", receiver_url)
    assert status == 0
    assert "first divergence: filter_price" in out and "price_too_high +4" in out
    assert '{"selected": "phone-case"} → {"selected": "laptop-stand"}' in out


def test_analyze_names_each_funnel_of_a_run_with_several(receiver_url: str, capsys) -> None:
    run_id = listing_run(receiver_url, "cli-listing", t0=time.time_ns())
    status, out, _ = run(capsys, "analyze", run_id, "--url", receiver_url)
    assert status == 0 and "8 candidates → 5 in generate_bullets, the main of 2 funnels" in out
    assert "funnel generate_titles: 6 → 1" in out and "funnel generate_bullets: 8 → 5" in out


def test_errors_are_one_line(receiver_url: str, capsys) -> None:
    status, _, err = run(capsys, "steps", "--url", receiver_url, "--min-drop-rate", "lots")
    assert status == 1 and err.strip() == "xray-otel: 400: min_drop_rate must be a number, got 'lots'"
    status, _, err = run(capsys, "analyze", "00000000-0000-0000-0000-000000000001", "--url", receiver_url)
    assert status == 1 and "404" in err and "not found" in err
    status, _, err = run(capsys, "runs", "--url", "http://127.0.0.1:9")
    assert status == 1 and "cannot reach http://127.0.0.1:9" in err and "XRAY_URL" in err
