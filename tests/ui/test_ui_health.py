"""The pipeline-health pages (issue 20) in a real headless Chromium, against a real receiver and PostgreSQL.

Runs arrive over OTLP/HTTP (the phone-case walkthrough, tests/query_data.py), spread over the last days
so the pipeline has a history; the pages read only the public REST API. Browser fixtures are test_ui's.
"""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from helpers import call, export_request, get_json, make_span, new_ids, post_otlp
from query_data import accessory_run
from test_ui import browser, page, shot  # noqa: F401 (fixtures)

playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect

DAY = 86_400 * 10**9
HOUR = 3_600 * 10**9


@pytest.fixture(scope="module")
def history(receiver_url: str) -> dict[str, object]:
    """One pipeline of its own: lenient runs (filter drops 75%) two and one days ago, strict runs (95%,
    every one a "filter eliminated more than 90%") in the last hours."""
    name, service, now = f"ui_health_{uuid.uuid4().hex[:8]}", f"uih-{uuid.uuid4().hex[:8]}", time.time_ns()
    lenient = [accessory_run(receiver_url, service, strict=False, t0=now - d * DAY - i * HOUR, name=name)
               for d in (2, 1) for i in range(3)]
    strict = [accessory_run(receiver_url, service, strict=True, t0=now - (i + 1) * HOUR, name=name) for i in range(3)]
    return {"name": name, "lenient": lenient, "strict": strict}


def shifted_run(trace_id: bytes, base: int, name: str, t0: int, drop: int, too_high: int) -> list[object]:
    """A run: retrieve 100 (no input count, so no drop rate) → filter_price drops ``drop`` of them,
    ``too_high`` for price_too_high and the rest price_too_low."""
    return [
        make_span(trace_id, base, name, attrs={"xray.kind": "run"}, start=t0, duration_ns=30 * 10**6),
        make_span(trace_id, base + 1, "retrieve", parent=base, start=t0 + 10**6,
                  attrs={"xray.kind": "step", "xray.step.type": "retrieval", "xray.step.output_count": 100}),
        make_span(trace_id, base + 2, "filter_price", parent=base, start=t0 + 2 * 10**6, attrs={
            "xray.kind": "step", "xray.step.type": "filter", "xray.step.input_count": 100,
            "xray.step.output_count": 100 - drop,
            "xray.step.rejections": {"price_too_high": too_high, "price_too_low": drop - too_high}}),
    ]


@pytest.fixture(scope="module")
def shifted(receiver_url: str) -> str:
    """A pipeline whose filter halved its price limit 12 hours ago: over the 7 days before, it dropped
    about half (reasons split 60/40); since, about 90%, nearly all price_too_high. Sent in one OTLP request."""
    name, rng, now = f"ui_shift_{uuid.uuid4().hex[:8]}", random.Random(20), time.time_ns()
    spans = []
    for i in range(42):  # the baseline: every 4 hours of the 7 days before the window
        trace_id, base = new_ids()
        drop = rng.randint(44, 56)
        spans += shifted_run(trace_id, base, name, now - DAY - i * 4 * HOUR, drop, round(drop * 0.6))
    for i in range(24):  # the window: every half hour of the last 12 (the detector wants 20 runs a side)
        trace_id, base = new_ids()
        drop = rng.randint(86, 94)
        spans += shifted_run(trace_id, base, name, now - (i + 1) * HOUR // 2, drop, drop - rng.randint(0, 2))
    assert post_otlp(receiver_url, export_request(spans, service=f"uis-{uuid.uuid4().hex[:8]}")).status == 200
    return name


def wait_page(pg: object) -> None:
    expect(pg.locator("#view[aria-busy]")).to_have_count(0)


def test_step_search_finds_the_filters_that_eliminated_over_90_percent(page, receiver_url, history) -> None:
    page.goto(receiver_url + "/ui/#/steps")
    expect(page.get_by_role("heading", name="Step search")).to_be_visible()
    page.get_by_label("Step type").fill("filter")
    page.get_by_label("Drop rate at least (%)").fill("90")
    page.get_by_label("Pipeline").fill(history["name"])
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"min_drop_rate=0\.9"))
    wait_page(page)
    query = parse_qs(urlsplit(page.url).fragment.split("?", 1)[1])
    assert query == {"type": ["filter"], "min_drop_rate": ["0.9"], "run_name": [history["name"]]}
    rows = page.locator("#step-hits tbody tr")
    expect(rows).to_have_count(3)
    assert {r.get_attribute("data-run-id") for r in rows.all()} == set(history["strict"])
    expect(rows.first).to_contain_text("95.0%")
    expect(rows.first).to_contain_text("price_too_high 19")
    shot(page, "step-search")

    # A reason narrows it; the form shows the search it ran (a shared link opens the same).
    page.get_by_label("Step type").fill("")
    page.get_by_label("Drop rate at least (%)").fill("")
    page.get_by_label("Rejection reason").fill("low_score")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile("reason=low_score"))
    wait_page(page)
    expect(rows).to_have_count(6)  # the lenient runs' rank steps
    assert {r.get_attribute("data-step") for r in rows.all()} == {"rank"}
    assert {r.get_attribute("data-run-id") for r in rows.all()} == set(history["lenient"])

    page.go_back()  # the previous search comes back, form and all
    wait_page(page)
    expect(page.get_by_label("Drop rate at least (%)")).to_have_value("90")
    expect(rows).to_have_count(3)

    # A result opens its run at that step.
    link = rows.first.get_by_role("link", name=re.compile("filter_price"))
    link.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#step-detail h2")).to_contain_text("filter_price")
    assert "step=" in page.url


