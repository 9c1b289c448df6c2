"""Candidate outcomes without a server: the wire form read and checked (mapping/outcomes.py, spans.py), a
part packed and read back (store/outcomes.py), a step's completeness (outcomes.state), and the funnel's
same-named wrappers (queries/analysis.fold_wrappers)."""

from __future__ import annotations


import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue

from helpers import Array, attr, export_request, make_span, new_ids, otlp_json_body
from xray_otel import conventions as c
from xray_otel.mapping import outcomes
from xray_otel.mapping.rows import OutcomeRow
from xray_otel.mapping.spans import map_request
from xray_otel.mapping.values import any_value, int_array, str_array
from xray_otel.queries.analysis import analyze, fold_wrappers, tree_order
from xray_otel.receiver.otlp_json import decode
from xray_otel.store.outcomes import MAX_FOUND, Part, pack, state

RUN = uuid.uuid4()


def read(**attrs: Any) -> OutcomeRow:
    return outcomes.read({f"xray.step.outcomes.{k}": v for k, v in attrs.items()}, RUN, "s1", 100)


# --- reading the wire form ------------------------------------------------------------------------------


def test_a_whole_part_is_read_as_sent() -> None:
    row = read(ids=["a", "b", "c"], codes=[0, 2, 1], reasons=["x", "y"], ranks=[1, 0, 0])
    assert row == OutcomeRow(RUN, "s1", 0, 1, 3, ["a", "b", "c"], [0, 2, 1], [1, 0, 0], ["x", "y"], None)


def test_no_total_on_a_part_of_several_is_no_total() -> None:
    assert read(ids=["a"], codes=[0], part=1, parts=2).total is None
    assert read(ids=[], codes=[], total=0).incomplete is None  # a step of no candidates is whole


@pytest.mark.parametrize(("attrs", "part", "said"), [
    ({"ids": ["a"], "codes": [0, 0]}, 0, "1 ids but 2 codes"),
    ({"ids": "a,b", "codes": [0]}, 0, "must both be arrays, got a string and an array"),
    ({"ids": ["a"]}, 0, "got an array and absent"),
    ({"ids": ["a"], "codes": [0], "ranks": 3}, 0, "ranks must be an array"),
    ({"ids": ["a"], "codes": [0], "reasons": ["x", 3]}, 0, "reasons must be an array of strings"),
    ({"ids": ["a"], "codes": [0], "part": "one"}, -1, "part 'one'"),
    ({"ids": ["a"], "codes": [0], "part": 2, "parts": 2}, 2, "expected xray.step.outcomes.part from 0"),
    ({"ids": ["a"], "codes": [0], "parts": 0}, 0, "parts from 1"),
])
def test_a_malformed_set_keeps_nothing_and_says_why(attrs: dict[str, Any], part: int, said: str) -> None:
    row = read(**attrs)
    assert (row.part, row.ids, row.codes) == (part, [], [])
    assert row.incomplete.startswith("outcome set refused: ") and said in row.incomplete


@pytest.mark.parametrize(("ids", "codes", "ranks", "kept", "said"), [
    (["a", 7, "c"], [0, 0, 0], None, ["a", "c"], "index 1: an id that is an int, not a string"),
    (["a", "", "c"], [0, 0, 0], None, ["a", "c"], "index 1: an empty id"),
    (["a", "b\x00", "c"], [0, 0, 0], None, ["a", "c"], "a NUL or a lone surrogate"),
    (["a", "b\ud800", "c"], [0, 0, 0], None, ["a", "c"], "a NUL or a lone surrogate"),
    (["a", "x" * 201, "c"], [0, 0, 0], None, ["a", "c"], "an id over 200 characters"),
    (["a", "b", "c"], [0, 2, 0], None, ["a", "c"], "a code 2 that points at none of the 1 reasons"),
    (["a", "b", "c"], [0, -1, 0], None, ["a", "c"], "a code -1"),
    (["a", "b", "c"], [0, True, 0], None, ["a", "c"], "a code True"),
    (["a", "b", "c"], [0, 0.5, 0], None, ["a", "c"], "a code 0.5"),
    (["a", "b", "c"], [0, 1, 0], [1, -2, 3], ["a", "c"], "a rank -2"),
])
def test_bad_outcomes_go_one_by_one(ids, codes, ranks, kept, said) -> None:
    row = read(ids=ids, codes=codes, reasons=["r"], ranks=ranks)
    assert row.ids == kept and row.incomplete.startswith("1 of 3 outcomes refused") and said in row.incomplete
    assert len(row.codes) == len(kept) and (ranks is None or len(row.ranks) == len(kept))


def test_integral_doubles_are_ints_as_json_senders_write_them() -> None:
    row = read(ids=["a", "b"], codes=[0.0, 1.0], reasons=["r"], total=2.0)
    assert (row.codes, row.total, row.incomplete) == ([0, 1], 2, None)


def test_long_reasons_are_cut_with_the_marker_and_the_part_says_so() -> None:
    row = read(ids=["a"], codes=[1], reasons=["r" * 150, "ok"])
    assert row.reasons == ["r" * 100 + c.TRUNCATION_MARKER, "ok"] and "1 reasons over 100 characters" in row.incomplete


def test_spans_keep_outcomes_out_of_attributes_and_continuations_out_of_steps() -> None:
    trace, base = new_ids()
    spans = [make_span(trace, base + 1, "f", attrs={
        "xray.kind": "step", "other": "kept", "xray.step.outcomes.ids": Array(["x" * 150] * 3),
        "xray.step.outcomes.codes": Array([0, 0, 0]), "xray.step.outcomes.total": 4, "xray.step.outcomes.parts": 2}),
        make_span(trace, base + 2, "f outcomes", parent=base + 1, attrs={
            "xray.kind": "outcomes", "xray.step.outcomes.ids": Array(["y"]), "xray.step.outcomes.codes": Array([0]),
            "xray.step.outcomes.part": 1, "xray.step.outcomes.parts": 2, "xray.step.outcomes.total": 4})]
    batch = map_request(export_request(spans), max_value_chars=10)
    [step] = batch.steps
    assert step.attributes == '{"other":"kept"}' and batch.continuations == 1 and batch.truncated == 0
    first, second = batch.outcomes
    assert first.ids == ["x" * 150] * 3 and (first.part, second.part) == (0, 1)  # under 200: not cut at 10
    assert {first.span_id, second.span_id} == {step.span_id}
    assert [run.source for run in batch.runs.values()] == [0]  # the placeholder both imply


def test_a_span_without_outcomes_costs_nothing_new() -> None:
    trace, base = new_ids()
    batch = map_request(export_request([make_span(trace, base, "s", attrs={"xray.kind": "step", "l": Array([1])})]))
    assert batch.outcomes == [] and batch.steps[0].attributes == '{"l":[1]}'


# --- packing --------------------------------------------------------------------------------------------


def _part(row: OutcomeRow) -> Part:
    return Part(pack(row)._asdict())


def test_a_part_reads_back_as_packed() -> None:
    ids = ["a", "ab", "b", "ab", "é中😀", "x" * 200]
    row = OutcomeRow(RUN, "s", 0, 1, 6, ids, [0, 1, 2, 0, 1, 0], [1, 0, 0, 2, 0, 3], ["r1", "r2"], None)
    part = _part(row)
    assert part.ids() == ids and list(part.codes()) == row.codes and list(part.ranks()) == row.ranks
    assert part.find("ab") == [1, 3] and part.find("a") == [0] and part.find("é中😀") == [4] and part.find("") == []
    assert (part.code(2), part.reason(part.code(2)), part.rank(3), part.rank(1)) == (2, "r2", 2, None)
    assert list(part.matching(accepted=False, reason=None, candidate=None, prefix=None, after=0)) == [1, 2, 4]
    assert list(part.matching(accepted=None, reason="r1", candidate=None, prefix="a", after=0)) == [1]
    assert list(part.matching(accepted=None, reason=None, candidate="ab", prefix=None, after=2)) == [3]
    assert list(part.matching(accepted=True, reason="r1", candidate=None, prefix=None, after=0)) == []


def test_past_255_reasons_codes_take_two_bytes() -> None:
    reasons = [f"r{i}" for i in range(300)]
    row = OutcomeRow(RUN, "s", 0, 1, 3, ["a", "b", "c"], [300, 0, 256], None, reasons, None)
    part = _part(row)
    assert list(part.codes()) == [300, 0, 256] and part.ranks() is None and part.reason(300) == "r299"


def test_an_empty_part() -> None:
    part = _part(OutcomeRow(RUN, "s", 0, 1, 0, [], [], None, [], None))
    assert part.ids() == [] and part.find("a") == [] and list(part.codes()) == []


