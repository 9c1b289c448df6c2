"""One candidate across runs and the candidates a pipeline never lets through (issue 18), in a real headless
Chromium against a real receiver and PostgreSQL.

Runs arrive over OTLP/HTTP as the SDK sends exact outcomes (parallel id / code attributes); the pages read
only the public REST API. Browser fixtures are test_ui's.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import pytest

from helpers import Array, export_request, make_span, new_ids, post_otlp
from test_ui import browser, page, shot  # noqa: F401 (fixtures)

playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect

TARGET = "B0PHONECASE"
ALWAYS_OUT = "B0GOLDPLATED"
MINUTE = 60 * 10**9


def _run(url: str, name: str, t0: int, target: str | None, *, cut: bool = False) -> str:
    """A run of one price filter: ALWAYS_OUT dropped, TARGET kept / dropped / absent (``target`` None).
    ``cut``: the filter announces two parts of outcomes and sends the one without TARGET, so its fate
    there is unknown."""
    trace, base = new_ids()
    ids = [ALWAYS_OUT] + [f"B0{n:08d}" for n in range(8)]
    codes = [1] + [0] * 8
    if target is not None and not cut:
        ids.append(TARGET)
        codes.append(1 if target == "dropped" else 0)
    outcomes: dict[str, Any] = {"xray.step.outcomes.ids": Array(ids), "xray.step.outcomes.codes": Array(codes),
                                "xray.step.outcomes.reasons": Array(["price_too_high"])}
    if cut:
        outcomes.update({"xray.step.outcomes.total": len(ids) + 5, "xray.step.outcomes.part": 0,
                         "xray.step.outcomes.parts": 2})
    spans = [
        make_span(trace, base, name, attrs={"xray.kind": "run"}, start=t0, duration_ns=10**7),
        make_span(trace, base + 1, "filter_by_price", parent=base, start=t0 + 10**6, attrs={
            "xray.kind": "step", "xray.step.type": "filter", "xray.step.input_count": len(ids), **outcomes}),
    ]
    assert post_otlp(url, export_request(spans, service="ui-history")).status == 200
    return str(uuid.UUID(bytes=trace))


@pytest.fixture(scope="module")
def runs(receiver_url: str) -> dict[str, Any]:
    """Oldest first: a run without the target, three that keep it, two that drop it (price_too_high),
    and one whose outcomes were cut before the target's part (unknown)."""
    name, now = f"ui_history_{uuid.uuid4().hex[:8]}", time.time_ns()
    fates = [None, "kept", "kept", "kept", "dropped", "dropped", "cut"]
    ids = [_run(receiver_url, name, now - (len(fates) - i) * MINUTE, fate, cut=fate == "cut")
           for i, fate in enumerate(fates)]
    return {"name": name, "absent": ids[0], "kept": ids[1:4], "dropped": ids[4:6], "unknown": ids[6]}


def wait_page(pg: Any) -> None:
    expect(pg.locator("#view[aria-busy]")).to_have_count(0)


def history_url(receiver_url: str, runs: dict[str, Any], query: str = "") -> str:
    return f"{receiver_url}/ui/#/pipelines/{runs['name']}/candidates/{TARGET}{query}"


def test_timeline_shows_each_runs_fate_the_change_and_the_unknown(page, receiver_url, runs) -> None:
    page.goto(history_url(receiver_url, runs))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Candidate {TARGET} across runs")
    expect(page.locator("#history-coverage")).to_contain_text(f"covers the 7 runs of {runs['name']}")
    expect(page.locator("#history-coverage")).to_contain_text("every run of the last 7 days")
    expect(page.locator("#fact-appeared")).to_contain_text("6 of 7 runs read")
    expect(page.locator("#fact-outcomes")).to_contain_text("3 / 2 / 1")
    expect(page.locator("#fact-left")).to_contain_text("filter_by_price (price_too_high): 2 runs")
    items = page.locator("#history-runs > li")
    newest_first = [runs["unknown"], *reversed(runs["dropped"]), *reversed(runs["kept"])]
    expect(items).to_have_count(6)
    assert [li.get_attribute("data-run-id") for li in items.all()] == newest_first
    assert [li.get_attribute("data-outcome") for li in items.all()] == ["unknown"] + ["dropped"] * 2 + ["kept"] * 3

    # The fate changed twice: kept → dropped at the first dropping run, dropped → unknown at the cut one.
    changed = page.locator("#history-runs > li.changed")
    expect(changed).to_have_count(2)
    expect(page.locator("#fact-changes")).to_contain_text("2 times")
    first_drop = page.locator(f'#history-runs > li[data-run-id="{runs["dropped"][0]}"]')
    expect(first_drop).to_have_class(re.compile(r"\bchanged\b"))
    expect(first_drop).to_contain_text("Fate changed from kept in the run before")
    expect(first_drop).to_contain_text("Dropped at filter_by_price because price_too_high")
    unknown = items.first
    expect(unknown).to_contain_text("Fate changed from dropped at filter_by_price (price_too_high)")
    expect(unknown).to_contain_text("Unknown: ")
    expect(unknown).to_contain_text("did not arrive")  # the API's why, in its words
    expect(page.locator("#more-runs")).to_be_hidden()
    shot(page, "candidate-history")

    # A run opens its own candidate page, from the keyboard; that page links back across runs.
    first_drop.get_by_role("link").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(f"#/runs/{runs['dropped'][0]}/candidates/{TARGET}$"))
    expect(page.locator("#verdict")).to_contain_text("Dropped at filter_by_price")
    across = page.get_by_role("link", name=f"This candidate across runs of {runs['name']}")
    across.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Candidate {TARGET} across runs")
    expect(items).to_have_count(6)


