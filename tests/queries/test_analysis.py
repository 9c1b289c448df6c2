"""Step tree order and the decision funnel (xray_otel.queries.analysis), over rows shaped like common.step."""

from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from xray_otel.queries.analysis import analyze, funnel_entry, tree_order

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def step(id: str, parent: str | None = None, *, at: int | None = 0, n_in: int | None = None,
         n_out: int | None = None, **extra: Any) -> dict[str, Any]:
    """A step row as routes._step builds it (started_at a datetime, as asyncpg returns it)."""
    return {
        "id": id, "parent_id": parent, "name": f"step {id}", "type": "logic", "status": "COMPLETED",
        "input_count": n_in, "output_count": n_out, "rejections": None, "reasoning": None, "cost": 0.0,
        "started_at": None if at is None else T0 + timedelta(seconds=at), "duration_ms": 1.0, "error": None,
        **extra,
    }


def shape(ordered: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(s["id"], s["depth"]) for s in ordered]


RUN = {"id": "run", "name": "recommend", "total_cost": 0.5, "outputs": {"picked": ["p1"]}}


# --- tree_order -------------------------------------------------------------------


def test_tree_order_empty() -> None:
    assert tree_order([]) == []


def test_tree_order_nests_children_under_parents() -> None:
    steps = [step("a"), step("b", "a"), step("c", "b"), step("d", "a"), step("e")]
    assert shape(tree_order(steps)) == [("a", 0), ("b", 1), ("c", 2), ("d", 1), ("e", 0)]


def test_tree_order_children_listed_before_their_parent_in_input() -> None:
    """Input is in start-time order; a child can start before a parent row that started later."""
    steps = [step("c", "b"), step("b", "a"), step("a")]
    assert shape(tree_order(steps)) == [("a", 0), ("b", 1), ("c", 2)]


def test_tree_order_keeps_sibling_order_of_the_input() -> None:
    steps = [step("p"), step("z", "p"), step("a", "p"), step("m", "p")]
    assert shape(tree_order(steps)) == [("p", 0), ("z", 1), ("a", 1), ("m", 1)]


def test_tree_order_roots_keep_input_order() -> None:
    steps = [step("r2"), step("r1"), step("c1", "r1"), step("r3")]
    assert shape(tree_order(steps)) == [("r2", 0), ("r1", 0), ("c1", 1), ("r3", 0)]


def test_tree_order_orphans_are_roots() -> None:
    """The run span (left out of the list) and spans never received leave their children parentless."""
    steps = [step("a", "run-span"), step("b", "missing"), step("c", "a")]
    assert shape(tree_order(steps)) == [("a", 0), ("c", 1), ("b", 0)]


def test_tree_order_keeps_every_field_and_does_not_mutate_input() -> None:
    steps = [step("a", cost=1.5), step("b", "a")]
    before = [dict(s) for s in steps]
    ordered = tree_order(steps)
    assert steps == before
    assert ordered[0] == {**before[0], "depth": 0}


def test_tree_order_deep_chain_does_not_recurse() -> None:
    n = 20_000
    steps = [step("0")] + [step(str(i), str(i - 1)) for i in range(1, n)]
    ordered = tree_order(list(reversed(steps)))
    assert [s["depth"] for s in ordered] == list(range(n))


def test_tree_order_wide_tree() -> None:
    steps = [step("root")] + [step(f"c{i:04d}", "root") for i in range(5_000)]
    ordered = tree_order(steps)
    assert shape(ordered)[:3] == [("root", 0), ("c0000", 1), ("c0001", 1)]
    assert len(ordered) == 5_001


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param([step("a", "a")], id="self-parent"),
        pytest.param([step("a", "b"), step("b", "a")], id="two-cycle"),
        pytest.param([step("a", "c"), step("b", "a"), step("c", "b")], id="three-cycle"),
        pytest.param([step("root"), step("a", "b"), step("b", "a"), step("x", "root")], id="cycle-beside-tree"),
        pytest.param([step("a", "b"), step("b", "a"), step("child", "a"), step("grandchild", "child")],
                     id="cycle-with-children"),
    ],
)
def test_tree_order_parent_cycles_lose_no_step(steps: list[dict[str, Any]]) -> None:
    ordered = tree_order(steps)
    assert sorted(s["id"] for s in ordered) == sorted(s["id"] for s in steps)
    assert all(isinstance(s["depth"], int) and s["depth"] >= 0 for s in ordered)


def test_tree_order_parent_always_precedes_child_on_random_forests() -> None:
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(1, 30)
        steps = [step(str(i), str(rng.randrange(i)) if i and rng.random() < 0.8 else None) for i in range(n)]
        rng.shuffle(steps)
        ordered = tree_order(steps)
        assert sorted(s["id"] for s in ordered) == sorted(s["id"] for s in steps)
        position = {s["id"]: i for i, s in enumerate(ordered)}
        depth = {s["id"]: s["depth"] for s in ordered}
        for s in steps:
            if s["parent_id"] is not None:
                assert position[s["parent_id"]] < position[s["id"]]
                assert depth[s["id"]] == depth[s["parent_id"]] + 1
            else:
                assert depth[s["id"]] == 0


