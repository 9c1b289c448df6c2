"""A run's steps grouped into funnels, one per candidate stream (queries/streams.py through analysis.analyze,
and compare.compare), over rows shaped like common.step. The same through the receiver is in
test_funnels_http.py."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from demo_funnel import EXPECTED_FUNNEL
from xray_otel.queries.analysis import analyze, tree_order
from xray_otel.queries.compare import compare
from xray_otel.queries.streams import AMBIGUOUS, COUNTS, IDS, NAMED, START, WRAPS, IdSample, continues

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def step(id: str, *, at: int | None, n_in: int | None = None, n_out: int | None = None, parent: str | None = None,
         funnel: str | None = None, type: str = "filter", **extra: Any) -> dict[str, Any]:
    return {"id": id, "parent_id": parent, "name": id, "type": type, "status": "COMPLETED", "input_count": n_in,
            "output_count": n_out, "rejections": None, "reasoning": None, "cost": 0.0, "duration_ms": 1.0,
            "started_at": None if at is None else T0 + timedelta(seconds=at), "error": None, "funnel": funnel,
            **extra}


def sample(ids: list[str], kept: list[str], whole: bool = True) -> IdSample:
    return IdSample(lambda: ids, lambda: [0 if c in kept else 1 for c in ids], whole)


def funnels(result: dict[str, Any]) -> list[tuple[str, bool, list[str], int | None, int | None]]:
    return [(f["name"], f["named"], f["steps"], f["initial_candidates"], f["final_count"]) for f in result["funnels"]]


def links(result: dict[str, Any]) -> dict[str, tuple[str | None, str | None]]:
    return {f["step_id"]: (f["funnel"], f["funnel_link"]) for f in result["funnel"]}


def listing(funnel: bool = False) -> list[dict[str, Any]]:
    """6 titles generated -> 1 chosen, 8 bullets -> 5 kept, interleaved in time, under one run span."""
    def named(name: str) -> str | None:
        return name if funnel else None
    return [
        step("generate_titles", at=1, n_out=6, type="llm", funnel=named("titles")),
        step("generate_bullets", at=2, n_out=8, type="llm", funnel=named("bullets")),
        step("choose_title", at=3, n_in=6, n_out=1, type="rank", funnel=named("titles"),
             rejections={"below_top_k": 5}),
        step("filter_bullets", at=4, n_in=8, n_out=5, funnel=named("bullets"),
             rejections={"too_long": 2, "duplicate": 1}),
    ]


def test_a_listing_run_is_two_funnels_not_six_to_five() -> None:
    result = analyze({"id": "r"}, tree_order(listing()))
    assert funnels(result) == [
        ("generate_titles", False, ["generate_titles", "choose_title"], 6, 1),
        ("generate_bullets", False, ["generate_bullets", "filter_bullets"], 8, 5),
    ]
    assert links(result) == {"generate_titles": ("generate_titles", START),
                             "generate_bullets": ("generate_bullets", START),
                             "choose_title": ("generate_titles", COUNTS),
                             "filter_bullets": ("generate_bullets", COUNTS)}
    summary = result["summary"]
    # The main funnel's figures, which says which it is and that there are two: never 6 -> 5.
    assert (summary["initial_candidates"], summary["final_count"]) == (8, 5)
    assert (summary["funnel_count"], summary["main_funnel"]) == (2, "generate_bullets")
    assert [f["biggest_drop"]["step_id"] for f in result["funnels"]] == ["choose_title", "filter_bullets"]
    assert summary["biggest_drop"]["step_id"] == "choose_title"  # the run's biggest drop, in its own funnel


def test_the_names_the_sdk_gave_win() -> None:
    result = analyze({"id": "r"}, tree_order(listing(funnel=True)))
    assert funnels(result) == [("titles", True, ["generate_titles", "choose_title"], 6, 1),
                               ("bullets", True, ["generate_bullets", "filter_bullets"], 8, 5)]
    assert {link for _, link in links(result).values()} == {NAMED}


def test_a_name_wins_over_counts_that_say_otherwise() -> None:
    """titles 6 -> 5 and bullets 8 -> 5, then two steps of 5: the counts could not tell, the names do."""
    steps = [
        step("gen_t", at=1, n_out=6, funnel="titles"), step("gen_b", at=2, n_out=8, funnel="bullets"),
        step("trim_t", at=3, n_in=6, n_out=5, funnel="titles"), step("trim_b", at=4, n_in=8, n_out=5, funnel="bullets"),
        step("pick_b", at=5, n_in=5, n_out=3, funnel="bullets"), step("pick_t", at=6, n_in=5, n_out=1, funnel="titles"),
    ]
    result = analyze({"id": "r"}, tree_order(steps))
    assert funnels(result) == [("titles", True, ["gen_t", "trim_t", "pick_t"], 6, 1),
                               ("bullets", True, ["gen_b", "trim_b", "pick_b"], 8, 3)]


def test_an_unnamed_step_can_continue_a_named_funnel_by_its_count() -> None:
    steps = [step("gen", at=1, n_out=6, funnel="titles"), step("pick", at=2, n_in=6, n_out=1)]
    result = analyze({"id": "r"}, tree_order(steps))
    assert funnels(result) == [("titles", True, ["gen", "pick"], 6, 1)]
    assert links(result)["pick"] == ("titles", COUNTS)


def test_counts_chain_steps_in_time_order_across_the_tree() -> None:
    """A nested step that ran between two others is their link: time order, not tree order."""
    steps = tree_order([
        step("outer", at=0),
        step("late_root", at=1, n_in=50, n_out=40),
        step("inner_first", at=0, n_in=100, n_out=50, parent="outer"),
        step("inner_last", at=5, n_in=40, n_out=2, parent="outer"),
    ])
    result = analyze({"id": "r"}, steps)
    assert funnels(result) == [("inner_first", False, ["inner_first", "inner_last", "late_root"], 100, 2)]
    assert links(result)["outer"] == (None, None)  # no counts: in no funnel


def test_a_step_whose_input_matches_no_funnel_starts_its_own() -> None:
    steps = [step("a", at=0, n_in=10, n_out=5), step("c", at=1, n_in=7, n_out=1)]
    result = analyze({"id": "r"}, tree_order(steps))
    assert funnels(result) == [("a", False, ["a"], 10, 5), ("c", False, ["c"], 7, 1)]
    assert result["summary"]["main_funnel"] == "a"


def test_an_ambiguous_step_stays_apart() -> None:
    """Two streams both end at 6; a step taking 6 could continue either: it is its own funnel, and so is
    the one after it, whose count matches it alone."""
    steps = [
        step("gen_t", at=1, n_out=6), step("gen_b", at=2, n_out=6),
        step("dedupe", at=3, n_in=6, n_out=4), step("pick", at=4, n_in=4, n_out=1),
    ]
    result = analyze({"id": "r"}, tree_order(steps))
    assert funnels(result) == [("gen_t", False, ["gen_t"], 6, 6), ("gen_b", False, ["gen_b"], 6, 6),
                               ("dedupe", False, ["dedupe", "pick"], 6, 1)]
    assert links(result)["dedupe"] == ("dedupe", AMBIGUOUS)
    assert links(result)["pick"] == ("dedupe", COUNTS)


def test_outcome_ids_decide_where_counts_cannot() -> None:
    titles, bullets = [f"title-{i}" for i in range(6)], [f"bullet-{i}" for i in range(6)]
    steps = [
        step("dedupe_t", at=1, n_in=6, n_out=5), step("dedupe_b", at=2, n_in=6, n_out=5),
        step("rank_t", at=3, n_in=5, n_out=1), step("trim_b", at=4, n_in=5, n_out=3),
    ]
    ids = {"dedupe_t": sample(titles, titles[:5]), "dedupe_b": sample(bullets, bullets[1:]),
           "rank_t": sample(titles[:5], titles[2:3]), "trim_b": sample(bullets[1:], bullets[1:4])}
    result = analyze({"id": "r"}, tree_order(steps), ids=ids)
    assert funnels(result) == [("dedupe_t", False, ["dedupe_t", "rank_t"], 6, 1),
                               ("dedupe_b", False, ["dedupe_b", "trim_b"], 6, 3)]
    assert links(result)["rank_t"] == ("dedupe_t", IDS) and links(result)["trim_b"] == ("dedupe_b", IDS)
    without = analyze({"id": "r"}, tree_order(steps))  # the same by counts: both 5s are ambiguous
    assert links(without)["rank_t"] == ("rank_t", AMBIGUOUS)


def test_outcome_ids_overrule_a_count_that_matches_by_chance() -> None:
    """filter_b's count matches titles' last step only, but its ids are bullets: not the titles' funnel."""
    titles, bullets = [f"t{i}" for i in range(4)], [f"b{i}" for i in range(4)]
    steps = [step("pick_t", at=1, n_in=4, n_out=4), step("filter_b", at=2, n_in=4, n_out=2)]
    ids = {"pick_t": sample(titles, titles), "filter_b": sample(bullets, bullets[:2])}
    result = analyze({"id": "r"}, tree_order(steps), ids=ids)
    assert links(result)["filter_b"] == ("filter_b", START)
    assert links(analyze({"id": "r"}, tree_order(steps)))["filter_b"] == ("pick_t", COUNTS)


