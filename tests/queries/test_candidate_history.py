"""One candidate across a pipeline's runs, and the candidates a pipeline never lets through (issue 18):
runs written by the SDK's helpers through the stock OTLP exporter, answered by
/pipelines/{name}/candidates/{cid} and /pipelines/{name}/never-survives."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import quote

import pytest

from helpers import Array, call, db, export_request, get_json, make_span, new_ids, post_otlp
from xray_otel import configure, process_candidates, rank_candidates, start_run
from xray_otel.sdk import build_provider, flush

TARGET = "B0PHONECASE"
ALWAYS_OUT = "B0GOLDPLATED"  # too dear for every run's price limit
LIMITS = [100, 100, 100, 50, 50, 50]  # the price filter's limit, run by run: halved after the third run


def _products(with_target: bool) -> list[dict[str, Any]]:
    products = [{"id": f"B0{n:08d}", "price": 10 + (n * 37) % 200, "rating": (n * 13) % 50 / 10} for n in range(400)]
    products.append({"id": ALWAYS_OUT, "price": 999, "rating": 5.0})
    if with_target:
        products.insert(123, {"id": TARGET, "price": 80, "rating": 4.9})
    return products


def _run(name: str, limit: int, with_target: bool = True) -> str:
    with start_run(name) as run:
        kept = process_candidates(_products(with_target),
                                  lambda p: (p["price"] <= limit, None if p["price"] <= limit else "price_too_high"),
                                  step_name="filter_by_price")
        rank_candidates(kept, lambda p: p["rating"], top_k=60, step_name="rank_by_rating")
    return run.run_id


@pytest.fixture(scope="module")
def pipeline(receiver) -> dict[str, Any]:
    name = f"competitor_selection_{uuid.uuid4().hex[:8]}"
    provider = build_provider("history-test", endpoint=receiver.url, protocol="http/protobuf")
    configure(tracer_provider=provider)
    try:
        runs = []
        for limit in LIMITS:
            runs.append(_run(name, limit))
            time.sleep(0.01)  # distinct start times: newest first is well defined
        runs.append(_run(name, 100, with_target=False))
        assert flush(timeout=60)
    finally:
        provider.shutdown()
    _wait_whole(receiver.url, runs)
    return {"url": receiver.url, "name": name, "runs": runs}  # oldest first


def _wait_whole(url: str, runs: list[str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    for run_id in runs:
        while True:
            reply = call("GET", f"{url}/analyze/{run_id}")
            if reply.status == 200 and reply.json()["run"]["status"] != "RUNNING" and all(
                    f.get("outcomes") == "complete" for f in reply.json()["funnel"]):
                break
            assert time.monotonic() < deadline, f"run {run_id} not whole: {reply.body[:300]!r}"
            time.sleep(0.2)


def _history(p: dict[str, Any], candidate: str, query: str = "") -> Any:
    return call("GET", f"{p['url']}/pipelines/{quote(p['name'])}/candidates/{quote(candidate)}{query}")


def test_history_gives_each_runs_fate_newest_first_and_where_it_changed(pipeline) -> None:
    reply = _history(pipeline, TARGET)
    assert reply.status == 200, reply.body[:300]
    answer = reply.json()
    runs = answer["runs"]
    assert [r["run"]["id"] for r in runs] == list(reversed(pipeline["runs"][:6]))  # not the run without it
    assert [r["outcome"] for r in runs] == ["dropped"] * 3 + ["kept"] * 3
    assert {r["run"]["status"] for r in runs} == {"COMPLETED"}
    assert runs[0]["left_at"] == {"step": "filter_by_price", "reason": "price_too_high"} and runs[-1]["left_at"] is None
    s = answer["summary"]
    assert (s["runs_read"], s["runs_with_candidate"]) == (7, 6)
    assert s["outcomes"] == {"kept": 3, "dropped": 3, "unknown": 0}
    assert s["left_at"] == [{"step": "filter_by_price", "reason": "price_too_high", "runs": 3}]
    assert len(s["changes"]) == 1
    change = s["changes"][0]
    assert change["run_id"] == pipeline["runs"][3] and change["previous_run_id"] == pipeline["runs"][2]
    assert change["from"] == {"outcome": "kept", "step": None, "reason": None}
    assert change["to"] == {"outcome": "dropped", "step": "filter_by_price", "reason": "price_too_high"}
    assert answer["next_cursor"] is None and "Link" not in reply.headers


def test_each_runs_answer_is_the_runs_own(pipeline) -> None:
    for entry in _history(pipeline, TARGET).json()["runs"]:
        own = get_json(f"{pipeline['url']}/runs/{entry['run']['id']}/candidates/{TARGET}")
        left = own["left_at"] and {"step": own["left_at"]["step"], "reason": own["left_at"]["reason"]}
        assert (own["outcome"], left, own["why"]) == (entry["outcome"], entry["left_at"], entry["why"])


def test_pages_follow_the_cursor_without_gaps_or_repeats(pipeline) -> None:
    seen: list[str] = []
    query = "?limit=2"
    pages = 0
    for _ in range(10):
        pages += 1
        reply = _history(pipeline, TARGET, query)
        assert reply.status == 200
        page = reply.json()
        assert len(page["runs"]) <= 2
        seen += [r["run"]["id"] for r in page["runs"]]
        if page["next_cursor"] is None:
            break
        assert reply.headers["X-Next-Cursor"] == page["next_cursor"]
        query = f"?limit=2&cursor={quote(page['next_cursor'])}"
    assert seen == list(reversed(pipeline["runs"][:6]))
    assert pages == 3  # a next page is offered only when it holds a run


def test_a_candidate_never_seen_gets_an_empty_history_that_says_what_was_read(pipeline) -> None:
    answer = _history(pipeline, "B0NOSUCHTHING").json()
    assert answer["runs"] == [] and answer["summary"]["runs_read"] == 7


def test_the_window_narrows_the_runs_read(pipeline) -> None:
    answer = _history(pipeline, TARGET, "?since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z").json()
    assert answer["runs"] == [] and answer["summary"]["runs_read"] == 0


@pytest.mark.parametrize("query, words", [
    ("?cursor=abc", "cursor"), ("?limit=0", "limit"), ("?since=1h&until=2h", "since"), ("?since=yesterday", "since"),
])
def test_bad_parameters_are_400(pipeline, query: str, words: str) -> None:
    reply = _history(pipeline, TARGET, query)
    assert reply.status == 400 and words in reply.json()["error"]["message"], reply.body[:300]


def test_an_unknown_pipeline_is_404(pipeline) -> None:
    reply = call("GET", f"{pipeline['url']}/pipelines/no-such-pipeline-{uuid.uuid4().hex}/candidates/{TARGET}")
    assert reply.status == 404 and "no run named" in reply.json()["error"]["message"]
    reply = call("GET", f"{pipeline['url']}/pipelines/no-such-pipeline-{uuid.uuid4().hex}/never-survives")
    assert reply.status == 404


def test_never_survives_ranks_the_candidates_dropped_most_often(pipeline) -> None:
    answer = get_json(f"{pipeline['url']}/pipelines/{quote(pipeline['name'])}/never-survives?limit=500")
    assert answer["runs_read"] == answer["runs_counted"] == 7 and answer["runs_not_counted"] is None
    top = answer["candidates"][0]
    assert top["dropped_runs"] == 7 and top["never_survives"] is True
    always = [c for c in answer["candidates"] if c["candidate_id"] == ALWAYS_OUT]
    assert always == [{"candidate_id": ALWAYS_OUT, "step": "filter_by_price", "reason": "price_too_high",
                       "dropped_runs": 7, "seen_runs": 7, "survived_runs": 0, "never_survives": True}]
    target = [c for c in answer["candidates"] if c["candidate_id"] == TARGET]
    assert target == [{"candidate_id": TARGET, "step": "filter_by_price", "reason": "price_too_high",
                       "dropped_runs": 3, "seen_runs": 6, "survived_runs": 3, "never_survives": False}]
    counts = [c["dropped_runs"] for c in answer["candidates"]]
    assert counts == sorted(counts, reverse=True)


def test_never_survives_narrows_to_a_step_and_reason(pipeline) -> None:
    base = f"{pipeline['url']}/pipelines/{quote(pipeline['name'])}/never-survives"
    ranked = get_json(f"{base}?step=rank_by_rating&limit=500")["candidates"]
    assert ranked and {(c["step"], c["reason"]) for c in ranked} == {("rank_by_rating", "below_top_k")}
    assert get_json(f"{base}?reason=no_such_reason")["candidates"] == []
    newest = get_json(f"{base}?runs=2&limit=500")
    assert newest["runs_read"] == 2 and all(c["dropped_runs"] <= 2 for c in newest["candidates"])


def test_a_run_with_incomplete_outcomes_is_left_out_of_the_counts_and_unknown_in_the_history(pipeline) -> None:
    trace, base = new_ids()
    t0 = time.time_ns()
    ids = [TARGET, ALWAYS_OUT] + [f"B0{n:08d}" for n in range(10)]
    spans = [
        make_span(trace, base, pipeline["name"], attrs={"xray.kind": "run"}, start=t0, duration_ns=10**7),
        make_span(trace, base + 1, "filter_by_price", parent=base, start=t0 + 10**6, attrs={
            "xray.kind": "step", "xray.step.type": "filter", "xray.step.input_count": 24,
            "xray.step.outcomes.ids": Array(ids[1:]), "xray.step.outcomes.codes": Array([1] * 11),
            "xray.step.outcomes.reasons": Array(["price_too_high"]), "xray.step.outcomes.total": 24,
            "xray.step.outcomes.part": 0, "xray.step.outcomes.parts": 2}),  # part 1 never comes
    ]
    assert post_otlp(pipeline["url"], export_request(spans, service="history-test")).status == 200
    run_id = str(uuid.UUID(bytes=trace))
    history = _history(pipeline, TARGET).json()
    assert history["runs"][0]["run"]["id"] == run_id and history["runs"][0]["outcome"] == "unknown"
    assert "did not arrive" in history["runs"][0]["why"]
    answer = get_json(f"{pipeline['url']}/pipelines/{quote(pipeline['name'])}/never-survives?limit=500")
    assert answer["runs_read"] == 8 and answer["runs_counted"] == 7
    assert answer["runs_not_counted"] == {"runs": 1, "why": {"outcomes incomplete": 1}}


# --- the per-hour index (store/candidate_hours.py) ------------------------------------------------------


def _backdated_run(url: str, name: str, start_s: float, *, target_dropped: bool, cut: bool = False) -> str:
    """A run of two filter steps at ``start_s`` (epoch seconds), in the wire form the SDK sends; ``cut``:
    the second step announces two parts and sends one, without the target."""
    trace, base = new_ids()
    t0 = int(start_s * 1e9)
    ids = [TARGET, ALWAYS_OUT] + [f"B0{n:08d}" for n in range(20)]
    price = [1 if c == ALWAYS_OUT or (c == TARGET and target_dropped) else 0 for c in ids]
    kept = [c for c, code in zip(ids, price) if code == 0]
    total = len(kept)
    if cut:  # the target is among the outcomes of the part that never comes
        kept = [c for c in kept if c != TARGET]
    rating = [1 if i % 3 == 2 else 0 for i in range(len(kept))]
    second: dict[str, Any] = {"xray.step.outcomes.total": total + (5 if cut else 0)}
    if cut:
        second.update({"xray.step.outcomes.part": 0, "xray.step.outcomes.parts": 2})
    spans = [
        make_span(trace, base, name, attrs={"xray.kind": "run"}, start=t0, duration_ns=10**7),
        make_span(trace, base + 1, "filter_by_price", parent=base, start=t0 + 10**6, attrs={
            "xray.kind": "step", "xray.step.type": "filter", "xray.step.outcomes.ids": Array(ids),
            "xray.step.outcomes.codes": Array(price), "xray.step.outcomes.reasons": Array(["price_too_high"])}),
        make_span(trace, base + 2, "filter_by_rating", parent=base, start=t0 + 2 * 10**6, attrs={
            "xray.kind": "step", "xray.step.type": "filter", "xray.step.outcomes.ids": Array(kept),
            "xray.step.outcomes.codes": Array(rating), "xray.step.outcomes.reasons": Array(["rating_below_4"]),
            **second}),
    ]
    assert post_otlp(url, export_request(spans, service="history-test")).status == 200
    return str(uuid.UUID(bytes=trace))


def _indexed_hours(dsn: str, name: str) -> int:
    return db(dsn, "SELECT count(*) AS n FROM candidate_hours WHERE name = $1", name)[0]["n"]


def test_a_whole_hour_is_answered_from_its_index_while_it_is_up_to_date(receiver, pg_dsn) -> None:
    url, name = receiver.url, f"indexed_{uuid.uuid4().hex[:8]}"
    hour = (int(time.time()) // 3600 - 3) * 3600
    runs = [_backdated_run(url, name, hour + 60 + 10 * i, target_dropped=i >= 3) for i in range(5)]
    runs.append(_backdated_run(url, name, hour + 200, target_dropped=False, cut=True))  # answered per run
    query = f"{url}/pipelines/{name}/candidates/{TARGET}"
    from_rows = get_json(query)  # and the hour is handed to the indexer
    assert [r["run"]["id"] for r in from_rows["runs"]] == list(reversed(runs))
    assert from_rows["runs"][0]["outcome"] == "unknown"  # its second step's outcomes are cut
    assert [r["outcome"] for r in from_rows["runs"][1:]] == ["dropped", "dropped", "kept", "kept", "kept"]
    deadline = time.monotonic() + 30
    while _indexed_hours(pg_dsn, name) == 0:
        assert time.monotonic() < deadline, "the hour was not indexed"
        time.sleep(0.2)
    again = get_json(query)  # the same answer, from the index
    assert (again["runs"], again["summary"]) == (from_rows["runs"], from_rows["summary"])
    # Proof that the index answers: tamper with what it says, and the answer follows...
    db(pg_dsn, "UPDATE candidate_hours SET fate_reasons = array_fill('tampered'::text, "
               "ARRAY[cardinality(fate_reasons)]) WHERE name = $1", name)
    tampered = get_json(query)["runs"]
    assert [r["left_at"]["reason"] for r in tampered if r["outcome"] == "dropped"] == ["tampered", "tampered"]
    assert tampered[0]["outcome"] == "unknown"  # the cut run is read from its rows
    # ...until the hour changes (a late run): then its rows answer again, the new run with them.
    late = _backdated_run(url, name, hour + 300, target_dropped=True)
    fresh = get_json(query)["runs"]
    assert fresh[0]["run"]["id"] == late and {r["left_at"]["reason"] for r in fresh if r["left_at"]} == {
        "price_too_high"}



def _late_part(url: str, dsn: str, run_id: str, *, codes: list[int]) -> None:
    """Part 1 of 2 of the cut run's second step (_backdated_run cut=True), on a continuation span sent on its
    own: the target and five more, with ``codes`` (0 kept, 1 rating_below_4)."""
    (step,) = db(dsn, "SELECT span_id FROM steps WHERE run_id = $1 AND name = 'filter_by_rating'", uuid.UUID(run_id))
    parent = int(step["span_id"], 16)
    ids = [TARGET] + [f"B1{n:08d}" for n in range(5)]
    span = make_span(uuid.UUID(run_id).bytes, parent + 100, "filter_by_rating outcomes", parent=parent,
                     start=time.time_ns(), attrs={
                         "xray.kind": "outcomes", "xray.step.outcomes.ids": Array(ids),
                         "xray.step.outcomes.codes": Array(codes), "xray.step.outcomes.reasons": Array(["rating_below_4"]),
                         "xray.step.outcomes.part": 1, "xray.step.outcomes.parts": 2})
    assert post_otlp(url, export_request([span], service="history-test")).status == 200


def _indexed_untampered(dsn: str, name: str) -> None:
    """Wait until the hour is indexed again (its tampered reasons written over)."""
    deadline = time.monotonic() + 30
    while db(dsn, "SELECT count(*) AS n FROM candidate_hours WHERE name = $1 AND NOT ('tampered' = ANY(fate_reasons))",
             name)[0]["n"] != 1:
        assert time.monotonic() < deadline, "the hour was not indexed again"
        time.sleep(0.2)


def _tamper(dsn: str, name: str) -> None:
    db(dsn, "UPDATE candidate_hours SET fate_reasons = array_fill('tampered'::text, "
            "ARRAY[cardinality(fate_reasons)]) WHERE name = $1", name)


def test_a_part_written_after_its_hour_was_indexed_is_never_missed(receiver, pg_dsn) -> None:
    """The index signs an hour by the writes to its runs' outcome parts (migration 0015): a part that
    arrives late on a continuation span, and a copy of it that disagrees, each make the hour read from
    its rows again, though neither adds a run or a step."""
    url, name = receiver.url, f"parts_{uuid.uuid4().hex[:8]}"
    hour = (int(time.time()) // 3600 - 3) * 3600
    for i in range(3):
        _backdated_run(url, name, hour + 60 + 10 * i, target_dropped=i == 0)
    cut = _backdated_run(url, name, hour + 200, target_dropped=False, cut=True)
    query = f"{url}/pipelines/{name}/candidates/{TARGET}"
    assert get_json(query)["runs"][0]["outcome"] == "unknown"  # the cut run; and the hour goes to the indexer
    _indexed_untampered(pg_dsn, name)
    _tamper(pg_dsn, name)
    assert {r["left_at"]["reason"] for r in get_json(query)["runs"] if r["left_at"]} == {"tampered"}

    _late_part(url, pg_dsn, cut, codes=[0] * 6)  # the part the cut run lacked: the target kept
    runs = get_json(query)["runs"]
    assert runs[0]["run"]["id"] == cut and runs[0]["outcome"] == "kept"
    assert {r["left_at"]["reason"] for r in runs if r["left_at"]} == {"price_too_high"}

    _indexed_untampered(pg_dsn, name)
    _tamper(pg_dsn, name)
    _late_part(url, pg_dsn, cut, codes=[1] * 6)  # the same part again, saying otherwise: no copy is trusted
    runs = get_json(query)["runs"]
    assert runs[0]["outcome"] == "unknown" and "disagree" in runs[0]["why"]
    assert {r["left_at"]["reason"] for r in runs if r["left_at"]} == {"price_too_high"}


def test_pages_through_indexed_hours_read_as_the_rows_do(receiver, pg_dsn) -> None:
    """Pages of every size over indexed hours (whole hours taken at once, or run by run where a page
    ends inside one) give the runs the step rows give, in the same order, no gap or repeat."""
    url, name = receiver.url, f"paged_{uuid.uuid4().hex[:8]}"
    hour = (int(time.time()) // 3600 - 4) * 3600
    for i in range(9):  # two hours: 5 runs, then 4; the target dropped in every third
        _backdated_run(url, name, hour + (0 if i < 5 else 3600) + 60 + 10 * i, target_dropped=i % 3 == 0)
    query = f"{url}/pipelines/{name}/candidates/{TARGET}"
    from_rows = get_json(query)["runs"]
    deadline = time.monotonic() + 30
    while _indexed_hours(pg_dsn, name) < 2:
        assert time.monotonic() < deadline, "the hours were not indexed"
        time.sleep(0.2)
    for limit in (1, 2, 4, 5, 9):
        walked, cursor = [], None
        while True:
            reply = call("GET", f"{query}?limit={limit}" + (f"&cursor={quote(cursor)}" if cursor else ""))
            walked += reply.json()["runs"]
            cursor = reply.json()["next_cursor"]
            if cursor is None:
                break
        assert [(r["run"]["id"], r["outcome"]) for r in walked] == [(r["run"]["id"], r["outcome"]) for r in from_rows]