def test_more_runs_reads_older_pages_and_says_what_is_covered(page, receiver_url, runs) -> None:
    page.goto(history_url(receiver_url, runs, "?since=24h&limit=3"))
    items = page.locator("#history-runs > li")
    expect(items).to_have_count(3)
    coverage = page.locator("#history-coverage")
    expect(coverage).to_contain_text("covers the 3 runs")
    expect(coverage).to_contain_text("not read yet")
    expect(page.locator("#fact-appeared")).to_contain_text("3 of 3 runs read")
    oldest_shown = page.locator(f'#history-runs > li[data-run-id="{runs["dropped"][0]}"]')
    expect(oldest_shown).not_to_have_class(re.compile(r"\bchanged\b"))  # the run before it is not read yet

    more = page.get_by_role("button", name="More runs (older)")
    more.focus()
    page.keyboard.press("Enter")
    expect(items).to_have_count(6)
    expect(items.nth(3)).to_be_focused()  # the first run read, for keyboard and screen-reader users
    expect(oldest_shown).to_have_class(re.compile(r"\bchanged\b"))  # the change across the pages' seam
    expect(page.locator("#fact-outcomes")).to_contain_text("3 / 2 / 1")
    assert [li.get_attribute("data-run-id") for li in items.all()][3:] == list(reversed(runs["kept"]))

    # The second page read on to the end (the run without it too) and offers no third.
    expect(page.locator("#fact-appeared")).to_contain_text("6 of 7 runs read")
    expect(more).to_be_hidden()
    expect(coverage).to_contain_text("every run of the last 24 hours")
    expect(items).to_have_count(6)


def test_errors_and_empty_answers_are_said_in_words(page, receiver_url, runs) -> None:
    page.goto(history_url(receiver_url, runs, "?limit=0"))
    expect(page.get_by_role("alert")).to_contain_text("limit")
    expect(page.get_by_label("Find a candidate")).to_have_value(TARGET)
    # An id no run recorded: unknown in the cut run (it may be in the part that never came), never "absent".
    page.goto(f"{receiver_url}/ui/#/pipelines/{runs['name']}/candidates/B0NOSUCHTHING")
    expect(page.locator("#fact-appeared")).to_contain_text("1 of 7 runs read")
    expect(page.locator("#history-runs > li")).to_have_attribute("data-run-id", runs["unknown"])
    expect(page.locator("#history-runs > li")).to_contain_text("did not arrive")
    whole = f"ui_history_whole_{uuid.uuid4().hex[:8]}"  # where every outcome arrived, absence is known
    _run(receiver_url, whole, time.time_ns() - MINUTE, "kept")
    page.goto(f"{receiver_url}/ui/#/pipelines/{whole}/candidates/B0NOSUCHTHING")
    expect(page.locator("#history-empty")).to_contain_text("appears in none of the runs read")
    expect(page.locator("#fact-appeared")).to_contain_text("0 of 1 runs read")
    page.goto(f"{receiver_url}/ui/#/pipelines/no_such_pipeline_{uuid.uuid4().hex[:6]}/candidates/{TARGET}")
    expect(page.get_by_role("alert")).to_contain_text("no run named")
    page.goto(f"{receiver_url}/ui/#/pipelines/{runs['name']}/never-survives?runs=0")
    expect(page.get_by_role("alert")).to_contain_text("runs")
    expect(page.get_by_label("Reason")).to_be_visible()