def test_step_search_says_what_is_wrong_and_keeps_the_form(page, receiver_url) -> None:
    page.goto(receiver_url + "/ui/#/steps?min_drop_rate=lots")
    expect(page.get_by_role("alert")).to_contain_text("min_drop_rate")
    expect(page.get_by_label("Drop rate at least (%)")).to_be_visible()
    page.goto(receiver_url + f"/ui/#/steps?name=no_such_step_{uuid.uuid4().hex[:6]}")
    expect(page.get_by_text("No step matches")).to_be_visible()


def test_pipelines_list_shows_runs_failures_worst_step_and_trend(page, receiver_url, history) -> None:
    page.goto(receiver_url + f"/ui/#/pipelines?since=7d&q={history['name']}")  # the session's database has many
    row = page.locator(f'#pipelines-table tr[data-pipeline="{history["name"]}"]')
    expect(row).to_be_visible()
    cells = row.locator("td")
    expect(cells.nth(0)).to_have_text("9")
    expect(cells.nth(1)).to_have_text("0")
    expect(cells.nth(2)).to_contain_text("filter_price")  # 75–95% on average: the biggest dropper
    expect(cells.nth(3).locator("svg.sparkline")).to_have_attribute("aria-label", re.compile("filter_price drop rate"))
    shot(page, "pipelines")
    row.get_by_role("link", name=history["name"], exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(history["name"])
    page.go_back()
    expect(row).to_be_visible()
    row.get_by_role("link", name=re.compile("9 runs")).click()
    expect(page.locator("#runs-table tbody tr")).to_have_count(9)
    expect(page.get_by_label("Pipeline (exact name)")).to_have_value(history["name"])


def test_no_page_scrolls_sideways_in_a_narrow_window(page, receiver_url, history) -> None:
    page.set_viewport_size({"width": 400, "height": 800})
    for path in ("#/steps?type=filter&min_drop_rate=0.9", "#/pipelines?since=7d", f"#/pipelines/{history['name']}?since=7d",
                 "#/alerts"):
        page.goto(receiver_url + "/ui/" + path)
        wait_page(page)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400, (path, width)



def test_pipeline_page_charts_drop_rates_reasons_and_the_change(page, receiver_url, shifted) -> None:
    changes = get_json(f"{receiver_url}/pipelines/{shifted}/changes?window=24h&baseline=7d")["changes"]
    flagged = {(c["step"], c["what"], c["reason"]) for c in changes if c["significant"]}
    assert ("filter_price", "drop_rate", None) in flagged  # the detector's answer, which the page shows
    page.goto(receiver_url + f"/ui/#/pipelines/{shifted}?since=24h")
    expect(page.get_by_role("heading", level=1)).to_have_text(shifted)
    chart = page.locator("svg#drop-chart")
    expect(chart.locator(".series")).to_have_count(1)  # retrieve has no drop rate: not drawn as zero
    expect(chart.locator(".series")).to_have_attribute("data-name", "filter_price")
    expect(chart.locator(".series")).to_have_class(re.compile(r"\bchanged\b"))
    expect(page.locator(".legend").first).to_contain_text("filter_price ⚑ changed")
    expect(chart.locator(".mark text")).to_contain_text(f"{len(flagged)} change")
    expect(page.locator("#changes li", has_text="filter_price: drop rate +")).to_have_count(1)  # ranked among the others
    expect(page.locator("#changes")).to_contain_text("significant")
    buckets = chart.locator("a.bucket")
    series = get_json(f"{receiver_url}/pipelines/{shifted}/series?since=8d&bucket=hour")
    expect(buckets).to_have_count(len(series["buckets"]))
    expect(page.locator("#drop-table tbody tr")).to_have_count(len(series["buckets"]))
    empty = next(i for i, b in enumerate(series["buckets"]) if b["run_count"] == 0)
    expect(buckets.nth(empty)).to_have_attribute("aria-label", re.compile("0 runs; filter_price unknown"))
    bars = page.locator("svg#reason-chart .bar")
    expect(bars).to_have_count(len(series["buckets"]))
    expect(page.locator("svg#reason-chart .bar.unknown").first).to_be_visible()
    expect(page.locator("#reason-table thead")).to_contain_text("price_too_high")
    shot(page, "pipeline")

    # A bucket opens its runs, from the keyboard too.
    last = max(i for i, b in enumerate(series["buckets"]) if b["run_count"])
    expect(chart.locator('a.bucket[tabindex="0"]')).to_have_count(1)  # one Tab stop, not one per bucket
    chart.locator('a.bucket[tabindex="0"]').focus()
    page.keyboard.press("End")
    for _ in range(len(series["buckets"]) - 1 - last):
        page.keyboard.press("ArrowLeft")
    expect(buckets.nth(last)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#/runs\?name="))
    rows = page.locator("#runs-table tbody tr")
    expect(rows).to_have_count(series["buckets"][last]["run_count"])
    query = parse_qs(urlsplit(page.url).fragment.split("?", 1)[1])
    assert query["since"] == [series["buckets"][last]["start"]] and query["until"] == [series["buckets"][last]["end"]]


def test_pipelines_list_marks_what_changed(page, receiver_url, shifted) -> None:
    page.goto(receiver_url + f"/ui/#/pipelines?since=24h&q={shifted}")
    row = page.locator(f'#pipelines-table tr[data-pipeline="{shifted}"]')
    expect(row).to_have_class(re.compile(r"\bchanged\b"))
    expect(row).to_contain_text("⚑ filter_price: drop rate +")
    expect(row.locator("td").nth(0)).to_have_text("24")


def test_too_little_data_is_said_not_flagged(page, receiver_url, history) -> None:
    page.goto(receiver_url + f"/ui/#/pipelines/{history['name']}?since=24h")
    expect(page.locator("#changes-h")).to_be_visible()
    expect(page.get_by_text("No significant change.")).to_be_visible()
    page.get_by_text(re.compile("comparisons not significant or with too little data")).click()
    expect(page.locator('#other-changes li[data-step="filter_price"]')).to_contain_text("too little data")
    expect(page.locator('#other-changes li[data-step="retrieve"]')).to_contain_text("unknown")


def test_alerts_page_shows_a_rule_firing_and_its_firing(page, receiver_url, shifted) -> None:
    name = f"ui-rule-{uuid.uuid4().hex[:6]}"
    rule = {"name": name, "kind": "threshold", "pipeline": shifted, "step": "filter_price", "metric": "drop_rate",
            "threshold": 0.8, "window": "6h"}
    reply = call("POST", receiver_url + "/alerts/rules", json.dumps(rule).encode(), {"Content-Type": "application/json"})
    assert reply.status == 201, reply.body
    deadline = time.monotonic() + 60  # the server evaluates a new rule within seconds, in the background
    while time.monotonic() < deadline and not any(
            r["name"] == name and r["state"] == "firing" for r in get_json(receiver_url + "/alerts")["rules"]):
        time.sleep(0.5)
    page.goto(receiver_url + "/ui/#/alerts")
    row = page.locator(f'#alert-rules tr[data-rule="{name}"]')
    expect(row).to_contain_text("firing")
    expect(row).to_contain_text("drop rate above 80.0% over 6h")
    expect(row.get_by_role("link", name=shifted)).to_be_visible()
    expect(page.locator(f'#alert-firings tr[data-rule="{name}"]')).to_contain_text("none (no webhook)")
    shot(page, "alerts")