# --- funnel_entry -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_in", "n_out", "dropped", "drop_rate"),
    [
        (5000, 30, 4970, 0.994),
        (100, 100, 0, 0.0),
        (3, 1, 2, 0.666667),
        (0, 0, 0, None),
        (10, 40, -30, -3.0),  # a step that adds candidates (retrieval) "drops" a negative number
        (None, 10, None, None),
        (10, None, None, None),
        (None, None, None, None),
    ],
)
def test_funnel_entry_counts(n_in: int | None, n_out: int | None, dropped: int | None, drop_rate: float | None) -> None:
    entry = funnel_entry({**step("s", n_in=n_in, n_out=n_out), "depth": 0})
    assert (entry["input_count"], entry["output_count"]) == (n_in, n_out)
    assert entry["dropped"] == dropped
    assert entry["drop_rate"] == drop_rate


def test_funnel_entry_fields() -> None:
    row = {**step("s", "p", n_in=10, n_out=5, rejections={"dup": 5}, reasoning="why", cost=0.25,
                  cost_source="price_table", error="e"), "depth": 2}
    entry = funnel_entry(row)
    assert entry == {
        "step_id": "s", "parent_id": "p", "depth": 2, "name": "step s", "type": "logic", "status": "COMPLETED",
        "input_count": 10, "output_count": 5, "dropped": 5, "drop_rate": 0.5, "rejections": {"dup": 5},
        "reasoning": "why", "cost": 0.25, "cost_source": "price_table", "duration_ms": 1.0, "error": "e", "derived": None,
    }


@pytest.mark.parametrize("rejections", [None, "text", ["a"], 3])
def test_funnel_entry_rejections_not_an_object_is_empty(rejections: Any) -> None:
    assert funnel_entry({**step("s", rejections=rejections), "depth": 0})["rejections"] == {}


# --- analyze ----------------------------------------------------------------------


def pipeline() -> list[dict[str, Any]]:
    return tree_order([
        step("retrieve", at=0, n_out=5000),
        step("filter", at=1, n_in=5000, n_out=300, rejections={"price": 4700}),
        step("llm", at=2),  # no counts: not part of the funnel totals
        step("rank", at=3, n_in=300, n_out=30),
        step("pick", at=4, n_in=30, n_out=3),
    ])


def test_analyze_summary() -> None:
    result = analyze(RUN, pipeline())
    summary = result["summary"]
    assert summary["initial_candidates"] == 5000  # the first counted step has only an output count
    assert summary["final_count"] == 3
    assert summary["biggest_drop"] == {"step": "step filter", "step_id": "filter", "dropped": 4700, "drop_rate": 0.94}
    assert summary["total_cost"] == 0.5
    assert summary["step_count"] == 5
    assert result["run"] is RUN
    assert result["final_outputs"] == {"picked": ["p1"]}
    assert [f["step_id"] for f in result["funnel"]] == ["retrieve", "filter", "llm", "rank", "pick"]
    assert result["funnel"][2]["dropped"] is None


def test_analyze_no_steps() -> None:
    result = analyze({"id": "run"}, [])
    assert result["funnel"] == []
    assert result["summary"] == {"initial_candidates": None, "final_count": None, "biggest_drop": None,
                                 "total_cost": None, "step_count": 0, "funnel_count": 0, "main_funnel": None}
    assert result["funnels"] == []
    assert result["final_outputs"] is None


def test_analyze_steps_without_counts() -> None:
    result = analyze(RUN, tree_order([step("a", at=0), step("b", "a", at=1)]))
    summary = result["summary"]
    assert (summary["initial_candidates"], summary["final_count"], summary["biggest_drop"]) == (None, None, None)
    assert summary["step_count"] == 2


def test_analyze_single_step() -> None:
    summary = analyze(RUN, tree_order([step("f", n_in=10, n_out=4)]))["summary"]
    assert (summary["initial_candidates"], summary["final_count"]) == (10, 4)
    assert summary["biggest_drop"]["dropped"] == 6


def test_analyze_last_step_with_only_input_count() -> None:
    summary = analyze(RUN, tree_order([step("a", at=0, n_in=10, n_out=5), step("b", at=1, n_in=5)]))["summary"]
    assert (summary["initial_candidates"], summary["final_count"]) == (10, 5)


def test_analyze_initial_and_final_follow_time_not_tree_order() -> None:
    """A nested step that ran last is the final count even though a later root is listed after it."""
    steps = tree_order([
        step("outer", at=0),
        step("late-root", at=1, n_in=50, n_out=40),
        step("inner-first", "outer", at=0, n_in=100, n_out=50),
        step("inner-last", "outer", at=5, n_in=40, n_out=2),
    ])
    assert [s["id"] for s in steps] == ["outer", "inner-first", "inner-last", "late-root"]
    summary = analyze(RUN, steps)["summary"]
    assert (summary["initial_candidates"], summary["final_count"]) == (100, 2)


