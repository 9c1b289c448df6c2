"""The payload sample: reservoir picks spread over the input, the decision boundary, watched ids
(argument and XRAY_WATCH_IDS), funnel=, and the warnings when less is recorded than asked."""

from __future__ import annotations

import json
import logging
import random
from array import array

from test_candidates import ITEMS, Item, decisions, only_span, spans  # noqa: F401 (spans: a fixture)
from xray_otel import configure, process_candidates, rank_candidates, start_run
from xray_otel import conventions as c
from xray_otel.sdk import candidates as cand, outcomes, sampling, score_candidates


def test_spread_draws_uniformly_over_every_position_of_a_code():
    codes = bytearray(random.Random(7).choices([0, 1, 2], weights=[1, 90, 9], k=20_000))
    members = [i for i, x in enumerate(codes) if x == 1]
    seen: set[int] = set()
    for seed in range(200):
        picks = sampling.spread(codes, 1, len(members), 5, random.Random(seed))
        assert len(set(picks)) == 5 and all(codes[i] == 1 for i in picks)
        seen.update(picks)
    assert min(seen) < len(codes) // 20 and max(seen) > len(codes) * 19 // 20  # not the first ones only
    # every position of the reason can be drawn: the first and the last too
    assert sampling.spread(codes, 1, len(members), len(members), random.Random(1)) == members
    tail = [members.index(i) for i in seen]
    assert sum(t < len(members) // 2 for t in tail) > len(tail) // 3  # both halves, roughly alike
    wide = array("H", list(codes))  # 16-bit codes (a step past 255 reasons) give the same picks
    assert sampling.spread(wide, 2, codes.count(2), 5, random.Random(3)) == sampling.spread(
        codes, 2, codes.count(2), 5, random.Random(3))


def test_boundary_picks_the_nearest_on_each_side_of_each_reason():
    prices = [float(p) for p in range(100)]
    random.Random(1).shuffle(prices)
    # kept 10..29; too_cheap below 10; too_expensive from 30
    codes = bytearray(0 if 10 <= p < 30 else 1 if p < 10 else 2 for p in prices)
    picked = sorted(prices[i] for i in sampling.boundary(codes, prices, 3))
    assert picked == [7, 8, 9, 10, 11, 12, 27, 28, 29, 30, 31, 32]  # 10..12: kept, nearest the cheap side
    assert sampling.boundary(codes, [None] * 100, 3) == []  # no values, no boundary
    only_dropped = [p if codes[i] else None for i, p in enumerate(prices)]
    assert sampling.boundary(codes, only_dropped, 3) == []  # no kept value: no side to be near


def test_a_filter_that_reports_its_value_gets_the_boundary_and_the_values(spans):
    def price_filter(item: Item) -> tuple[bool, str, int]:
        return item.price <= 600, "price_too_high", item.price

    with start_run("r"):
        process_candidates(ITEMS, price_filter, step_name="price", id_fn=lambda i: i.sku)
    got = decisions(only_span(spans, "price"))
    boundary = {d["id"]: d for d in got if d["sampled_as"] == "boundary"}
    assert sorted(boundary) == sorted(f"S{p}" for p in range(596, 606))
    assert boundary["S601"]["value"] == 601 and boundary["S601"]["reason"] == "price_too_high"
    assert all("value" in d for d in got)
    assert sum(d["sampled_as"] == "reservoir" for d in got) == cand.SAMPLES_PER_REASON


def test_watched_ids_are_always_sampled_wherever_they_are(spans, monkeypatch):
    monkeypatch.setattr(sampling, "_env_watched", None)  # put back after the test, whatever happens
    monkeypatch.setenv(sampling.WATCH_IDS_ENV, " S777 ,S2, ")
    configure(tracer_provider=spans_provider(spans))  # configure() reads XRAY_WATCH_IDS
    with start_run("r"):
        process_candidates(ITEMS, lambda i: (i.price < 100, "too_expensive"), step_name="f", id_fn=lambda i: i.sku,
                           watch=["S999"])
        rank_candidates(ITEMS, lambda i: i.price, top_k=3, step_name="k", id_fn=lambda i: i.sku, watch="S500")
        score_candidates(ITEMS, lambda i: i.price, step_name="s", id_fn=lambda i: i.sku)
    got = {d["id"]: d for d in decisions(only_span(spans, "f"))}
    assert {i for i, d in got.items() if d["sampled_as"] == "watched"} == {"S777", "S999", "S2"}
    assert got["S777"]["reason"] == "too_expensive" and got["S2"]["accepted"] is True
    ranked = {d["id"]: d for d in decisions(only_span(spans, "k"))}
    assert ranked["S500"] == {"id": "S500", "accepted": False, "reason": cand.BELOW_TOP_K, "score": 500,
                              "rank": 500, "sampled_as": "watched"}
    assert ranked["S2"]["rank"] == 998 and ranked["S777"]["sampled_as"] == "watched"
    scored = {d["id"]: d["sampled_as"] for d in decisions(only_span(spans, "s"))}
    assert scored["S2"] == scored["S777"] == "watched"
    monkeypatch.delenv(sampling.WATCH_IDS_ENV)
    sampling.load_watched()
    assert sampling.watched_ids() == frozenset()


def test_watched_ids_past_the_full_cap_are_kept_and_the_cap_is_said_once(spans, monkeypatch, caplog):
    monkeypatch.setattr(cand, "MAX_DECISIONS", 50)
    outcomes._warned.discard("full cap")
    with caplog.at_level(logging.WARNING, logger="xray_otel"):
        with start_run("r"):
            process_candidates(ITEMS, lambda i: i.price % 2 == 0, step_name="all", capture="full",
                               id_fn=lambda i: i.sku, watch=["S900", "S901"])
            process_candidates(ITEMS, lambda i: True, step_name="again", capture="full")
    span = only_span(spans, "all")
    got = decisions(span)
    assert [d["id"] for d in got[-2:]] == ["S900", "S901"] and len(got) == 52
    assert span.attributes[c.STEP_SAMPLE_RULE] == c.SAMPLE_RULE_ALL
    assert span.attributes[c.STEP_DECISIONS_DROPPED] == 1000 - 52
    assert caplog.text.count("records at most 50 decisions") == 1


def test_a_sample_too_big_for_one_attribute_keeps_the_watched_and_warns_once(spans, monkeypatch, caplog):
    monkeypatch.setattr(cand, "MAX_DECISIONS_CHARS", 5_000)
    outcomes._warned.discard("decisions size")
    with caplog.at_level(logging.WARNING, logger="xray_otel"):
        with start_run("r"):
            process_candidates(ITEMS, lambda i: (i.price < 500, "too_expensive"), step_name="big",
                               id_fn=lambda i: i.sku, label_fn=lambda i: "x" * 150, watch=["S987"])
    span = only_span(spans, "big")
    text = span.attributes[c.STEP_DECISIONS]
    got = json.loads(text)
    assert len(text) <= 5_000 and "S987" in {d["id"] for d in got}
    counts = json.loads(span.attributes[c.STEP_SAMPLE_COUNTS])
    assert counts["kept"]["sampled"] + counts["dropped"]["too_expensive"]["sampled"] == len(got)
    assert span.attributes[c.STEP_DECISIONS_DROPPED] == 1000 - len(got)
    assert "more than 5000 characters" in caplog.text


def test_funnel_names_the_stream_of_every_helper(spans):
    titles = [f"title {i}" for i in range(6)]
    bullets = [f"bullet {i}" for i in range(8)]
    with start_run("listing"):
        score_candidates(titles, len, step_name="score_titles", funnel="titles")
        rank_candidates(titles, len, top_k=1, step_name="choose_title", funnel="titles")
        process_candidates(bullets, lambda b: int(b[-1]) < 5, step_name="keep_bullets", funnel="bullets",
                           capture="summary")
        process_candidates(bullets, lambda b: True, step_name="plain")
    assert [only_span(spans, n).attributes[c.STEP_FUNNEL] for n in ("score_titles", "choose_title",
                                                                      "keep_bullets")] == ["titles", "titles",
                                                                                           "bullets"]
    assert c.STEP_FUNNEL not in only_span(spans, "plain").attributes
    summary = only_span(spans, "keep_bullets").attributes
    assert (summary[c.STEP_SAMPLE_RULE], summary[c.STEP_SAMPLE_RATE]) == (c.SAMPLE_RULE_NONE, 0.0)


def spans_provider(exporter):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider
