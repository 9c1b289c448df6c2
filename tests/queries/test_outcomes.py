"""Candidate outcomes (issue 18) through the receiver: spans in the wire form of docs/conventions.md
("Candidate outcomes") sent over OTLP/HTTP, stored in step_outcomes, answered by /runs/{id}/candidates,
/runs/{id}/candidates/{cid} and /analyze. Exact where every outcome arrived; ``unknown``, never ``kept``,
where some did not."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from conftest import serve
from helpers import Array, call, db, export_request, get_json, make_span, new_ids, post_otlp
from xray_otel.store.retention import sweep
from xray_otel.store.store import Store

MS = 1_000_000
N = 5000
TARGET = "phone-case"  # dropped by the price filter as its 700th price_too_high


def outcomes(ids: list[str], codes: list[int], reasons: list[str], *, ranks: list[int] | None = None,
             total: int | None = None, part: int | None = None, parts: int | None = None) -> dict[str, Any]:
    attrs: dict[str, Any] = {"xray.step.outcomes.ids": Array(ids), "xray.step.outcomes.codes": Array(codes),
                             "xray.step.outcomes.reasons": Array(reasons)}
    for key, value in (("ranks", ranks), ("total", total), ("part", part), ("parts", parts)):
        if value is not None:
            attrs[f"xray.step.outcomes.{key}"] = Array(value) if isinstance(value, list) else value
    return attrs


def catalogue() -> tuple[list[str], list[int]]:
    """5,000 ids and their price filter codes: 1 price_too_high, 2 out_of_stock, 0 kept (41 of them)."""
    ids = [f"p{i:05d}" for i in range(N)]
    codes = [0 if i % 122 == 7 else 2 if i % 10 == 3 else 1 for i in range(N)]
    seventh_hundredth = [i for i, code in enumerate(codes) if code == 1][699]
    ids[seventh_hundredth] = TARGET
    return ids, codes


def walkthrough(url: str, service: str = "shop") -> tuple[str, dict[str, Any]]:
    """retrieve → filter_by_price (outcomes + a decisions sample) → rank (outcomes with ranks); the run id."""
    trace, base = new_ids()
    t0 = time.time_ns()
    ids, codes = catalogue()
    kept = [c for c, code in zip(ids, codes) if code == 0]
    ranks = list(range(1, len(kept) + 1))
    sample = [{"id": kept[0], "accepted": True, "reason": None, "score": 0.87, "rank": None,
               "label": "Laptop stand, aluminium", "price": 12.5},
              {"id": TARGET, "accepted": False, "reason": "price_too_high", "score": None, "rank": None}]
    spans = [
        make_span(trace, base, "outcome_walkthrough", attrs={"xray.kind": "run"}, start=t0, duration_ns=50 * MS),
        make_span(trace, base + 1, "retrieve", parent=base, start=t0 + MS,
                  attrs={"xray.kind": "step", "xray.step.type": "retrieval", "xray.step.output_count": N}),
        make_span(trace, base + 2, "filter_by_price", parent=base, start=t0 + 2 * MS,
                  attrs={"xray.kind": "step", "xray.step.type": "filter", "xray.step.input_count": N,
                         "xray.step.output_count": len(kept), "xray.step.decisions": sample,
                         "xray.step.rejections": {"price_too_high": codes.count(1), "out_of_stock": codes.count(2)},
                         **outcomes(ids, codes, ["price_too_high", "out_of_stock"], total=N)}),
        make_span(trace, base + 3, "rank", parent=base, start=t0 + 4 * MS,
                  attrs={"xray.kind": "step", "xray.step.type": "rank", "xray.step.input_count": len(kept),
                         "xray.step.output_count": 5,
                         **outcomes(kept, [0 if r <= 5 else 1 for r in ranks], ["below_top_k"], ranks=ranks)}),
    ]
    reply = post_otlp(url, export_request(spans, service=service))
    assert reply.status == 200
    assert not ExportTraceServiceResponse.FromString(reply.body).HasField("partial_success")
    return str(uuid.UUID(bytes=trace)), {"ids": ids, "codes": codes, "kept": kept}


@pytest.fixture(scope="module")
def walk(receiver_url: str) -> tuple[str, dict[str, Any]]:
    return walkthrough(receiver_url)


def candidate(url: str, run: str, cid: str) -> dict[str, Any]:
    return get_json(f"{url}/runs/{run}/candidates/{quote(cid, safe='')}")


def all_pages(url: str) -> tuple[list[dict[str, Any]], int]:
    server = url[:url.index("/", len("http://"))]
    seen, pages = [], 0
    while url:
        reply = call("GET", url)
        assert reply.status == 200, reply.body[:300]
        seen += reply.json()
        pages += 1
        link = reply.headers.get("Link")
        url = server + link[1:link.index(">")] if link else None
    return seen, pages


# --- one run, every candidate exact ---------------------------------------------------------------------


def test_a_candidate_dropped_past_any_sample_is_answered_exactly(receiver_url: str, walk) -> None:
    run, _ = walk
    path = candidate(receiver_url, run, TARGET)
    assert path["outcome"] == "dropped" and path["why"] is None
    assert path["left_at"]["step"] == "filter_by_price" and path["left_at"]["reason"] == "price_too_high"
    [entry] = path["path"]
    assert (entry["accepted"], entry["outcome"], entry["source"]) == (False, "dropped", "outcomes")
    assert (entry["step_input_count"], entry["step_output_count"]) == (N, 41)
    # One in the middle of the out_of_stock ones, which no sample holds:
    path = candidate(receiver_url, run, "p02503")
    assert (path["outcome"], path["left_at"]["reason"]) == ("dropped", "out_of_stock")


def test_a_survivor_has_its_rank_and_its_sampled_payload(receiver_url: str, walk) -> None:
    run, sent = walk
    first, sixth = sent["kept"][0], sent["kept"][5]
    path = candidate(receiver_url, run, first)
    assert path["outcome"] == "kept" and [e["step"] for e in path["path"]] == ["filter_by_price", "rank"]
    at_filter, at_rank = path["path"]
    assert (at_filter["score"], at_filter["label"], at_filter["payload"]) == (0.87, "Laptop stand, aluminium",
                                                                              {"price": 12.5})
    assert (at_rank["accepted"], at_rank["rank"], at_rank["reason"]) == (True, 1, None)
    path = candidate(receiver_url, run, sixth)
    assert path["outcome"] == "dropped" and path["left_at"] == {
        "step_id": path["path"][1]["step_id"], "step": "rank", "type": "rank", "reason": "below_top_k"}
    assert path["path"][1]["rank"] == 6


def test_an_unknown_candidate_is_a_404_that_says_why(receiver_url: str, walk) -> None:
    run, _ = walk
    reply = call("GET", f"{receiver_url}/runs/{run}/candidates/no-such-thing")
    message = reply.json()["error"]["message"]
    assert reply.status == 404 and "no decision recorded" in message
    assert "recorded every candidate they decided on, so it reached none of them" in message
    assert "sampled" not in message  # every step here sent outcomes: the old text would not be true


def test_the_list_filters_and_pages_every_outcome(receiver_url: str, walk) -> None:
    run, sent = walk
    base = f"{receiver_url}/runs/{run}/candidates"
    dropped, pages = all_pages(f"{base}?step=filter_by_price&accepted=false&reason=price_too_high&limit=1000")
    assert len(dropped) == sent["codes"].count(1) and pages == len(dropped) // 1000 + 1  # a full page links on
    assert TARGET in {d["candidate_id"] for d in dropped} and {d["source"] for d in dropped} == {"outcomes"}
    everything, pages = all_pages(f"{base}?limit=700")
    assert len(everything) == N + 41 and pages == (N + 41) // 700 + 1
    assert [e["candidate_id"] for e in everything[:N]] == sent["ids"]  # step order, then input order
    assert [(e["step"], e["rank"]) for e in everything[N:N + 2]] == [("rank", 1), ("rank", 2)]
    assert [e["candidate_id"] for e in get_json(f"{base}?accepted=true&step=filter_by_price")] == sent["kept"]
    assert [e["candidate_id"] for e in get_json(f"{base}?prefix=p0001")] == [f"p0001{i}" for i in range(10)
                                                                             if f"p0001{i}" in sent["ids"]]
    assert [e["step"] for e in get_json(f"{base}?candidate={sent['kept'][0]}")] == ["filter_by_price", "rank"]
    assert get_json(f"{base}?reason=nope") == [] and get_json(f"{base}?step=retrieve") == []


def test_a_forged_cursor_is_a_400(receiver_url: str, walk) -> None:
    run, _ = walk
    for cursor in ("abc", "WyJkZWNpc2lvbnMiLCBbXV0", "W10"):
        reply = call("GET", f"{receiver_url}/runs/{run}/candidates?cursor={cursor}")
        assert reply.status == 400, cursor


def test_analyze_marks_each_step_and_counts_no_continuation(receiver_url: str, walk) -> None:
    run, _ = walk
    funnel = get_json(f"{receiver_url}/analyze/{run}")["funnel"]
    assert [(f["name"], f["outcomes"]) for f in funnel] == [
        ("retrieve", "none"), ("filter_by_price", "complete"), ("rank", "complete")]


# --- big steps in parts: continuation spans ------------------------------------------------------------


def parted_run(url: str, *, send: tuple[int, ...] = (0, 1, 2), service: str = "shop") -> tuple[str, list[str]]:
    """A filter of 3 × 1,000 candidates: part 0 on the step span, parts 1 and 2 on continuation spans."""
    trace, base = new_ids()
    t0 = time.time_ns()
    ids = [f"c{i:04d}" for i in range(3000)]
    codes = [0 if i % 3 == 0 else 1 for i in range(3000)]
    step = {"xray.kind": "step", "xray.step.type": "filter", "xray.step.input_count": 3000,
            "xray.step.output_count": 1000}
    if 0 in send:
        step.update(outcomes(ids[:1000], codes[:1000], ["too_far"], total=3000, part=0, parts=3))
    spans = [make_span(trace, base, "outcome_parts", attrs={"xray.kind": "run"}, start=t0, duration_ns=50 * MS),
             make_span(trace, base + 1, "filter_by_distance", parent=base, start=t0 + MS, attrs=step)]
    for part in (1, 2):
        if part in send:
            spans.append(make_span(
                trace, base + 1 + part, "filter_by_distance outcomes", parent=base + 1, start=t0 + 2 * MS,
                attrs={"xray.kind": "outcomes", **outcomes(ids[part * 1000:(part + 1) * 1000],
                                                           codes[part * 1000:(part + 1) * 1000], ["too_far"],
                                                           total=3000, part=part, parts=3)}))
    assert post_otlp(url, export_request(spans, service=service)).status == 200
    return str(uuid.UUID(bytes=trace)), ids


def test_parts_join_their_step_and_continuations_are_no_steps(receiver_url: str) -> None:
    run, ids = parted_run(receiver_url)
    assert get_json(f"{receiver_url}/runs/{run}")["step_count"] == 1
    assert [s["name"] for s in get_json(f"{receiver_url}/runs/{run}/steps")] == ["filter_by_distance"]
    analysis = get_json(f"{receiver_url}/analyze/{run}")
    assert [(f["name"], f["outcomes"]) for f in analysis["funnel"]] == [("filter_by_distance", "complete")]
    assert analysis["summary"]["step_count"] == 1
    listed, _ = all_pages(f"{receiver_url}/runs/{run}/candidates?limit=400")
    assert [e["candidate_id"] for e in listed] == ids
    assert candidate(receiver_url, run, "c2999")["outcome"] == "dropped"
    assert candidate(receiver_url, run, "c2997")["outcome"] == "kept"
    assert call("GET", f"{receiver_url}/runs/{run}/candidates/c3000").status == 404


def test_a_missing_part_makes_the_step_answer_unknown_never_kept(receiver_url: str) -> None:
    run, _ = parted_run(receiver_url, send=(0, 2))
    [row] = get_json(f"{receiver_url}/analyze/{run}")["funnel"]
    assert row["outcomes"] == "incomplete" and "1 of its 3 parts did not arrive (part 1)" in row["outcomes_why"]
    assert "2,000 outcomes of the 3,000" in row["outcomes_why"]
    lost = candidate(receiver_url, run, "c1500")  # kept, in the part that never came
    assert lost["outcome"] == "unknown" and lost["left_at"] is None
    assert "part 1" in lost["why"] and lost["path"][0]["accepted"] is None and lost["path"][0]["outcome"] == "unknown"
    assert candidate(receiver_url, run, "c2500")["outcome"] == "dropped"  # in a part that came: exact
    assert candidate(receiver_url, run, "c0999")["outcome"] == "kept"
    # The part arrives late: the step is whole, and the answer exact.
    trace = uuid.UUID(run).bytes
    base = int(get_json(f"{receiver_url}/runs/{run}/steps")[0]["id"], 16) - 1
    late = make_span(trace, base + 2, "filter_by_distance outcomes", parent=base + 1,
                     attrs={"xray.kind": "outcomes", **outcomes([f"c{i:04d}" for i in range(1000, 2000)],
                                                                [0 if i % 3 == 0 else 1 for i in range(1000, 2000)],
                                                                ["too_far"], total=3000, part=1, parts=3)})
    assert post_otlp(receiver_url, export_request([late], service="shop")).status == 200
    assert candidate(receiver_url, run, "c1500")["outcome"] == "kept"
    assert get_json(f"{receiver_url}/analyze/{run}")["funnel"][0]["outcomes"] == "complete"


def test_a_continuation_span_alone_waits_for_its_step(receiver_url: str) -> None:
    trace, base = new_ids()
    part = make_span(trace, base + 2, "s outcomes", parent=base + 1, attrs={
        "xray.kind": "outcomes", **outcomes(["a", "b"], [0, 1], ["no"], total=4, part=1, parts=2)})
    assert post_otlp(receiver_url, export_request([part])).status == 200
    run = str(uuid.UUID(bytes=trace))
    assert get_json(f"{receiver_url}/runs/{run}")["step_count"] == 0  # its run exists (retention sees it)
    step = make_span(trace, base + 1, "s", attrs={"xray.kind": "step", **outcomes(["c", "d"], [1, 0], ["no"],
                                                                                  total=4, part=0, parts=2)})
    assert post_otlp(receiver_url, export_request([step])).status == 200
    assert [e["candidate_id"] for e in get_json(f"{receiver_url}/runs/{run}/candidates")] == ["c", "d", "a", "b"]


def test_a_continuation_without_a_parent_is_rejected(receiver_url: str) -> None:
    trace, base = new_ids()
    orphan = make_span(trace, base, "x outcomes", attrs={"xray.kind": "outcomes", **outcomes(["a"], [0], [])})
    reply = post_otlp(receiver_url, export_request([orphan]))
    partial = ExportTraceServiceResponse.FromString(reply.body).partial_success
    assert reply.status == 200 and partial.rejected_spans == 1 and "no parent_span_id" in partial.error_message


def test_a_resent_span_is_stored_once(receiver_url: str, pg_dsn: str) -> None:
    trace, base = new_ids()
    spans = [make_span(trace, base, "r", attrs={"xray.kind": "run"}),
             make_span(trace, base + 1, "f", parent=base, attrs={"xray.kind": "step", **outcomes(
                 ["a", "b", "c"], [0, 1, 1], ["x"])})]
    for _ in range(3):
        assert post_otlp(receiver_url, export_request(spans)).status == 200
    run = str(uuid.UUID(bytes=trace))
    assert len(get_json(f"{receiver_url}/runs/{run}/candidates")) == 3
    assert db(pg_dsn, "SELECT count(*) FROM step_outcomes WHERE run_id = $1", uuid.UUID(run))[0][0] == 1


@pytest.mark.parametrize("together", [True, False], ids=["one request", "two requests"])
def test_copies_of_a_part_that_disagree_leave_it_unknown(receiver_url: str, together: bool) -> None:
    """Part 0 on the step span, and a continuation span claiming part 0 with other outcomes: which copy is
    right cannot be told, so the step answers unknown, not whichever came first."""
    trace, base = new_ids()
    step = make_span(trace, base + 1, "f", parent=base, attrs={"xray.kind": "step", **outcomes(
        ["c1", "c2", "c3"], [0, 1, 0], ["r1"])})
    impostor = make_span(trace, base + 2, "f outcomes", parent=base + 1, attrs={"xray.kind": "outcomes", **outcomes(
        ["c1", "c2", "c3"], [1, 0, 0], ["evil"])})
    run_span = make_span(trace, base, "r", attrs={"xray.kind": "run"})
    batches = [[run_span, step, impostor]] if together else [[impostor], [run_span, step]]
    for spans in batches:
        assert post_otlp(receiver_url, export_request(spans)).status == 200
    run = str(uuid.UUID(bytes=trace))
    for cid in ("c1", "c2"):
        path = candidate(receiver_url, run, cid)
        assert path["outcome"] == "unknown" and "disagree" in path["why"], (cid, path)
    assert [f["outcomes"] for f in get_json(f"{receiver_url}/analyze/{run}")["funnel"]] == ["incomplete"]
    assert {d["outcome"] for d in get_json(f"{receiver_url}/runs/{run}/candidates")} == {"unknown"}


# --- what goes wrong on the way: refused, cut, counted ---------------------------------------------------


def _scrape_incomplete(url: str) -> float:
    for line in call("GET", url + "/metrics").body.decode().splitlines():
        if line.startswith("xray_outcome_parts_incomplete_total "):
            return float(line.split()[1])
    raise AssertionError("no xray_outcome_parts_incomplete_total in /metrics")


@pytest.mark.parametrize(("bad", "said"), [
    pytest.param(outcomes(["a", "b", "c"], [0, 1], ["x"]), "3 ids but 2 codes", id="unequal-arrays"),
    pytest.param({"xray.step.outcomes.ids": '["a","b"]', "xray.step.outcomes.codes": Array([0, 1])},
                 "must both be arrays", id="ids-as-json-text"),
    pytest.param(outcomes(["a", "b"], [0, 1], ["x"], ranks=[1]), "ranks must be an array as long", id="short-ranks"),
    pytest.param(outcomes(["a", "b"], [0, 1], ["x"], part=3, parts=2), "expected xray.step.outcomes.part",
                 id="part-out-of-range"),
])
def test_a_malformed_outcome_set_is_refused_and_its_step_says_unknown(pg_dsn: str, bad, said: str) -> None:
    with serve(pg_dsn) as server:
        trace, base = new_ids()
        spans = [make_span(trace, base, "r", attrs={"xray.kind": "run"}),
                 make_span(trace, base + 1, "f", parent=base, attrs={"xray.kind": "step", "xray.step.input_count": 2,
                                                                     "xray.step.output_count": 1, **bad})]
        reply = post_otlp(server.url, export_request(spans))
        partial = ExportTraceServiceResponse.FromString(reply.body).partial_success
        assert reply.status == 200 and partial.rejected_spans == 0  # the step is stored, its outcomes not
        assert "outcome set refused" in partial.error_message and said in partial.error_message
        assert _scrape_incomplete(server.url) == 1
        run = str(uuid.UUID(bytes=trace))
        [row] = get_json(f"{server.url}/analyze/{run}")["funnel"]
        assert (row["input_count"], row["outcomes"]) == (2, "incomplete") and said in row["outcomes_why"]
        answer = candidate(server.url, run, "a")
        assert answer["outcome"] == "unknown" and said in answer["why"]


def test_bad_outcomes_are_refused_one_by_one(receiver_url: str) -> None:
    trace, base = new_ids()
    ids = ["ok-1", "x" * 201, "ok-2", "ok-3", ""]
    spans = [make_span(trace, base + 1, "f", attrs={"xray.kind": "step", **outcomes(ids, [0, 0, 7, 1, 0], ["r"])})]
    reply = post_otlp(receiver_url, export_request(spans))
    message = ExportTraceServiceResponse.FromString(reply.body).partial_success.error_message
    assert "3 of 5 outcomes refused (first at index 1: an id over 200 characters)" in message
    run = str(uuid.UUID(bytes=trace))
    assert [(e["candidate_id"], e["outcome"]) for e in get_json(f"{receiver_url}/runs/{run}/candidates")] == [
        ("ok-1", "kept"), ("ok-3", "dropped")]
    assert candidate(receiver_url, run, "ok-2")["outcome"] == "unknown"  # its code pointed at no reason


def test_the_value_cap_never_cuts_an_outcome_array(pg_dsn: str) -> None:
    """XRAY_MAX_VALUE_CHARS cuts string values; outcome arrays are not cut (ids have their own limit), and a
    reason cut at the cap leaves the step incomplete, never wrong."""
    with serve(pg_dsn, max_value_chars=20) as server:
        trace, base = new_ids()
        ids = [f"candidate-number-{i:04d}-of-many" for i in range(2000)]  # 30 characters each: over the cap
        long_reason = "missing_required_attribute:capacity_ml"
        spans = [make_span(trace, base + 1, "f", attrs={"xray.kind": "step", **outcomes(
            ids, [i % 2 for i in range(2000)], [long_reason])})]
        reply = post_otlp(server.url, export_request(spans))
        message = ExportTraceServiceResponse.FromString(reply.body).partial_success.error_message
        assert "1 reasons over 20 characters were cut" in message
        run = str(uuid.UUID(bytes=trace))
        listed = get_json(f"{server.url}/runs/{run}/candidates?limit=1000")
        assert [e["candidate_id"] for e in listed] == ids[:1000]
        assert listed[1]["reason"] == long_reason[:20] + "…[truncated by xray-otel]"
        assert get_json(f"{server.url}/analyze/{run}")["funnel"][0]["outcomes"] == "incomplete"
        stored = get_json(f"{server.url}/runs/{run}/steps")[0]["attributes"]
        assert not any(key.startswith("xray.step.outcomes") for key in stored)  # not copied as JSON text


# --- what already worked keeps working -----------------------------------------------------------------


def test_a_sample_only_step_answers_as_before_beside_an_exact_one(receiver_url: str) -> None:
    trace, base = new_ids()
    t0 = time.time_ns()
    sample = [{"id": "s1", "accepted": True, "reason": None, "score": 0.5, "rank": None},
              {"id": "s2", "accepted": False, "reason": "low", "score": 0.1, "rank": None}]
    spans = [make_span(trace, base, "r", attrs={"xray.kind": "run"}, start=t0),
             make_span(trace, base + 1, "old_filter", parent=base, start=t0 + MS, attrs={
                 "xray.kind": "step", "xray.step.input_count": 100, "xray.step.output_count": 1,
                 "xray.step.decisions": sample}),
             make_span(trace, base + 2, "new_filter", parent=base, start=t0 + 2 * MS, attrs={
                 "xray.kind": "step", **outcomes(["s1", "n2"], [1, 0], ["late"])})]
    assert post_otlp(receiver_url, export_request(spans)).status == 200
    run = str(uuid.UUID(bytes=trace))
    listed = get_json(f"{receiver_url}/runs/{run}/candidates")
    assert [(e["step"], e["candidate_id"], e["source"]) for e in listed] == [
        ("old_filter", "s1", "decisions"), ("old_filter", "s2", "decisions"),
        ("new_filter", "s1", "outcomes"), ("new_filter", "n2", "outcomes")]
    paged, pages = all_pages(f"{receiver_url}/runs/{run}/candidates?limit=1")
    assert paged == listed and pages == 5
    path = candidate(receiver_url, run, "s1")
    assert path["outcome"] == "dropped" and path["left_at"]["step"] == "new_filter"
    reply = call("GET", f"{receiver_url}/runs/{run}/candidates/zz")
    message = reply.json()["error"]["message"]
    assert reply.status == 404 and "step 'old_filter' recorded a sample of its decisions only" in message
    assert "it is not among the outcomes of step 'new_filter'" in message


def test_retention_deletes_outcomes_with_their_runs(receiver, pg_dsn: str) -> None:
    trace, base = new_ids()
    old = time.time_ns() - 500 * 86_400 * 10**9
    spans = [make_span(trace, base + 1, "f", start=old, attrs={"xray.kind": "step", **outcomes(["a"], [0], [])}),
             make_span(trace, base + 3, "f outcomes", parent=base + 1, start=old,
                       attrs={"xray.kind": "outcomes", **outcomes(["b"], [0], [], part=1, parts=2)})]
    assert post_otlp(receiver.url, export_request(spans)).status == 200
    run = uuid.UUID(bytes=trace)
    assert db(pg_dsn, "SELECT count(*) FROM step_outcomes WHERE run_id = $1", run)[0][0] == 2

    async def go() -> None:
        store = await Store.open(pg_dsn, pool_size=2)
        try:
            await sweep(store, timedelta(days=450))
        finally:
            await store.close()

    asyncio.run(go())
    assert db(pg_dsn, "SELECT count(*) FROM step_outcomes WHERE run_id = $1", run)[0][0] == 0
    assert db(pg_dsn, "SELECT count(*) FROM runs WHERE id = $1", run)[0][0] == 0


def test_a_project_sees_only_its_own_outcomes(pg_dsn: str) -> None:
    """shopA and shopB write into one trace id; shopB's continuation span names shopA's step as parent. Each
    project's run is its own (project_run_id): shopB's part cannot join, reveal or change shopA's outcomes."""
    keys = "ingest+read@shopA:key-a,ingest+read@shopB:key-b"
    with serve(pg_dsn, api_keys=keys) as server:
        trace, base = new_ids()

        def send(spans: list, service: str, key: str) -> None:
            reply = call("POST", server.url + "/v1/traces", export_request(spans, service=service).SerializeToString(),
                         {"Content-Type": "application/x-protobuf", "x-api-key": key})
            assert reply.status == 200, reply.body

        send([make_span(trace, base + 1, "f", attrs={"xray.kind": "step", **outcomes(
            ["a1", "a2"], [0, 1], ["no"], total=3, part=0, parts=2)})], "shopA", "key-a")
        send([make_span(trace, base + 2, "f outcomes", parent=base + 1, attrs={"xray.kind": "outcomes", **outcomes(
            ["b1"], [0], [], total=3, part=1, parts=2)})], "shopB", "key-b")
        run = str(uuid.UUID(bytes=trace))
        a = call("GET", f"{server.url}/runs/{run}/candidates", headers={"x-api-key": "key-a"}).json()
        assert [e["candidate_id"] for e in a] == ["a1", "a2"]
        answer = call("GET", f"{server.url}/runs/{run}/candidates/b1", headers={"x-api-key": "key-a"}).json()
        assert answer["outcome"] == "unknown"  # shopA's part 1 never came: shopB's does not stand in for it
        assert call("GET", f"{server.url}/runs/{run}/candidates", headers={"x-api-key": "key-b"}).json() == []