# --- completeness ---------------------------------------------------------------------------------------


def summary(parts: int = 2, present: tuple[int, ...] = (0, 1), stored: int = 10, total: int | None = 10,
            notes: list[str] | None = None, **more: Any) -> dict[str, Any]:
    return {"parts": parts, "parts_min": more.get("parts_min", parts), "present": list(present), "stored": stored,
            "total": total, "total_min": more.get("total_min", total), "totals": 0 if total is None else 2,
            "notes": notes}


@pytest.mark.parametrize(("row", "expected"), [
    (summary(), ("complete", None)),
    (summary(total=None), ("complete", None)),
    (summary(present=(0,), stored=5), ("incomplete", "1 of its 2 parts did not arrive (part 1); it holds 5 outcomes "
                                                     "of the 10 candidates it decided on")),
    (summary(stored=9), ("incomplete", "it holds 9 outcomes of the 10 candidates it decided on")),
    (summary(notes=["outcome set refused: x"]), ("incomplete", "outcome set refused: x")),
    (summary(parts_min=1), ("incomplete", "its parts disagree on how many parts there are")),
    (summary(total_min=9), ("incomplete", "its parts disagree on the total")),
])
def test_state(row: dict[str, Any], expected: tuple[str, str | None]) -> None:
    assert state(row) == expected


def test_a_claim_of_a_million_parts_is_counted_not_listed() -> None:
    """A span may claim any part count: reading it must not cost a pass over the claim (it stalled every
    read of the run for seconds)."""
    verdict = state(summary(parts=1_000_000, present=(0, 3), stored=2, total=None))
    assert verdict == ("incomplete", "999,998 of its 1,000,000 parts did not arrive (part 1, 2, 4, 5, 6, …)")


def test_many_copies_of_one_id_are_found_in_one_pass_and_capped() -> None:
    """100,000 copies of one id: found in one pass (not one count from the start per copy, which took 13 s
    on the event loop), at most MAX_FOUND of them."""
    ids = ["a"] * 100_000 + ["b"]
    part = _part(OutcomeRow(RUN, "s", 0, 1, len(ids), ids, [0] * len(ids), None, [], None))
    found = part.find("a")
    assert found == list(range(MAX_FOUND))
    assert part.find("b") == [100_000] and part.find("") == [] and part.find("c") == []
    assert _part(OutcomeRow(RUN, "s", 0, 1, 4, ["xa", "a", "ax", "a"], [0] * 4, None, [], None)).find("a") == [1, 3]


# --- the funnel: a same-named wrapper is no stage of its own ---------------------------------------------

T = datetime(2026, 1, 1, tzinfo=timezone.utc)


def step(sid: str, name: str, parent: str | None = None, start: int = 0, end: int = 10, **fields: Any) -> dict[str, Any]:
    return {"id": sid, "parent_id": parent, "name": name, "type": "filter", "status": "COMPLETED", "cost": 0.0,
            "started_at": T + timedelta(seconds=start), "completed_at": T + timedelta(seconds=end),
            "input_count": None, "output_count": None, "rejections": None, "error": None, **fields}


FIGURES = {"input_count": 100, "output_count": 5, "rejections": {"too_high": 95}}