def test_id_samples() -> None:
    kept_two = sample(["a", "b", "c"], ["a", "c"])
    assert continues(kept_two, sample(["a", "c"], [])) is True
    assert continues(kept_two, sample(["a", "b"], [])) is False  # b was dropped: not this step's output
    assert continues(kept_two, sample(["a", "z"], [])) is False  # z never came through it
    part = sample(["a", "b", "c"], ["a", "c"], whole=False)  # its first part only: z may be in another
    assert continues(part, sample(["a", "z"], [])) is True
    assert continues(part, sample(["y", "z"], [])) is None
    assert continues(kept_two, sample([], [])) is None
    twice = sample(["a", "a"], [])
    assert twice.kept("a") is False and twice.kept("q") is None


def test_the_demo_competitor_pipeline_is_one_funnel_as_before() -> None:
    steps = [step(name, at=i, n_in=n_in, n_out=n_out, type=type, rejections=rejections)
             for i, (name, type, n_in, n_out, rejections) in enumerate(EXPECTED_FUNNEL)]
    result = analyze({"id": "r"}, tree_order(steps))
    counted = [name for name, _, n_in, n_out, _ in EXPECTED_FUNNEL if n_in is not None or n_out is not None]
    assert funnels(result) == [("retrieve_candidates", False, counted, 5000, 1)]
    summary = result["summary"]
    assert (summary["initial_candidates"], summary["final_count"], summary["funnel_count"]) == (5000, 1, 1)
    assert summary["biggest_drop"]["step"] == "filter_by_price"


