"""Funnels per candidate stream through the receiver: spans as the SDK makes them, sent over OTLP/HTTP,
answered by /analyze and /compare (the grouping rules themselves: test_funnel_streams.py)."""

from __future__ import annotations

import time
import uuid

from helpers import export_request, get_json, make_span, new_ids, post_otlp
from query_data import MS, listing_run, outcome_attrs


def shape(analysis: dict) -> list[tuple]:
    names = {f["step_id"]: f["name"] for f in analysis["funnel"]}
    return [(f["name"], f["named"], [names[s] for s in f["steps"]], f["initial_candidates"], f["final_count"])
            for f in analysis["funnels"]]


def test_a_listing_run_answers_two_funnels(receiver_url: str) -> None:
    run_id = listing_run(receiver_url, "listing-http", t0=time.time_ns())
    analysis = get_json(f"{receiver_url}/analyze/{run_id}")
    assert shape(analysis) == [
        ("generate_titles", False, ["generate_titles", "choose_title"], 6, 1),
        ("generate_bullets", False, ["generate_bullets", "filter_bullets"], 8, 5),
    ]
    summary = analysis["summary"]
    assert (summary["initial_candidates"], summary["final_count"]) == (8, 5)  # the main funnel's, not 6 -> 5
    assert (summary["funnel_count"], summary["main_funnel"]) == (2, "generate_bullets")
    by_name = {f["name"]: f for f in analysis["funnel"]}
    # Both streams' steps carry outcome ids, the generators none: placed by counts, as the ids cannot tell.
    assert (by_name["choose_title"]["funnel"], by_name["choose_title"]["funnel_link"]) == ("generate_titles",
                                                                                           "input_count")
    assert by_name["filter_bullets"]["outcomes"] == "complete"


def test_the_names_the_sdk_sent_are_the_funnels(receiver_url: str) -> None:
    run_id = listing_run(receiver_url, "listing-http", t0=time.time_ns(), named=True)
    analysis = get_json(f"{receiver_url}/analyze/{run_id}")
    assert shape(analysis) == [("titles", True, ["generate_titles", "choose_title"], 6, 1),
                               ("bullets", True, ["generate_bullets", "filter_bullets"], 8, 5)]
    assert {f["funnel_link"] for f in analysis["funnel"]} == {"named"}
    steps = get_json(f"{receiver_url}/runs/{run_id}/steps")
    assert {s["name"]: s["funnel"] for s in steps} == {"generate_titles": "titles", "generate_bullets": "bullets",
                                                       "choose_title": "titles", "filter_bullets": "bullets"}


def test_outcome_ids_tell_streams_apart_where_counts_cannot(receiver_url: str) -> None:
    """Titles and bullets both deduplicated 6 -> 5: the next two steps of 5 are placed by their ids."""
    trace, base = new_ids()
    t0 = time.time_ns()
    titles, bullets = [f"t{i}" for i in range(6)], [f"b{i}" for i in range(6)]

    def step(n: int, name: str, n_in: int, n_out: int, outcomes: dict) -> object:
        return make_span(trace, base + n, name, parent=base, start=t0 + n * MS, attrs={
            "xray.kind": "step", "xray.step.type": "filter", "xray.step.input_count": n_in,
            "xray.step.output_count": n_out, **outcomes})

    assert post_otlp(receiver_url, export_request([
        make_span(trace, base, "listing_by_ids", attrs={"xray.kind": "run"}, start=t0, duration_ns=10 * MS),
        step(1, "dedupe_titles", 6, 5, outcome_attrs(titles, titles[:5], "duplicate")),
        step(2, "dedupe_bullets", 6, 5, outcome_attrs(bullets, bullets[1:], "duplicate")),
        step(3, "trim_bullets", 5, 3, outcome_attrs(bullets[1:], bullets[1:4], "too_long")),
        step(4, "rank_titles", 5, 1, outcome_attrs(titles[:5], titles[3:4], "below_top_k")),
    ])).status == 200
    analysis = get_json(f"{receiver_url}/analyze/{uuid.UUID(bytes=trace)}")
    assert shape(analysis) == [("dedupe_titles", False, ["dedupe_titles", "rank_titles"], 6, 1),
                               ("dedupe_bullets", False, ["dedupe_bullets", "trim_bullets"], 6, 3)]
    assert {f["name"]: f["funnel_link"] for f in analysis["funnel"]} == {
        "dedupe_titles": "start", "dedupe_bullets": "start", "trim_bullets": "outcome_ids",
        "rank_titles": "outcome_ids"}


def test_compare_aligns_per_funnel(receiver_url: str) -> None:
    t0 = time.time_ns()
    base = listing_run(receiver_url, "listing-cmp", t0=t0 - 10**9)
    other = listing_run(receiver_url, "listing-cmp", t0=t0, bullets_kept=2)
    answer = get_json(f"{receiver_url}/compare?base={base}&other={other}")
    assert [(f["name"], (f["base"]["initial_candidates"], f["base"]["final_count"]),
             (f["other"]["initial_candidates"], f["other"]["final_count"])) for f in answer["funnels"]] == [
        ("generate_titles", (6, 1), (6, 1)), ("generate_bullets", (8, 5), (8, 2))]
    steps = {(s["funnel"], s["name"]): s["changed"] for s in answer["steps"]}
    assert steps[("generate_titles", "choose_title")] == []
    assert "output_count" in steps[("generate_bullets", "filter_bullets")]
    assert answer["first_divergence"]["funnel"] == "generate_bullets"
    assert answer["summary"]["final_count"] == {"base": 5, "other": 2}
    assert answer["summary"]["funnel_count"] == {"base": 2, "other": 2}
