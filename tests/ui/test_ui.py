"""The web UI in a real headless Chromium, against a real receiver and PostgreSQL.

Data arrives over OTLP (the demo pipeline through the SDK's exporter, the phone-case runs as
protobuf requests); the page reads only the public REST API. Screenshots of each page go to
artifacts/screenshots/ (git-ignored). Chromium is Debian's `chromium` (or XRAY_CHROMIUM); without
it these tests skip locally and fail under CI, whose .ci/run installs it.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from conftest import _admin, _with_database, serve
from helpers import export_request, get_json, make_span, new_ids, post_otlp, span_id
from query_data import accessory_run, listing_run
from demo_funnel import EXPECTED_FUNNEL

playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect

SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    given = os.environ.get("XRAY_CHROMIUM")
    if given:
        return given
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    path = chromium_path()
    if path is None:
        message = "no Chromium: install Debian's `chromium` (apt-get install chromium) or set XRAY_CHROMIUM"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: object, receiver_url: str) -> Iterator[object]:
    """A fresh page that fails the test on any script error or request to another origin."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    origin = urlsplit(receiver_url).netloc
    pg.on("request", lambda req: urlsplit(req.url).netloc in (origin, "") or problems.append(f"left origin: {req.url}"))
    pg.set_default_timeout(10_000)
    yield pg
    context.close()
    assert not problems, problems