def test_a_product_categorization_run_is_one_funnel() -> None:
    """12,000 categories, a filter dropping most, a scorer that drops none, a top-5 pick."""
    steps = [
        step("load_categories", at=0, n_out=12_000, type="retrieval"),
        step("filter_by_keywords", at=1, n_in=12_000, n_out=11_574),
        step("filter_by_attributes", at=2, n_in=11_574, n_out=1_127,
             rejections={"missing_required_attribute:capacity_ml": 10_447}),
        step("score_categories", at=3, n_in=1_127, n_out=1_127, type="llm"),
        step("pick_top", at=4, n_in=1_127, n_out=5, type="rank"),
    ]
    result = analyze({"id": "r"}, tree_order(steps))
    assert funnels(result) == [("load_categories", False, [s["id"] for s in steps], 12_000, 5)]
    assert result["funnels"][0]["biggest_drop"]["step_id"] == "filter_by_attributes"


def test_retrievers_feeding_one_wrapper_are_one_funnel() -> None:
    """An ensemble retriever over two retrievers: their streams meet in it, by structure not by counts."""
    steps = tree_order([
        step("ensemble", at=1, n_out=8, type="retrieval"),
        step("bm25", at=2, n_out=10, type="retrieval", parent="ensemble"),
        step("dense", at=3, n_out=10, type="retrieval", parent="ensemble"),
        step("keep", at=4, n_in=8, n_out=3),
    ])
    result = analyze({"id": "r"}, steps)
    assert funnels(result) == [("bm25", False, ["bm25", "dense", "ensemble", "keep"], 10, 3)]
    assert links(result)["ensemble"] == ("bm25", WRAPS)
    assert [f["step_id"] for f in result["funnel"]] == ["bm25", "dense", "ensemble", "keep"]


