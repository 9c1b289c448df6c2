"""process_candidates / rank_candidates: funnel counts, capture modes and their caps."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from xray_otel import configure, process_candidates, rank_candidates, start_run, step
from xray_otel import conventions as c
from xray_otel.sdk import candidates as cand


@pytest.fixture
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    configure(tracer_provider=provider)  # injected: the global provider stays untouched
    return exporter


@dataclass(frozen=True)
class Item:
    sku: str
    price: int


ITEMS = [Item(f"S{i}", i) for i in range(1000)]


def by_price(item: Item) -> tuple[bool, str]:
    if item.price < 100:
        return False, "too_cheap"
    return item.price < 130, "too_expensive"


def only_span(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


def decisions(span: ReadableSpan) -> list[dict]:
    return json.loads(span.attributes.get(c.STEP_DECISIONS, "[]"))


def test_summary_records_exact_counts_and_the_histogram_only(spans):
    with start_run("r"):
        kept = process_candidates(ITEMS, by_price, step_name="price", capture="summary")
    assert kept == ITEMS[100:130]
    attrs = only_span(spans, "price").attributes
    assert attrs[c.STEP_TYPE] == "filter"
    assert (attrs[c.STEP_INPUT_COUNT], attrs[c.STEP_OUTPUT_COUNT]) == (1000, 30)
    assert json.loads(attrs[c.STEP_REJECTIONS]) == {"too_cheap": 100, "too_expensive": 870}
    assert (attrs[c.STEP_CAPTURE], attrs[c.STEP_DECISIONS_DROPPED]) == ("summary", 1000)
    assert c.STEP_DECISIONS not in attrs


def test_sampled_keeps_every_survivor_and_a_few_of_each_reason_spread_over_the_input(spans):
    with start_run("r"):
        process_candidates(ITEMS, by_price, step_name="price", id_fn=lambda i: i.sku)
    span = only_span(spans, "price")
    got = decisions(span)
    accepted = [d for d in got if d["accepted"]]
    assert [d["id"] for d in accepted] == [f"S{i}" for i in range(100, 130)]
    assert all(d["reason"] is None and d["sampled_as"] == "survivor" for d in accepted)
    rejected = [d for d in got if not d["accepted"]]
    assert all(d["sampled_as"] == "reservoir" for d in rejected)
    too_expensive = [int(d["id"][1:]) for d in rejected if d["reason"] == "too_expensive"]
    assert len(too_expensive) == cand.SAMPLES_PER_REASON
    assert too_expensive != list(range(130, 130 + cand.SAMPLES_PER_REASON))  # not first come
    assert max(too_expensive) - min(too_expensive) > 300  # spread over the 870 of them
    assert sum(d["reason"] == "too_cheap" for d in rejected) == cand.SAMPLES_PER_REASON
    assert [d["id"] for d in got] == sorted((d["id"] for d in got), key=lambda i: int(i[1:]))  # input order
    assert span.attributes[c.STEP_CAPTURE] == "sampled"
    assert span.attributes[c.STEP_DECISIONS_DROPPED] == 1000 - len(got)
    assert span.attributes[c.STEP_SAMPLE_RULE] == c.SAMPLE_RULE_DEBUG
    assert span.attributes[c.STEP_SAMPLE_RATE] == len(got) / 1000
    assert json.loads(span.attributes[c.STEP_SAMPLE_COUNTS]) == {
        "kept": {"sampled": 30, "total": 30},
        "dropped": {"too_cheap": {"sampled": 5, "total": 100}, "too_expensive": {"sampled": 5, "total": 870}}}
    with start_run("r"):  # the same step again: the same sample (seeded by the step's name and size)
        process_candidates(ITEMS, by_price, step_name="price", id_fn=lambda i: i.sku)
    again = [s for s in spans.get_finished_spans() if s.name == "price"][-1]
    assert decisions(again) == got and again.attributes[c.STEP_SAMPLE_SEED] == span.attributes[c.STEP_SAMPLE_SEED]


def test_sampled_caps_the_survivors_recorded(spans):
    with start_run("r"):
        kept = process_candidates(range(500), lambda n: n % 2 == 0, step_name="even")
    assert len(kept) == 250
    got = decisions(only_span(spans, "even"))
    assert sum(d["accepted"] for d in got) == cand.MAX_SAMPLED_ACCEPTED
    assert [d["reason"] for d in got if not d["accepted"]] == [cand.DEFAULT_REASON] * cand.SAMPLES_PER_REASON


def test_full_records_every_decision_up_to_its_cap(spans, monkeypatch):
    with start_run("r"):
        process_candidates(ITEMS, by_price, step_name="all", capture="full", id_fn=lambda i: i.sku)
        monkeypatch.setattr(cand, "MAX_DECISIONS", 50)
        process_candidates(ITEMS, by_price, step_name="capped", capture="full")
    got = decisions(only_span(spans, "all"))
    assert len(got) == 1000 and sum(d["accepted"] for d in got) == 30
    capped = only_span(spans, "capped")
    assert len(decisions(capped)) == 50
    assert capped.attributes[c.STEP_DECISIONS_DROPPED] == 950
    assert capped.attributes[c.STEP_INPUT_COUNT] == 1000  # counts stay exact under any cap


def test_bool_verdicts_generators_and_default_ids(spans):
    rows = [{"id": "a", "ok": True}, {"id": "b", "ok": False}, {"ok": False}]
    with start_run("r"):
        kept = process_candidates((r for r in rows), lambda r: r["ok"], step_name="ok")
    assert kept == rows[:1]
    span = only_span(spans, "ok")
    assert json.loads(span.attributes[c.STEP_REJECTIONS]) == {cand.DEFAULT_REASON: 2}
    assert [d["id"] for d in decisions(span)] == ["a", "b", "2"]


def test_a_broken_id_fn_costs_the_id_not_the_pipeline(spans):
    with start_run("r"):
        kept = process_candidates([1, 2], lambda n: n > 1, step_name="f", id_fn=lambda n: 1 / 0)
    assert kept == [2]
    assert [d["id"] for d in decisions(only_span(spans, "f"))] == ["0", "1"]


def test_inside_an_open_step_it_annotates_that_step_unless_named(spans):
    with start_run("r"):
        with step("llm_check", step_type="llm"):
            process_candidates(range(10), lambda n: (n < 4, "irrelevant"))
            process_candidates(range(4), lambda n: n < 2, step_name="nested_filter")
        process_candidates(range(3), lambda n: True)
    check = only_span(spans, "llm_check")
    assert check.attributes[c.STEP_TYPE] == "llm"
    assert (check.attributes[c.STEP_INPUT_COUNT], check.attributes[c.STEP_OUTPUT_COUNT]) == (10, 4)
    nested = only_span(spans, "nested_filter")
    assert nested.parent.span_id == check.context.span_id
    assert only_span(spans, "process_candidates").attributes[c.STEP_OUTPUT_COUNT] == 3


def test_a_raising_filter_fails_the_step_and_propagates(spans):
    def explode(n: int) -> bool:
        if n == 3:
            raise ValueError("bad candidate")
        return True

    with pytest.raises(ValueError, match="bad candidate"):
        with start_run("r"):
            process_candidates(range(5), explode, step_name="f")
    assert only_span(spans, "f").status.status_code is StatusCode.ERROR
    assert only_span(spans, "r").status.status_code is StatusCode.ERROR


def test_rank_records_kept_scores_and_the_best_rejected(spans):
    scores = {f"c{i}": float(i % 17) for i in range(40)}
    with start_run("r"):
        best = rank_candidates(list(scores), scores.__getitem__, top_k=3, step_name="rank", id_fn=str)
    assert best == ["c16", "c33", "c15"]  # ties keep input order
    span = only_span(spans, "rank")
    assert span.attributes[c.STEP_TYPE] == "rank"
    assert (span.attributes[c.STEP_INPUT_COUNT], span.attributes[c.STEP_OUTPUT_COUNT]) == (40, 3)
    assert json.loads(span.attributes[c.STEP_REJECTIONS]) == {cand.BELOW_TOP_K: 37}
    got = decisions(span)
    assert got[:4] == [  # the kept and the first cut are the ranking's boundary
        {"id": "c16", "accepted": True, "reason": None, "score": 16.0, "rank": 1, "sampled_as": "boundary"},
        {"id": "c33", "accepted": True, "reason": None, "score": 16.0, "rank": 2, "sampled_as": "boundary"},
        {"id": "c15", "accepted": True, "reason": None, "score": 15.0, "rank": 3, "sampled_as": "boundary"},
        {"id": "c32", "accepted": False, "reason": cand.BELOW_TOP_K, "score": 15.0, "rank": 4,
         "sampled_as": "boundary"},
    ]
    assert [d["rank"] for d in got[:8]] == list(range(1, 9))  # 3 kept, 5 first cut
    assert [d["sampled_as"] for d in got[8:]] == ["reservoir"] * cand.SAMPLES_PER_REASON
    assert len(got) == 3 + 2 * cand.SAMPLES_PER_REASON
    assert span.attributes[c.STEP_DECISIONS_DROPPED] == 40 - len(got)


def test_rank_modes_and_keeping_all(spans):
    with start_run("r"):
        assert rank_candidates([3, 1, 2], float, top_k=None, step_name="all", capture="full") == [3, 2, 1]
        assert rank_candidates([3, 1, 2], float, top_k=5, step_name="summary", capture="summary") == [3, 2, 1]
    assert len(decisions(only_span(spans, "all"))) == 3
    summary = only_span(spans, "summary").attributes
    assert c.STEP_DECISIONS not in summary and json.loads(summary[c.STEP_REJECTIONS]) == {}


def test_outside_a_run_the_results_are_the_same_and_nothing_is_recorded(spans):
    assert process_candidates(ITEMS, by_price, capture="full") == ITEMS[100:130]
    assert rank_candidates(ITEMS, lambda i: -i.price, top_k=2) == ITEMS[:2]
    assert spans.get_finished_spans() == ()


@pytest.mark.parametrize("call", [
    lambda: process_candidates([1], bool, capture="everything"),
    lambda: rank_candidates([1], float, top_k=1, capture="some"),
    lambda: rank_candidates([1], float, top_k=-1),
])
def test_argument_mistakes_are_value_errors(call):
    with pytest.raises(ValueError):
        call()