def names(steps: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return [(s["id"], s["name"], s["depth"]) for s in fold_wrappers(tree_order(steps))]


def test_a_wrapper_whose_only_child_is_the_same_step_with_figures_folds_into_it() -> None:
    steps = [step("r", "retrieve", output_count=100), step("w", "f", start=1), step("x", "f", "w", 2, 9, **FIGURES)]
    assert names(steps) == [("r", "retrieve", 0), ("x", "f", 0)]
    [folded] = [s for s in fold_wrappers(tree_order(steps)) if s["id"] == "x"]
    assert folded["wrapped_by"] == "w" and folded["parent_id"] is None
    funnel = analyze({}, tree_order(steps))["funnel"]
    assert [(f["name"], f.get("wrapped_by")) for f in funnel] == [("retrieve", None), ("f", "w")]


def test_siblings_without_nesting_fold_when_one_ran_within_the_other() -> None:
    steps = [step("x", "f", None, 2, 9, **FIGURES), step("w", "f", None, 1, 10)]
    assert names(steps) == [("x", "f", 0)]


@pytest.mark.parametrize("steps", [
    pytest.param([step("w", "f", cost=0.01), step("x", "f", "w", 2, 9, **FIGURES)], id="wrapper-with-a-cost"),
    pytest.param([step("w", "f", status="FAILED", error="boom"), step("x", "f", "w", 2, 9, **FIGURES)],
                 id="wrapper-that-failed"),
    pytest.param([step("w", "f"), step("x", "f", "w", 2, 9, **FIGURES), step("y", "log", "w", 3, 4)],
                 id="wrapper-with-another-child"),
    pytest.param([step("w", "f"), step("x", "g", "w", 2, 9, **FIGURES)], id="child-of-another-name"),
    pytest.param([step("w", "f", None, 1, 10), step("x", "f", None, 12, 20, **FIGURES)], id="sibling-ran-after"),
    pytest.param([step("w", "f", None, 1, 10), step("x", "f", None, 2, 5, **FIGURES),
                  step("y", "f", None, 6, 9, **FIGURES)], id="two-same-named-siblings-within"),
    pytest.param([step("w", "f", None, 1, 10, **FIGURES), step("x", "f", None, 2, 9, **FIGURES)],
                 id="both-have-figures"),
])
def test_what_is_not_a_wrapper_stays(steps: list[dict[str, Any]]) -> None:
    assert len(names(steps)) == len(steps)


# --- the fast readers give what any_value gives -----------------------------------------------------------


def _array(items: list[Any]) -> AnyValue:
    """An OTLP array of these items; None is an item with no value set."""
    return AnyValue(array_value=ArrayValue(values=[AnyValue() if i is None else attr("", i).value for i in items]))


@pytest.mark.parametrize("items", [[0, 1, 127, 3], [128, 1], [-1, 0], [0, "1"], [0, 1.0], [0, True], [], ["a"],
                                   [0, None], [2**40]])
def test_int_array_reads_as_any_value(items: list[Any]) -> None:
    assert int_array(_array(items)) == any_value(_array(items))
    assert int_array(attr("k", "text").value) == "text"


@pytest.mark.parametrize("items", [["a", "b"], ["a", ""], ["a", 1], [], [None, "x"], ["é", "中"]])
def test_str_array_reads_as_any_value(items: list[Any]) -> None:
    assert str_array(_array(items)) == any_value(_array(items))


@pytest.mark.parametrize("codes", [[0, 1, 2], [0, 200, 1], [0, 1.0, 2], [0, "1", 2], [0, True, 1]])
def test_otlp_json_and_protobuf_map_to_the_same_outcomes(codes: list[Any]) -> None:
    trace, base = new_ids()
    request = export_request([make_span(trace, base, "s", attrs={
        "xray.kind": "step", "xray.step.outcomes.ids": Array(["a", "b", "c"]), "xray.step.outcomes.codes": Array(codes),
        "xray.step.outcomes.reasons": Array([f"r{i}" for i in range(200)]),
        "xray.step.outcomes.ranks": Array([3, 1, 2])})])
    from_json = map_request(decode(otlp_json_body(request))).outcomes
    assert from_json == map_request(request).outcomes and len(from_json) == 1


# --- hostile outcome attributes: never a failed span, never an outcome that cannot be stored ---------------

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

_items = st.one_of(st.integers(-3, 300), st.text(max_size=8), st.floats(allow_nan=True), st.booleans(),
                   st.just("x" * 201), st.just("a\x00b"))
_values = st.one_of(st.lists(_items, max_size=6).map(Array), _items)
_keys = st.sampled_from(sorted(outcomes.KEYS))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _values, min_size=1), st.booleans())
def test_any_outcome_attributes_map_to_storable_parts(attrs: dict[str, Any], continuation: bool) -> None:
    trace, base = new_ids()
    spans = [make_span(trace, base + 1, "s", parent=base if continuation else None,
                       attrs={"xray.kind": "outcomes" if continuation else "step", **attrs})]
    batch = map_request(export_request(spans))
    assert batch.rejected + len(batch.steps) + batch.continuations == 1
    for row in batch.outcomes:
        assert len(row.ids) == len(row.codes) and (row.ranks is None or len(row.ranks) == len(row.ids))
        assert all(isinstance(i, str) and 0 < len(i) <= 200 and "\x00" not in i for i in row.ids)
        assert all(type(code) is int and 0 <= code <= len(row.reasons) for code in row.codes)
        part = _part(row)
        assert part.ids() == row.ids and list(part.codes()) == row.codes
        assert row.incomplete is not None or row.total is None or row.total >= 0