def test_analyze_same_start_time_ties_follow_list_order() -> None:
    steps = tree_order([step("a", at=0, n_in=10, n_out=8), step("b", at=0, n_in=8, n_out=1)])
    summary = analyze(RUN, steps)["summary"]
    assert (summary["initial_candidates"], summary["final_count"]) == (10, 1)


def test_analyze_biggest_drop_first_wins_ties() -> None:
    steps = tree_order([step("a", at=0, n_in=10, n_out=5), step("b", at=1, n_in=5, n_out=0)])
    assert analyze(RUN, steps)["summary"]["biggest_drop"]["step_id"] == "a"


def test_analyze_zero_drops_are_no_biggest_drop() -> None:
    steps = tree_order([step("a", at=0, n_in=10, n_out=10), step("b", at=1, n_in=0, n_out=0)])
    assert analyze(RUN, steps)["summary"]["biggest_drop"] is None


def test_analyze_growth_is_not_a_drop() -> None:
    """Retrieval that turns 1 query into 50 candidates adds, it does not drop: never the 'biggest drop'."""
    steps = tree_order([step("expand", at=0, n_in=1, n_out=50), step("filter", at=1, n_in=50, n_out=45)])
    assert analyze(RUN, steps)["summary"]["biggest_drop"]["step_id"] == "filter"
    only_growth = tree_order([step("expand", at=0, n_in=1, n_out=50)])
    assert analyze(RUN, only_growth)["summary"]["biggest_drop"] is None


def test_analyze_step_without_start_time_does_not_crash() -> None:
    """A span sent with only an end time has started_at NULL; sorting it beside datetimes must work."""
    steps = tree_order([step("a", at=0, n_in=10, n_out=5), step("b", at=None, n_in=5, n_out=2, completed_at=None)])
    summary = analyze(RUN, steps)["summary"]
    assert summary["step_count"] == 2
    assert {summary["initial_candidates"], summary["final_count"]} <= {10, 5, 2}


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_analyze_with_missing_start_times_in_any_order(order: tuple[int, ...]) -> None:
    rows = [step("a", at=0, n_in=10, n_out=5), step("b", at=None, n_in=5, n_out=2), step("c", at=2, n_in=2, n_out=1)]
    summary = analyze(RUN, tree_order([rows[i] for i in order]))["summary"]
    assert summary["step_count"] == 3
    # NULL start times sort last, as RUN_STEPS orders them (NULLS LAST).
    assert summary["initial_candidates"] == 10
    assert summary["final_count"] == 2


def test_analyze_uses_depth_from_tree_order() -> None:
    funnel = analyze(RUN, tree_order([step("p"), step("c", "p", n_in=2, n_out=1)]))["funnel"]
    assert [(f["step_id"], f["depth"], f["parent_id"]) for f in funnel] == [("p", 0, None), ("c", 1, "p")]


def test_a_retriever_wrapping_a_retriever_is_fed_by_it() -> None:
    """LangChain's ContextualCompressionRetriever: the outer span starts first, returns 5 of the 20 its
    base retriever found. Data flow puts the base first; the outer takes its input from it."""
    outer = step("ccr", at=1, n_out=5, type="retrieval", name="ContextualCompressionRetriever")
    inner = step("kbr", "ccr", at=2, n_out=20, type="retrieval", name="KnowledgeBaseRetriever")
    keep = step("keep", at=3, n_in=5, n_out=4, name="keep_current")
    result = analyze({"id": "r"}, tree_order([outer, inner, keep]))
    assert [(f["name"], f["input_count"], f["output_count"]) for f in result["funnel"]] == [
        ("KnowledgeBaseRetriever", None, 20), ("ContextualCompressionRetriever", 20, 5), ("keep_current", 5, 4)]
    wrapper = result["funnel"][1]
    assert wrapper["rejections"] == {"below_top_k": 15} and "wraps" in wrapper["derived"]
    summary = result["summary"]
    assert (summary["initial_candidates"], summary["final_count"]) == (20, 4)
    assert (summary["biggest_drop"]["step"], summary["biggest_drop"]["dropped"]) == ("ContextualCompressionRetriever", 15)


def test_a_wrapper_that_sent_its_own_input_count_keeps_it() -> None:
    outer = step("rr", at=1, n_in=30, n_out=5, type="rank", name="rerank")
    inner = step("se", "rr", at=2, n_out=20, type="retrieval", name="search")
    funnel = analyze({"id": "r"}, tree_order([outer, inner]))["funnel"]
    assert [(f["name"], f["input_count"], f["derived"]) for f in funnel] == [("search", None, None), ("rerank", 30, None)]