def test_partial_answers_do_not_break_the_page(page, receiver_url, runs) -> None:
    """An answer with holes (a dropped run without left_at, an outcome this UI does not know, no summary,
    no run id) still renders, with unknown where unknown; the page fixture fails on any script error."""
    body = {"runs": [{"run": {"id": "r-2", "started_at": None}, "outcome": "dropped", "left_at": None, "why": None},
                     {"run": None, "outcome": "maybe", "left_at": None},
                     None,
                     {"run": {"id": "r-1"}, "outcome": "unknown", "left_at": None, "why": None}],
            "next_cursor": None}
    page.route(re.compile(r".*/pipelines/[^/]+/candidates/PARTIAL(\?.*)?$"),
               lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(body)))
    page.goto(f"{receiver_url}/ui/#/pipelines/{runs['name']}/candidates/PARTIAL")
    items = page.locator("#history-runs > li")
    expect(items).to_have_count(3)
    expect(items.nth(0)).to_contain_text("Dropped at an unnamed step (no reason recorded)")
    expect(items.nth(1)).to_contain_text("unknown")
    expect(items.nth(1)).to_contain_text("run id not recorded")
    expect(items.nth(2)).to_contain_text("Unknown: the run's record of it is incomplete")
    expect(page.locator("#fact-outcomes")).to_contain_text("0 / 1 / 2")
    expect(page.locator("#fact-appeared")).to_contain_text("how many were read is unknown")
    expect(page.locator("#history-coverage")).to_contain_text("Which runs this page covers is unknown")


def test_never_survives_lists_the_always_dropped_and_links_their_history(page, receiver_url, runs) -> None:
    page.goto(f"{receiver_url}/ui/#/pipelines/{runs['name']}?since=7d")
    link = page.get_by_role("link", name=re.compile("Never survives"))
    link.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Never survives")
    coverage = page.locator("#never-coverage")
    expect(coverage).to_contain_text("Read the newest 7 runs")
    expect(coverage).to_contain_text("exact over the 6 of them")
    expect(coverage).to_contain_text("1 run not counted (a candidate's fate there is unknown): outcomes incomplete: 1")
    listed = page.locator("#never-list > li")
    expect(listed.first).to_have_attribute("data-candidate", ALWAYS_OUT)
    expect(listed.first).to_contain_text("never survives")
    expect(listed.first).to_contain_text("Dropped at filter_by_price because price_too_high in 6 of the 6 runs")
    target = page.locator(f'#never-list > li[data-candidate="{TARGET}"]')
    expect(target).to_contain_text("survived 3 runs")
    expect(target).to_contain_text("in 2 of the 5 runs it appeared in")
    shot(page, "never-survives")

    # Filters narrow it and live in the address; a reason no step gave leaves the list empty.
    page.get_by_label("Step").fill("filter_by_price")
    page.get_by_label("Reason").fill("no_such_reason")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"step=filter_by_price&reason=no_such_reason"))
    expect(page.locator("#never-empty")).to_be_visible()
    page.go_back()
    wait_page(page)
    expect(target).to_be_visible()

    target.get_by_role("link", name=TARGET).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Candidate {TARGET} across runs")
    expect(page.locator("#history-runs > li")).to_have_count(6)


def test_pipeline_page_finds_a_candidate_by_id(page, receiver_url, runs) -> None:
    page.goto(f"{receiver_url}/ui/#/pipelines/{runs['name']}?since=24h")
    box = page.get_by_label("Find a candidate")
    box.fill(TARGET)
    box.press("Enter")
    expect(page).to_have_url(re.compile(f"#/pipelines/{runs['name']}/candidates/{TARGET}\\?since=24h$"))
    expect(page.locator("#history-runs > li")).to_have_count(6)
    expect(page.get_by_label("Window")).to_have_value("24h")
    page.go_back()
    expect(page.locator("#never-link")).to_be_visible()
    shot(page, "pipeline-candidate-tools")


def test_no_history_page_scrolls_sideways_in_a_narrow_window(page, receiver_url, runs) -> None:
    page.set_viewport_size({"width": 400, "height": 800})
    name = runs["name"]
    for path, shown in ((f"#/pipelines/{name}/candidates/{TARGET}", "candidate-history-narrow"),
                        (f"#/pipelines/{name}/never-survives", "never-survives-narrow"),
                        (f"#/pipelines/{name}?since=7d", None), (f"#/runs/{runs['dropped'][0]}/candidates/{TARGET}", None)):
        page.goto(receiver_url + "/ui/" + path)
        wait_page(page)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400, (path, width)
        if shown:
            shot(page, shown)