def shot(pg: object, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def demo_run(receiver_url: str) -> str:
    """The demo pipeline, run by `xray-otel demo` against the test receiver (OTLP/HTTP via the SDK)."""
    out = subprocess.run([sys.executable, "-m", "xray_otel", "demo", "--url", receiver_url],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return re.search(r"^Run (\S+)", out.stdout, re.M).group(1)


@pytest.fixture(scope="module")
def accessory_runs(receiver_url: str) -> dict[str, str]:
    """The phone-case walkthrough: a lenient run that picks the phone case, a strict one that drops it."""
    service, t0 = f"ui-{uuid.uuid4().hex[:8]}", time.time_ns()
    return {"good": accessory_run(receiver_url, service, strict=False, t0=t0 - 10**9, name="ui_accessory"),
            "bad": accessory_run(receiver_url, service, strict=True, t0=t0, name="ui_accessory")}


def test_a_browser_asking_for_root_lands_on_the_runs_page(page, receiver_url, demo_run) -> None:
    page.goto(receiver_url + "/")
    assert urlsplit(page.url).path == "/ui/"
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    expect(page.locator("#runs-table tbody tr").first).to_be_visible()
    page.get_by_label("Name contains").fill("competitor_selection")  # other tests' runs may be newer
    apply_filters(page, "q=competitor_selection")
    expect(page.locator(f'tr[data-run-id="{demo_run}"]')).to_contain_text("competitor_selection")
    shot(page, "runs")


def test_a_new_run_appears_on_refresh_once_acknowledged(page, receiver_url) -> None:
    name = f"fresh_{uuid.uuid4().hex[:8]}"
    page.goto(receiver_url + f"/ui/#/runs?q={name}")
    expect(page.get_by_text("No run matches these filters")).to_be_visible()
    trace_id, base = new_ids()
    assert post_otlp(receiver_url, export_request([make_span(trace_id, base, name, attrs={"xray.kind": "run"})])).status == 200
    page.get_by_role("button", name="Refresh").click()  # one refresh, no polling: acknowledged = visible
    expect(page.locator("#runs-table tbody tr")).to_have_count(1)
    expect(page.locator("#runs-table")).to_contain_text(name)


def apply_filters(page, expected_in_url: str) -> None:
    """Submit the runs filters and wait for that page, so the next step never acts on the previous one."""
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(re.escape(expected_in_url)))
    expect(page.locator("#view[aria-busy]")).to_have_count(0)


def test_runs_filters_narrow_the_table(page, receiver_url, accessory_runs) -> None:
    page.goto(receiver_url + "/ui/#/runs")
    page.get_by_label("Name contains").fill("ui_accessory")
    apply_filters(page, "q=ui_accessory")
    rows = page.locator("#runs-table tbody tr")
    expect(rows).to_have_count(2)
    page.get_by_label("Status").select_option("failed")
    apply_filters(page, "status=failed")
    expect(page.get_by_text("No run matches these filters")).to_be_visible()
    assert "q=ui_accessory" in page.url
    page.get_by_label("Status").select_option("")
    page.get_by_label("or from").fill("2099-01-01T00:00")
    apply_filters(page, "since=2099-01-01T")
    expect(page.get_by_text("No run matches these filters")).to_be_visible()
    page.get_by_label("or from").fill("2000-01-01T00:00")
    page.get_by_label("to", exact=True).fill("2099-01-01T00:00")
    apply_filters(page, "until=2099-01-01T")
    expect(rows).to_have_count(2)
    expect(page.get_by_label("to", exact=True)).to_have_value("2099-01-01T00:00")
    page.get_by_role("link", name="Cost").click()  # the lenient run cost 0.02, the strict one 0.004
    expect(page).to_have_url(re.compile("sort=-cost"))
    expect(rows.first).to_have_attribute("data-run-id", accessory_runs["good"])
    expect(page.get_by_role("columnheader", name="Cost ▼")).to_have_attribute("aria-sort", "descending")
    page.get_by_role("link", name="Cost ▼").click()
    expect(page).to_have_url(re.compile(r"sort=cost(&|$)"))
    expect(rows.first).to_have_attribute("data-run-id", accessory_runs["bad"])
    page.get_by_label("Status").select_option("completed")
    apply_filters(page, "status=completed")  # filtering again keeps the order
    assert "sort=cost" in page.url
    expect(rows.first).to_have_attribute("data-run-id", accessory_runs["bad"])


def test_runs_page_pages_older_and_back_newer(page, receiver_url) -> None:
    name, t0 = f"paged_{uuid.uuid4().hex[:8]}", time.time_ns()
    spans = []
    for i in range(55):
        trace_id, base = new_ids()
        spans.append(make_span(trace_id, base, name, attrs={"xray.kind": "run"}, start=t0 - i * 10**6))
    assert post_otlp(receiver_url, export_request(spans)).status == 200
    page.goto(receiver_url + f"/ui/#/runs?q={name}")
    rows = page.locator("#runs-table tbody tr")
    expect(rows).to_have_count(50)
    page.get_by_role("link", name="Older →").click()
    expect(rows).to_have_count(5)
    second = page.url
    page.get_by_role("link", name="← Newer").click()
    expect(rows).to_have_count(50)
    expect(page.get_by_role("link", name="← Newer")).to_have_count(0)
    page.goto("about:blank")
    page.goto(second)  # a shared link to page 2: Newer stays in the app
    expect(rows).to_have_count(5)
    page.get_by_role("link", name="← Newer").click()
    expect(rows).to_have_count(50)
    assert urlsplit(page.url).path == "/ui/"


def test_run_page_draws_the_demo_funnel_with_the_right_counts(page, receiver_url, demo_run) -> None:
    page.goto(receiver_url + f"/ui/#/runs/{demo_run}")
    rows = page.locator("svg.funnel .funnel-row")
    counted = [(name, n_in, n_out) for name, _, n_in, n_out, _ in EXPECTED_FUNNEL if n_in or n_out]
    expect(rows).to_have_count(len(counted))
    got = [(r.get_attribute("data-step"), r.get_attribute("data-in"), r.get_attribute("data-out")) for r in rows.all()]
    assert got == [(name, str(n_in or ""), str(n_out or "")) for name, n_in, n_out in counted]
    biggest = page.locator("svg.funnel .funnel-row.biggest")
    expect(biggest).to_have_attribute("data-step", "filter_by_price")
    expect(biggest).to_contain_text("5,000 → 1,731")
    expect(biggest).to_contain_text("65.4%")
    expect(page.locator("#step-tree tbody tr")).to_have_count(len(EXPECTED_FUNNEL))
    expect(page.locator("#biggest-drop")).to_have_text(
        "Biggest drop: filter_by_price removed 3,269 of 5,000 (65.4%): price_too_high 2,608, price_too_low 661.")
    expect(page.locator(".run-header .facts")).to_contain_text('"selected":"B000004528"')
    shot(page, "run")


def test_clicking_a_step_shows_its_rejection_reasons_and_decisions(page, receiver_url, demo_run) -> None:
    page.goto(receiver_url + f"/ui/#/runs/{demo_run}")
    page.locator('#step-tree tr[data-step="filter_by_rating"]').click()
    detail = page.locator("#step-detail")
    expect(detail.get_by_role("heading", level=2)).to_contain_text("filter_by_rating")
    reasons = detail.locator("#rejections li")
    expect(reasons).to_have_count(2)
    expect(reasons.nth(0)).to_contain_text("rating_too_low")
    expect(reasons.nth(0)).to_contain_text("1,614")
    expect(reasons.nth(1)).to_contain_text("too_few_reviews")
    assert "step=" in page.url  # the chosen step is part of the shareable address
    dropped = get_json(f"{receiver_url}/runs/{demo_run}/candidates?step=filter_by_rating&accepted=false&limit=1")[0]
    detail.get_by_label("Search decisions by candidate id").fill(dropped["candidate_id"])
    row = detail.locator(f'#decisions tr[data-candidate="{dropped["candidate_id"]}"]')
    expect(row).to_contain_text("dropped")
    expect(row).to_contain_text(dropped["reason"])
    shot(page, "step")


def test_steps_and_funnel_bars_answer_the_keyboard(page, receiver_url, demo_run) -> None:
    page.goto(receiver_url + f"/ui/#/runs/{demo_run}")
    page.locator('#step-tree tr[data-step="filter_by_category"]').focus()
    page.keyboard.press("Enter")
    expect(page.locator("#step-detail h2")).to_contain_text("filter_by_category")
    page.locator('svg.funnel .funnel-row[data-step="rank_and_select"]').focus()
    page.keyboard.press("Enter")
    expect(page.locator("#step-detail h2")).to_contain_text("rank_and_select")
    expect(page.locator("#step-detail #rejections")).to_contain_text("below_top_k")


def test_a_candidate_search_shows_where_and_why_it_was_dropped(page, receiver_url, demo_run, accessory_runs) -> None:
    page.goto(receiver_url + f"/ui/#/runs/{accessory_runs['bad']}")
    page.get_by_label("Where did a candidate go?").fill("phone-case")
    page.get_by_role("button", name="Trace").click()
    verdict = page.locator("#verdict")
    expect(verdict).to_have_text("Dropped at filter_price (filter) because price_too_high.")
    expect(page.locator('#candidate-path tr[data-step="filter_price"]')).to_contain_text("20 → 1")
    shot(page, "candidate")
    dropped = get_json(f"{receiver_url}/runs/{demo_run}/candidates?step=filter_by_rating&accepted=false&limit=1")[0]
    page.goto(receiver_url + f"/ui/#/runs/{demo_run}/candidates/{dropped['candidate_id']}")
    expect(verdict).to_contain_text(f"Dropped at filter_by_rating (filter) because {dropped['reason']}")
    expect(page.locator('#candidate-path tr[data-step="filter_by_price"]')).to_contain_text("kept")
    page.get_by_label("Candidate id").fill("no-such-candidate")
    page.get_by_role("button", name="Trace another").click()
    expect(page.locator(".notice")).to_contain_text("no-such-candidate")


def test_a_candidate_of_an_incomplete_step_is_unknown_not_kept(page, receiver_url) -> None:
    """A step announced two parts of outcomes and one arrived: a candidate not in it is unknown, with why;
    one in it is exact; the page says so rather than "kept"."""
    from helpers import Array

    trace_id, base = new_ids()
    outcomes = {"xray.step.outcomes.ids": Array(["a", "b"]), "xray.step.outcomes.codes": Array([0, 1]),
                "xray.step.outcomes.reasons": Array(["too_far"]), "xray.step.outcomes.total": 4,
                "xray.step.outcomes.part": 0, "xray.step.outcomes.parts": 2}
    assert post_otlp(receiver_url, export_request([
        make_span(trace_id, base, "ui_partial", attrs={"xray.kind": "run"}),
        make_span(trace_id, base + 1, "near_enough", parent=base, attrs={
            "xray.step.type": "filter", "xray.step.input_count": 4, "xray.step.output_count": 2, **outcomes})])).status == 200
    run_id = uuid.UUID(bytes=trace_id)
    page.goto(receiver_url + f"/ui/#/runs/{run_id}/candidates/zzz")
    expect(page.locator("#verdict")).to_contain_text("Fate unknown")
    expect(page.locator("#verdict")).to_contain_text("near_enough")
    page.goto(receiver_url + f"/ui/#/runs/{run_id}/candidates/b")
    expect(page.locator("#verdict")).to_have_text("Dropped at near_enough (filter) because too_far.")


def test_two_runs_compared_side_by_side_with_differences_marked(page, receiver_url, accessory_runs) -> None:
    page.goto(receiver_url + "/ui/#/runs?q=ui_accessory")
    for run_id in (accessory_runs["good"], accessory_runs["bad"]):
        page.locator(f'tr[data-run-id="{run_id}"] input[type=checkbox]').check()
    page.get_by_role("button", name="Compare 2 selected").click()
    expect(page.locator("#divergence")).to_contain_text("First difference at filter_price")
    changed = page.locator('#compare-steps tr[data-step="filter_price"]')
    expect(changed).to_have_class(re.compile(r"\bchanged\b"))
    expect(changed).to_contain_text("output_count")
    cells = changed.locator("td")
    assert {cells.nth(0).inner_text(), cells.nth(3).inner_text()} == {"20 → 5", "20 → 1"}
    expect(page.locator('#compare-steps tr[data-step="retrieve"]')).not_to_have_class(re.compile("changed"))
    sides = {side: page.locator(f'#compare-funnels [data-side="{side}"] .funnel-row[data-step="filter_price"]')
             for side in ("base", "other")}
    assert {sides["base"].get_attribute("data-out"), sides["other"].get_attribute("data-out")} == {"5", "1"}
    expect(page.locator("#compare-summary")).to_contain_text("phone-case")
    expect(page.locator("#compare-summary")).to_contain_text("laptop-stand")
    expect(page.locator("#compare-summary tr", has_text="Final outputs")).to_have_class(re.compile("changed"))
    shot(page, "compare")
    page.get_by_label(re.compile("Only the 2 changed of 3 steps")).check()
    expect(page.locator("#compare-steps tbody tr")).to_have_count(2)


def test_runs_with_the_same_outputs_are_not_marked_as_changed(page, receiver_url, accessory_runs) -> None:
    twin = accessory_run(receiver_url, "ui-twin", strict=True, t0=time.time_ns(), name="ui_accessory")
    page.goto(receiver_url + f"/ui/#/compare?base={accessory_runs['bad']}&other={twin}")
    expect(page.locator("#divergence")).to_have_text("The two funnels match step for step.")
    expect(page.locator("#compare-summary tr", has_text="Final outputs")).not_to_have_class(re.compile("changed"))
    expect(page.locator("#compare-steps tr.changed")).to_have_count(0)


def test_a_run_of_two_candidate_streams_shows_two_labelled_funnels(page, receiver_url) -> None:
    """6 titles -> 1 and 8 bullets -> 5 in one run: two funnels, each named and counted, never "6 → 5"."""
    run_id = listing_run(receiver_url, "ui-listing", t0=time.time_ns(), named=True)
    page.goto(receiver_url + f"/ui/#/runs/{run_id}")
    expect(page.locator("#funnel-h")).to_have_text("Funnels (2)")
    streams = page.locator("#funnels section.stream")
    expect(streams).to_have_count(2)
    expect(streams.nth(0).locator("h3")).to_have_text("titles: 6 → 1")
    expect(streams.nth(1).locator("h3")).to_have_text("bullets: 8 → 5")
    rows = {name: [(r.get_attribute("data-step"), r.get_attribute("data-in"), r.get_attribute("data-out"))
                   for r in page.locator(f'section.stream[data-funnel="{name}"] .funnel-row').all()]
            for name in ("titles", "bullets")}
    assert rows == {"titles": [("generate_titles", "", "6"), ("choose_title", "6", "1")],
                    "bullets": [("generate_bullets", "", "8"), ("filter_bullets", "8", "5")]}
    expect(page.locator(".run-header .facts")).to_contain_text("titles 6 → 1; bullets 8 → 5")
    expect(page.locator(".run-header .facts")).not_to_contain_text("6 → 5")
    page.locator('section.stream[data-funnel="bullets"] .funnel-row[data-step="filter_bullets"]').click()
    expect(page.locator("#step-detail h2")).to_contain_text("filter_bullets")
    shot(page, "run-two-funnels")

    other = listing_run(receiver_url, "ui-listing", t0=time.time_ns(), named=True, bullets_kept=2)
    page.goto(receiver_url + f"/ui/#/compare?base={run_id}&other={other}")
    pairs = page.locator("#compare-funnels .stream")
    expect(pairs).to_have_count(2)
    expect(pairs.nth(1).locator("h3")).to_have_text("Funnel bullets")
    expect(pairs.nth(1).locator('[data-side="other"] .funnel-row[data-step="filter_bullets"]')).to_have_attribute(
        "data-out", "2")
    expect(page.locator("#divergence")).to_contain_text("First difference at filter_bullets in funnel bullets")
    expect(page.locator('#compare-steps tr[data-funnel="titles"][data-step="choose_title"]')).not_to_have_class(
        re.compile("changed"))
    shot(page, "compare-two-funnels")


def test_bad_input_gets_a_message_and_keeps_the_form(page, receiver_url) -> None:
    page.goto(receiver_url + f"/ui/#/runs/{uuid.uuid4()}")
    expect(page.get_by_role("alert")).to_contain_text("Not found")
    expect(page.get_by_role("alert").get_by_role("link", name="Go to the runs list")).to_be_visible()
    page.goto(receiver_url + "/ui/#/compare?base=nope&other=nope")
    expect(page.get_by_role("alert")).to_contain_text("cannot be compared")
    expect(page.get_by_label("Base run")).to_have_value("nope")
    page.goto(receiver_url + "/ui/#/runs")
    page.get_by_label("Tags (key:value)").fill("no-colon")
    apply_filters(page, "tag=no-colon")
    expect(page.get_by_role("alert")).to_contain_text("cannot be used")
    expect(page.get_by_label("Tags (key:value)")).to_have_value("no-colon")
    page.goto(receiver_url + "/ui/#/nowhere")
    expect(page.get_by_role("alert")).to_contain_text("No such page")


def test_the_page_and_its_files_are_served_for_offline_use_and_revalidated(receiver_url) -> None:
    """Everything the page loads comes from the package, each file revalidated after an upgrade."""
    from helpers import call

    shell = call("GET", receiver_url + "/ui/")
    assert shell.status == 200 and "default-src 'self'" in shell.headers["Content-Security-Policy"]
    for asset in re.findall(r'(?:href|src)="(assets/[^"]+)"', shell.body.decode()):
        reply = call("GET", f"{receiver_url}/ui/{asset}")
        assert reply.status == 200 and reply.headers["Cache-Control"] == "no-cache", asset
    assert call("GET", receiver_url + "/ui/assets/../routes.py").status == 404


def test_recorded_text_is_shown_as_text_never_run(page, receiver_url) -> None:
    name = '<img src=x onerror="window.__xray_pwned=1">'
    trace_id, base = new_ids()
    post_otlp(receiver_url, export_request([
        make_span(trace_id, base, name, attrs={"xray.kind": "run"}),
        make_span(trace_id, base + 1, "<script>window.__xray_pwned=2</script>", parent=base,
                  attrs={"xray.kind": "step", "xray.step.type": "filter", "xray.step.input_count": 2,
                         "xray.step.output_count": 1, "xray.step.rejections": {"<b>x</b>": 1},
                         "xray.step.reasoning": "<iframe src=javascript:alert(1)>"})]))
    run_id = str(uuid.UUID(bytes=trace_id))
    page.goto(receiver_url + f"/ui/#/runs/{run_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    expect(page.locator("#step-detail")).to_contain_text("<iframe src=javascript:alert(1)>")
    assert page.evaluate("window.__xray_pwned") is None
    assert page.locator("main img, main script, main iframe").count() == 0


def test_a_large_run_renders_pages_not_everything(page, receiver_url) -> None:
    """1,000 steps and 10,000 decisions: the tree shows 200 rows, a step's decisions 50 at a time,
    the funnel its first 60 counted steps plus the biggest drop wherever it is."""
    trace_id, base = new_ids()
    t0 = time.time_ns()

    def step(i: int, n_in: int, n_out: int, decisions: list[dict]) -> object:
        return make_span(trace_id, base + i, f"step_{i:04d}", parent=base, start=t0 + i * 1000, attrs={
            "xray.kind": "step", "xray.step.type": "filter", "xray.step.input_count": n_in,
            "xray.step.output_count": n_out, "xray.step.decisions": decisions,
            "xray.step.funnel": "big"})  # one stream: the counts alone do not chain (10 -> 5, 10 -> 5, ...)

    spans = [make_span(trace_id, base, "big_run", attrs={"xray.kind": "run"}, start=t0, duration_ns=10**9)]
    spans += [step(i, 10, 5, [{"id": f"c{i}-{j}", "accepted": j % 2 == 0} for j in range(10)]) for i in range(2, 1001)]
    spans.insert(1, step(1, 10_000, 5_000, [{"id": f"d{j}", "accepted": j % 2 == 0} for j in range(10_000)]))
    spans[700] = step(700, 100_000, 1, [])
    for chunk in range(0, len(spans), 250):
        assert post_otlp(receiver_url, export_request(spans[chunk:chunk + 250])).status == 200
    page.goto(receiver_url + f"/ui/#/runs/{uuid.UUID(bytes=trace_id)}?step={spans[1].span_id.hex()}")
    tree = page.locator("#step-tree tbody tr")
    expect(tree).to_have_count(200)
    expect(page.locator("#decisions tbody tr")).to_have_count(50)
    expect(page.locator("#step-detail")).to_contain_text("1–50 of 10,000 recorded")
    page.get_by_label("Search decisions by candidate id or reason").fill("d9999")
    expect(page.locator("#decisions tbody tr")).to_have_count(1)
    rows = page.locator("svg.funnel .funnel-row")
    expect(rows).to_have_count(61)
    expect(rows.last).to_have_attribute("data-step", "step_0700")
    expect(rows.last).to_have_class(re.compile("biggest"))
    rows.last.click()  # the tree shows rows until the chosen step, which alone is selected
    expect(page.locator("#step-detail h2")).to_contain_text("step_0700")
    expect(tree).to_have_count(800)
    expect(page.locator('#step-tree tr[aria-selected="true"]')).to_have_count(1)
    expect(page.locator('#step-tree tr[aria-selected="true"]')).to_have_attribute("data-step", "step_0700")
    page.get_by_role("button", name="Show 200 more of 200").click()
    expect(tree).to_have_count(1000)
    expect(page.locator('#step-tree tr[aria-selected="true"]')).to_have_count(1)


# Words of each element's text that the browser split over two lines.
SPLIT_WORDS = """(els) => els.flatMap((el) => {
  const text = el.firstChild, split = [];
  let at = 0;
  for (const word of text.data.split(" ")) {
    const range = document.createRange();
    range.setStart(text, at);
    range.setEnd(text, at + word.length);
    if (range.getClientRects().length > 1) split.push(word);
    at += word.length + 1;
  }
  return split;
})"""
# Funnel texts drawn (partly) outside the figure, which cuts off what overflows it.
CUT_OFF = """(texts) => texts.filter((t) => {
  const box = t.getBoundingClientRect(), fig = t.closest("figure").getBoundingClientRect();
  return box.left < fig.left || box.right > fig.right;
}).map((t) => t.textContent)"""


def test_long_labels_wrap_between_words_and_nothing_is_cut_off(page, receiver_url, demo_run) -> None:
    reasons = {"banned_word:best": 300, "banned_word:bestseller_guaranteed": 250,
               "price_above_competitor_median_by_more_than_20_percent": 200,
               "category_mismatch:Sports & Outdoors > Water Bottles > Insulated": 150}
    trace_id, base = new_ids()
    post_otlp(receiver_url, export_request([
        make_span(trace_id, base, "long_labels", attrs={"xray.kind": "run"}),
        make_span(trace_id, base + 1, "filter_by_banned_words_and_price_rules", parent=base, attrs={
            "xray.kind": "step", "xray.step.type": "filter", "xray.step.input_count": 5000,
            "xray.step.output_count": 4100, "xray.step.rejections": reasons})]))
    run_id = str(uuid.UUID(bytes=trace_id))
    page.goto(receiver_url + f"/ui/#/runs/{run_id}?step={span_id(base + 1).hex()}")
    labels = page.locator("#rejections .reason")
    expect(labels).to_have_count(len(reasons))
    assert labels.evaluate_all(SPLIT_WORDS) == []
    assert labels.evaluate_all("(els) => els.filter((el) => el.scrollWidth > el.clientWidth).length") == 0
    shot(page, "step-long-reasons")

    page.goto(receiver_url + f"/ui/#/compare?base={demo_run}&other={run_id}")
    biggest = page.locator("#compare-funnels .funnel-row.biggest .figure")
    expect(biggest).to_have_count(2)
    expect(biggest.first).to_contain_text("◀ biggest drop")
    assert page.locator("#compare-funnels .funnel-row text").evaluate_all(CUT_OFF) == []
    shot(page, "compare-long-labels")


def test_odd_figures_are_shown_for_what_they_are(page, receiver_url) -> None:
    trace_id, base = new_ids()
    post_otlp(receiver_url, export_request([
        make_span(trace_id, base, "odd_run", attrs={"xray.kind": "run"}),
        make_span(trace_id, base + 1, "expand", parent=base, attrs={
            "xray.kind": "step", "xray.step.type": "retrieval", "xray.step.input_count": 5, "xray.step.output_count": 9,
            "xray.step.rejections": {"real": 2, "bogus": "lots"},
            "xray.step.decisions": [{"id": "x1", "accepted": None}, {"id": "x2", "accepted": False, "reason": "real"}]})]))
    page.goto(receiver_url + f"/ui/#/runs/{uuid.UUID(bytes=trace_id)}")
    expect(page.locator('#step-tree tr[data-step="expand"]')).to_contain_text("+4 added")
    page.locator('#step-tree tr[data-step="expand"]').click()
    expect(page.locator("#rejections li")).to_have_count(1)
    expect(page.locator("#rejections")).not_to_contain_text("NaN")
    page.get_by_label("Show decisions").select_option("dropped")
    expect(page.locator("#decisions tbody tr")).to_have_count(1)
    expect(page.locator("#decisions tbody tr")).to_contain_text("x2")


@pytest.fixture
def empty_receiver(pg_dsn: str) -> Iterator[str]:
    """A receiver on a database of its own, with no runs in it."""
    name = f"xray_ui_empty_{uuid.uuid4().hex[:8]}"
    admin(pg_dsn, f'CREATE DATABASE "{name}"')
    try:
        with serve(_with_database(pg_dsn, name)) as server:
            yield server.url
    finally:
        admin(pg_dsn, f'DROP DATABASE "{name}" WITH (FORCE)')


def admin(dsn: str, statement: str) -> None:
    """One statement on its own thread: Playwright's sync API keeps an event loop on this one."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _admin(dsn, statement)).result()


def test_an_empty_server_says_how_to_send_runs(browser, empty_receiver) -> None:
    pg = browser.new_page()
    pg.goto(empty_receiver + "/ui/")
    note = pg.locator(".notice")
    expect(note).to_contain_text("No runs yet")
    expect(note).to_contain_text(f"OTEL_EXPORTER_OTLP_ENDPOINT={empty_receiver}")
    expect(note).to_contain_text("xray-otel demo")
    shot(pg, "runs-empty")
    pg.close()


def test_with_keys_the_page_asks_for_one_and_uses_it(browser, pg_dsn) -> None:
    with serve(pg_dsn, api_keys="read:ui-reader-key") as server:
        pg = browser.new_page()
        pg.goto(server.url + "/")
        assert urlsplit(pg.url).path == "/ui/"  # the shell loads without a key; the data does not
        expect(pg.get_by_role("alert")).to_contain_text("This server asks for an API key")
        pg.get_by_label("API key (with read scope)").fill("wrong-key")
        pg.get_by_role("button", name="Use this key").click()
        expect(pg.get_by_role("alert")).to_contain_text("not accepted")
        pg.get_by_label("API key (with read scope)").fill("ui-reader-key")
        pg.get_by_role("button", name="Use this key").click()
        expect(pg.get_by_role("heading", name="Runs")).to_be_visible()
        expect(pg.locator("#runs-table, .notice")).to_be_visible()
        pg.close()