def test_inferred_names_never_collide() -> None:
    steps = [step("search", at=0, n_out=10, funnel="search"), step("x", at=1, n_in=3, n_out=1),
             step("y", at=2, n_in=7, n_out=2, name="x")]
    names = [f["name"] for f in analyze({"id": "r"}, tree_order(steps))["funnels"]]
    assert names == ["search", "x", "x #2"]


def test_a_same_named_wrapper_lends_its_funnel_name_to_the_step_it_folds() -> None:
    steps = tree_order([
        step("filter_by_price", at=0, funnel="main"),
        step("inner", at=0, n_in=10, n_out=4, parent="filter_by_price", name="filter_by_price"),
    ])
    result = analyze({"id": "r"}, steps)
    assert funnels(result) == [("main", True, ["inner"], 10, 4)]


def test_compare_aligns_each_funnel_on_its_own() -> None:
    base = analyze({"id": "b"}, tree_order(listing()))
    changed = listing()
    changed[3] = {**changed[3], "output_count": 2}
    other = analyze({"id": "o"}, tree_order(changed))
    for result in (base, other):
        for entry in result["funnel"]:
            entry["outputs"] = None
    answer = compare(base, other)
    assert [(f["name"], f["base"]["final_count"], f["other"]["final_count"]) for f in answer["funnels"]] == [
        ("generate_titles", 1, 1), ("generate_bullets", 5, 2)]
    assert [(s["funnel"], s["name"], s["changed"]) for s in answer["steps"]] == [
        ("generate_titles", "generate_titles", []), ("generate_bullets", "generate_bullets", []),
        ("generate_titles", "choose_title", []), ("generate_bullets", "filter_bullets", ["output_count", "drop_rate"])]
    assert answer["first_divergence"] == {"funnel": "generate_bullets", "name": "filter_bullets", "occurrence": 1,
                                          "changed": ["output_count", "drop_rate"]}
    assert answer["summary"]["funnel_count"] == {"base": 2, "other": 2}


def test_compare_pairs_funnels_whose_inferred_names_differ_by_their_steps() -> None:
    """The other run has no retrieval step, so its funnel is named after its filter: still the same funnel."""
    base = analyze({"id": "b"}, tree_order([step("retrieve", at=0, n_out=20), step("filter", at=1, n_in=20, n_out=5)]))
    other = analyze({"id": "o"}, tree_order([step("filter", at=1, n_in=20, n_out=5)]))
    answer = compare(base, other)
    assert [(f["name"], f["base"]["name"], f["other"]["name"]) for f in answer["funnels"]] == [
        ("retrieve", "retrieve", "filter")]
    assert [(s["funnel"], s["name"], s["changed"]) for s in answer["steps"]] == [
        ("retrieve", "retrieve", ["missing"]), ("retrieve", "filter", [])]
