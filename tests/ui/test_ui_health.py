"""The pipeline-health pages (issue 20) in a real headless Chromium, against a real receiver and PostgreSQL.

Runs arrive over OTLP/HTTP (the phone-case walkthrough, tests/query_data.py), spread over the last days
so the pipeline has a history; the pages read only the public REST API. Browser fixtures are test_ui's.
"""

from __future__ import annotations

import re
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from helpers import get_json
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
    page.goto(receiver_url + "/ui/#/pipelines?since=7d")
    row = page.locator(f'#pipelines-table tr[data-pipeline="{history["name"]}"]')
    expect(row).to_be_visible()
    cells = row.locator("td")
    expect(cells.nth(0)).to_have_text("9")
    expect(cells.nth(1)).to_have_text("0")
    expect(cells.nth(2)).to_contain_text("filter_price")  # 75–95% on average: the biggest dropper
    expect(cells.nth(3).locator("svg.sparkline")).to_have_attribute("aria-label", re.compile("filter_price drop rate"))
    shot(page, "pipelines")
    row.get_by_role("link", name=history["name"]).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(history["name"])
    page.go_back()
    expect(row).to_be_visible()
    row.get_by_role("link", name=re.compile("9 runs")).click()
    expect(page.locator("#runs-table tbody tr")).to_have_count(9)
    expect(page.get_by_label("Pipeline (exact name)")).to_have_value(history["name"])


def test_no_page_scrolls_sideways_in_a_narrow_window(page, receiver_url, history) -> None:
    page.set_viewport_size({"width": 400, "height": 800})
    for path in ("#/steps?type=filter&min_drop_rate=0.9", "#/pipelines?since=7d", f"#/pipelines/{history['name']}?since=7d"):
        page.goto(receiver_url + "/ui/" + path)
        wait_page(page)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400, (path, width)
