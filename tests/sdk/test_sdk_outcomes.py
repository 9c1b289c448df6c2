"""Candidate outcomes (issue 18): every candidate's fate, exact, by default; parts; exports that fit.

The wire form is docs/conventions.md, "Candidate outcomes". Outcomes are read back here the way a
receiver would: part 0 from the step span, further parts from its ``<step> outcomes`` children,
joined in ``part`` order.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from test_candidates import ITEMS, Item, by_price, decisions, only_span, spans  # noqa: F401 (spans: a fixture)
from xray_otel import configure, process_candidates, rank_candidates, start_run, step
from xray_otel import conventions as c
from xray_otel.sdk import build_provider, candidates as cand, export, flush, outcomes, score_candidates
from xray_otel.sdk.export import FailSafeExporter

MiB = 1024 * 1024


def read_outcomes(step_span: ReadableSpan, all_spans: list[ReadableSpan]) -> dict[str, Any]:
    """The step's outcomes joined over its parts, each part checked to read alone."""
    parts = [step_span] + [s for s in all_spans if s.parent is not None
                           and s.parent.span_id == step_span.context.span_id
                           and s.attributes.get(c.KIND) == c.KIND_OUTCOMES]
    count = step_span.attributes.get(c.OUTCOME_PARTS, 1)
    assert len(parts) == count
    parts.sort(key=lambda s: s.attributes.get(c.OUTCOME_PART, 0))
    assert [s.attributes.get(c.OUTCOME_PART, 0) for s in parts] == list(range(count))
    joined: dict[str, Any] = {"ids": [], "codes": [], "ranks": [], "reasons": None}
    for part in parts[1:]:
        assert part.name == f"{step_span.name} outcomes"
        assert part.attributes[c.OUTCOME_PARTS] == count
        assert c.STEP_TYPE not in part.attributes  # not a step
    for part in parts:
        a = part.attributes
        assert a[c.OUTCOME_TOTAL] == step_span.attributes[c.OUTCOME_TOTAL]
        assert len(a[c.OUTCOME_CODES]) == len(a[c.OUTCOME_IDS])
        assert all(0 <= code <= len(a[c.OUTCOME_REASONS]) for code in a[c.OUTCOME_CODES])
        joined["reasons"] = joined["reasons"] or list(a[c.OUTCOME_REASONS])
        assert list(a[c.OUTCOME_REASONS]) == joined["reasons"]  # every part carries the full list
        joined["ids"] += a[c.OUTCOME_IDS]
        joined["codes"] += a[c.OUTCOME_CODES]
        if c.OUTCOME_RANKS in a:
            assert len(a[c.OUTCOME_RANKS]) == len(a[c.OUTCOME_IDS])
            joined["ranks"] += a[c.OUTCOME_RANKS]
    assert len(joined["ids"]) == step_span.attributes[c.OUTCOME_TOTAL]
    joined["fate"] = {i: (joined["reasons"][code - 1] if code else "kept") for i, code in zip(joined["ids"],
                                                                                            joined["codes"])}
    return joined


# --- what is recorded ------------------------------------------------------------------------

def test_by_default_every_candidate_has_its_exact_outcome(spans):
    with start_run("r"):
        kept = process_candidates(ITEMS, by_price, step_name="price", id_fn=lambda i: i.sku)
    assert kept == ITEMS[100:130]
    span = only_span(spans, "price")
    a = span.attributes
    assert a[c.OUTCOME_IDS] == tuple(f"S{i}" for i in range(1000))
    assert a[c.OUTCOME_REASONS] == ("too_cheap", "too_expensive")
    assert a[c.OUTCOME_CODES] == (1,) * 100 + (0,) * 30 + (2,) * 870
    assert a[c.OUTCOME_TOTAL] == 1000
    assert c.OUTCOME_PART not in a and c.OUTCOME_PARTS not in a and c.OUTCOME_RANKS not in a  # one part
    assert read_outcomes(span, spans.get_finished_spans())["fate"]["S700"] == "too_expensive"
    # the decisions sample is unchanged beside them
    assert a[c.STEP_CAPTURE] == "sampled"
    assert len(decisions(span)) == 30 + 2 * cand.SAMPLES_PER_REASON


def test_summary_sends_counts_only_and_full_sends_outcomes_past_the_decisions_cap(spans, monkeypatch):
    monkeypatch.setattr(cand, "MAX_DECISIONS", 50)
    with start_run("r"):
        process_candidates(ITEMS, by_price, step_name="summary", capture="summary")
        process_candidates(ITEMS, by_price, step_name="full", capture="full")
    summary = only_span(spans, "summary").attributes
    assert not [k for k in summary if k.startswith("xray.step.outcomes.")]
    assert json.loads(summary[c.STEP_REJECTIONS]) == {"too_cheap": 100, "too_expensive": 870}
    full = only_span(spans, "full")
    assert len(decisions(full)) == 50
    assert len(full.attributes[c.OUTCOME_IDS]) == 1000 and full.attributes[c.OUTCOME_TOTAL] == 1000


def test_default_ids_caps_and_a_broken_id_fn(spans, caplog):
    rows = [{"id": "a", "ok": True}, {"id": 7, "ok": False}, {"ok": False}]
    long_id = "x" * 300
    with start_run("r"):
        process_candidates(rows, lambda r: r["ok"], step_name="dicts")
        process_candidates([Item("s", 1)], lambda i: True, step_name="objects", id_fn=lambda i: long_id)
        process_candidates([1, 2, 3], lambda n: n > 1, step_name="broken", id_fn=lambda n: 1 / (n - 2))
    assert only_span(spans, "dicts").attributes[c.OUTCOME_IDS] == ("a", "7", "2")
    assert only_span(spans, "objects").attributes[c.OUTCOME_IDS] == ("x" * cand.MAX_ID_CHARS,)
    assert "longer than 200 characters" in caplog.text
    # only the candidate whose id failed falls back to its position
    assert only_span(spans, "broken").attributes[c.OUTCOME_IDS] == ("-1.0", "1", "1.0")


def test_reasons_that_read_the_same_share_a_code_and_the_histogram_adds_them(spans):
    verdicts = [False, (False, ""), (False, None), (True, "x"), (False, "x"), (False, 3), (False, "3")]
    with start_run("r"):
        process_candidates(list(range(len(verdicts))), verdicts.__getitem__, step_name="f")
    a = only_span(spans, "f").attributes
    assert a[c.OUTCOME_REASONS] == (cand.DEFAULT_REASON, "x", "3")
    assert a[c.OUTCOME_CODES] == (1, 1, 1, 0, 2, 3, 3)
    assert json.loads(a[c.STEP_REJECTIONS]) == {cand.DEFAULT_REASON: 3, "x": 1, "3": 2}


def test_many_reasons_widen_the_codes_and_past_the_cap_are_named_honestly(spans, monkeypatch, caplog):
    with start_run("r"):
        process_candidates(range(600), lambda n: (n % 2 == 0, f"r{n}"), step_name="wide")
    wide = only_span(spans, "wide").attributes
    assert len(wide[c.OUTCOME_REASONS]) == 300
    fate = read_outcomes(only_span(spans, "wide"), spans.get_finished_spans())["fate"]
    assert fate["599"] == "r599" and fate["598"] == "kept"
    assert all(type(code) is int for code in wide[c.OUTCOME_CODES])

    monkeypatch.setattr(cand, "MAX_REASONS", 3)
    outcomes._warned.discard("reasons")
    with start_run("r"):
        process_candidates(range(10), lambda n: (False, f"r{n % 5}"), step_name="capped")
    capped = only_span(spans, "capped").attributes
    other = capped[c.OUTCOME_REASONS][3]
    assert capped[c.OUTCOME_REASONS][:3] == ("r0", "r1", "r2") and "past the first" in other
    assert capped[c.OUTCOME_CODES] == (1, 2, 3, 4, 4) * 2  # dropped, exactly; the reason named as not kept
    assert json.loads(capped[c.STEP_REJECTIONS]) == {f"r{i}": 2 for i in range(5)}  # the histogram stays exact
    assert "more than 3 distinct reasons" in caplog.text


def test_a_ranking_sends_every_rank_and_the_cut(spans):
    scores = {f"c{i}": float(i % 17) for i in range(40)}
    with start_run("r"):
        rank_candidates(list(scores), scores.__getitem__, top_k=3, step_name="rank", id_fn=str)
        rank_candidates([3, 1, 2], float, top_k=None, step_name="all")
    got = read_outcomes(only_span(spans, "rank"), spans.get_finished_spans())
    assert got["reasons"] == [cand.BELOW_TOP_K]
    rank_of = dict(zip(got["ids"], got["ranks"]))
    assert (rank_of["c16"], rank_of["c33"], rank_of["c15"], rank_of["c32"]) == (1, 2, 3, 4)
    assert sorted(got["ranks"]) == list(range(1, 41))
    assert [got["fate"][i] for i in ("c16", "c33", "c15", "c32")] == ["kept"] * 3 + [cand.BELOW_TOP_K]
    everything = only_span(spans, "all").attributes
    assert (everything[c.OUTCOME_REASONS], everything[c.OUTCOME_CODES], everything[c.OUTCOME_RANKS]) == (
        (), (0, 0, 0), (1, 3, 2))


def test_score_candidates_scores_every_candidate_and_drops_none(spans):
    titles = ["Steel bottle", "Vacuum flask 1L", "Bottle", "Flask"]
    with start_run("r"):
        got = score_candidates(titles, len, step_name="score_titles", id_fn=lambda t: f"title-{titles.index(t)}",
                               label_fn=str)
        with step("llm_judge", step_type="llm"):
            assert score_candidates(titles, lambda t: None) == [None] * 4  # scores need not compare
    assert got == [12, 15, 6, 5]
    span = only_span(spans, "score_titles")
    a = span.attributes
    assert (a[c.STEP_TYPE], a[c.STEP_INPUT_COUNT], a[c.STEP_OUTPUT_COUNT]) == ("score", 4, 4)
    assert json.loads(a[c.STEP_REJECTIONS]) == {}
    assert a[c.OUTCOME_IDS] == ("title-0", "title-1", "title-2", "title-3")
    assert (a[c.OUTCOME_CODES], a[c.OUTCOME_REASONS]) == ((0, 0, 0, 0), ())
    assert c.OUTCOME_RANKS not in a
    assert decisions(span) == [  # best first, as a ranking's sample
        {"id": "title-1", "accepted": True, "reason": None, "score": 15, "rank": None, "label": "Vacuum flask 1L", "sampled_as": "survivor"},
        {"id": "title-0", "accepted": True, "reason": None, "score": 12, "rank": None, "label": "Steel bottle", "sampled_as": "survivor"},
        {"id": "title-2", "accepted": True, "reason": None, "score": 6, "rank": None, "label": "Bottle", "sampled_as": "survivor"},
        {"id": "title-3", "accepted": True, "reason": None, "score": 5, "rank": None, "label": "Flask", "sampled_as": "survivor"},
    ]
    judge = only_span(spans, "llm_judge").attributes  # an unnamed call annotates the open step
    assert (judge[c.STEP_TYPE], judge[c.OUTCOME_TOTAL]) == ("llm", 4)


def test_score_candidates_samples_the_best(spans):
    with start_run("r"):
        score_candidates(range(1000), lambda n: -abs(n - 500), step_name="s")
        score_candidates(range(10), float, step_name="quiet", capture="summary")
    got = decisions(only_span(spans, "s"))
    assert [d["id"] for d in got[:3]] == ["500", "499", "501"]  # ties keep input order
    assert [d["sampled_as"] for d in got] == ["survivor"] * cand.MAX_SAMPLED_ACCEPTED + [
        "reservoir"] * cand.SAMPLES_PER_REASON  # and a few others at random, so low scores are seen too
    assert all(abs(int(d["id"]) - 500) >= 50 for d in got[cand.MAX_SAMPLED_ACCEPTED:])
    assert only_span(spans, "s").attributes[c.OUTCOME_TOTAL] == 1000
    assert c.OUTCOME_IDS not in only_span(spans, "quiet").attributes


def test_label_fn_puts_a_short_text_beside_each_sampled_decision(spans):
    def label(item: Item) -> str:
        if item.price == 0:
            raise KeyError("no title")
        return f"Product {item.sku} " + "…" * 300

    with start_run("r"):
        process_candidates(ITEMS[:5], lambda i: i.price > 2, step_name="f", label_fn=label)
        rank_candidates(ITEMS[:3], lambda i: i.price, top_k=1, step_name="k", label_fn=lambda i: i.sku.lower())
        process_candidates(ITEMS[:2], lambda i: True, step_name="plain")
    got = decisions(only_span(spans, "f"))
    assert got[0][cand.DECISION_LABEL] is None  # a failing label_fn costs the label only
    assert got[1][cand.DECISION_LABEL].startswith("Product S1 ")
    assert len(got[1][cand.DECISION_LABEL]) == cand.MAX_LABEL_CHARS
    assert [d["label"] for d in decisions(only_span(spans, "k"))] == ["s2", "s1", "s0"]
    assert "label" not in decisions(only_span(spans, "plain"))[0]


def test_outside_a_run_nothing_is_computed(spans):
    calls = []
    assert process_candidates(ITEMS, by_price, id_fn=calls.append, label_fn=calls.append) == ITEMS[100:130]
    assert score_candidates([1, 2], float, id_fn=calls.append) == [1.0, 2.0]
    assert calls == [] and spans.get_finished_spans() == ()


# --- parts ------------------------------------------------------------------------------------

def test_more_than_a_part_goes_on_continuation_spans(spans):
    n = 2 * outcomes.PART_SIZE + 123
    with start_run("r"):
        kept = process_candidates(range(n), lambda k: (k % 7 == 0, "not_seventh"), step_name="big")
    step_span = only_span(spans, "big")
    continuations = [s for s in spans.get_finished_spans() if s.name == "big outcomes"]
    assert len(continuations) == 2
    for span in continuations:
        assert span.parent.span_id == step_span.context.span_id
        assert span.context.trace_id == step_span.context.trace_id
        assert span.attributes[c.KIND] == c.KIND_OUTCOMES
        assert step_span.start_time <= span.start_time and span.end_time <= step_span.end_time
    assert len(step_span.attributes[c.OUTCOME_IDS]) == outcomes.PART_SIZE  # survived SpanLimits defaults
    assert (step_span.attributes[c.OUTCOME_PART], step_span.attributes[c.OUTCOME_PARTS]) == (0, 3)
    got = read_outcomes(step_span, spans.get_finished_spans())
    assert got["ids"] == [str(k) for k in range(n)]
    assert sum(code == 0 for code in got["codes"]) == len(kept)
    assert got["fate"][str(n - 1)] == ("kept" if (n - 1) % 7 == 0 else "not_seventh")


def test_a_twenty_thousand_item_array_survives_the_sdk_own_attribute_path(spans, monkeypatch):
    """The direct store and OTel's set_attribute give the same span; SpanLimits defaults cut neither."""
    with start_run("r"):
        rank_candidates(range(outcomes.PART_SIZE), float, top_k=10, step_name="rank")
    monkeypatch.setattr(outcomes, "_sdk_attributes", lambda span: None)
    with start_run("r"):
        rank_candidates(range(outcomes.PART_SIZE), float, top_k=10, step_name="rank")
    direct, sdk_path = (s.attributes for s in spans.get_finished_spans() if s.name == "rank")
    assert dict(direct) == dict(sdk_path)
    assert len(sdk_path[c.OUTCOME_IDS]) == len(sdk_path[c.OUTCOME_RANKS]) == outcomes.PART_SIZE
    assert {type(v) for v in direct.values() if isinstance(v, (list, tuple))} == {tuple}
    assert SpanLimits().max_span_attributes >= 15  # counts attributes, not array items


def test_the_installed_otel_sdk_keeps_the_direct_array_store(spans):
    with start_run("r"):
        with step("s") as s:
            assert outcomes.fast_path_available(s.span)


def test_a_short_attribute_length_limit_takes_the_sdk_path(monkeypatch):
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_attribute_length=4))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    configure(tracer_provider=provider)
    with start_run("r"):
        process_candidates(["abcdefgh", "ij"], lambda s: False, step_name="f", id_fn=str)
    assert only_span(exporter, "f").attributes[c.OUTCOME_IDS] == ("abcd", "ij")  # OTel's own cut applies


def test_long_ids_make_smaller_parts():
    ids = [f"{i:0200d}" for i in range(outcomes.PART_SIZE)]
    bounds = outcomes.part_bounds(ids, arrays=1)
    assert len(bounds) > 1 and bounds[0][0] == 0 and bounds[-1][1] == len(ids)
    assert all(a < b for a, b in bounds) and all(b == a2 for (_, b), (a2, _) in zip(bounds, bounds[1:]))
    per_id = outcomes.ID_OVERHEAD + outcomes.INT_BYTES
    for a, b in bounds:
        assert outcomes.utf8_len(ids[a:b]) + (b - a) * per_id <= outcomes.PART_BYTES
    # 400 bytes of UTF-8 + 18 of overhead each: two ids a part of 1,000 bytes
    assert outcomes.part_bounds(["é" * 200] * 10, arrays=2, part_bytes=1000) == [(i, i + 2) for i in range(0, 10, 2)]
    assert outcomes.part_bounds([], arrays=1) == [(0, 0)]


def test_a_later_call_on_the_same_step_replaces_every_outcome(spans):
    with start_run("r"):
        with step("reused") as s:
            rank_candidates(range(outcomes.PART_SIZE + 5), float, top_k=3)
            process_candidates(range(10), lambda n: n < 5)
            assert s.recording
    spans_now = spans.get_finished_spans()
    span = only_span(spans, "reused")
    assert [x for x in spans_now if x.name == "reused outcomes"] == []  # the ranking's part 1 never went
    assert not {c.OUTCOME_RANKS, c.OUTCOME_PART, c.OUTCOME_PARTS} & set(span.attributes)
    assert read_outcomes(span, spans_now)["ids"] == [str(n) for n in range(10)]
    with start_run("r"):
        with step("to_summary"):
            process_candidates(range(10), lambda n: n < 5)
            process_candidates(range(10), lambda n: n < 5, capture="summary")
    assert not [k for k in only_span(spans, "to_summary").attributes if k.startswith("xray.step.outcomes.")]


# --- exports that fit -------------------------------------------------------------------------

class Recording(SpanExporter):
    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[ReadableSpan]] = []
        self.fail_on = fail_on

    def export(self, spans):
        self.batches.append(list(spans))
        if len(self.batches) == self.fail_on:
            logging.getLogger(export._EXPORTER_LOGGERS[0]).error("Failed to export spans batch code: 413")
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self):
        pass


def big_step_spans(n: int) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    configure(tracer_provider=provider)
    with start_run("r"):
        process_candidates(range(n), lambda k: (k % 3 == 0, f"reason_{k % 3}"), step_name="big",
                           id_fn=lambda k: f"B{k:012d}")
    return list(exporter.get_finished_spans())


def test_the_exporter_splits_a_batch_into_requests_under_the_budget():
    batch = big_step_spans(300_000)
    assert len(batch) == 16  # the step (part 0), its 14 continuation spans, and the run span
    inner = Recording()
    assert FailSafeExporter(inner, "http://x/v1/traces").export(batch) is SpanExportResult.SUCCESS
    assert len(inner.batches) > 1
    assert [s for b in inner.batches for s in b] == batch  # all of them, in order, once
    for sent in inner.batches:
        assert encode_spans(sent).ByteSize() <= export.REQUEST_BYTES
    for span in batch:  # the estimate is an upper bound
        assert export.span_bytes(span) >= encode_spans([span]).ByteSize() - 200


def test_a_failed_request_fails_the_export_and_drops_the_rest_untried(caplog):
    caplog.set_level(logging.INFO, logger="xray_otel")
    batch = big_step_spans(300_000)
    inner = Recording(fail_on=2)
    exporter = FailSafeExporter(inner, "http://x/v1/traces")
    assert exporter.export(batch) is SpanExportResult.FAILURE
    assert len(inner.batches) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "HTTP 413" in warnings[0]
    sent_first = len(inner.batches[0])
    exporter._retry_at = 0  # the retry pause is over
    inner.fail_on = None
    assert exporter.export(batch[:1]) is SpanExportResult.SUCCESS
    assert f"{len(batch) - sent_first} spans were dropped" in caplog.text


class GrpcCollector(trace_service_pb2_grpc.TraceServiceServicer):
    """A bare OTLP/gRPC receiver with the 4 MiB default message limit, keeping every request."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.sizes: list[int] = []

    def Export(self, request, context):  # noqa: N802 (the gRPC method name)
        self.sizes.append(request.ByteSize())
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


def grpc_collector(limit: int):
    collector = GrpcCollector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2),
                         options=[("grpc.max_receive_message_length", limit)])
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return collector, f"http://127.0.0.1:{port}", lambda: server.stop(None)


def http_collector(limit: int):
    """A bare OTLP/HTTP receiver that refuses bodies over ``limit`` with 413, as the xray receiver does."""
    collector = GrpcCollector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            length = int(self.headers["Content-Length"])
            if length > limit:
                self.send_response(413)
                self.end_headers()
                return
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(self.rfile.read(length))
            collector.Export(request, None)
            body = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop():
        server.shutdown()
        server.server_close()

    return collector, f"http://127.0.0.1:{server.server_address[1]}", stop


@pytest.mark.parametrize("protocol, limit, start", [
    ("grpc", 4 * MiB, grpc_collector),
    ("http/protobuf", 20 * MiB, http_collector),
])
def test_a_million_candidates_arrive_whole_through_the_stock_exporters(protocol, limit, start, caplog):
    collector, endpoint, stop = start(limit)
    provider = build_provider("outcomes-test", endpoint=endpoint, protocol=protocol, timeout=60)
    configure(tracer_provider=provider)
    n = 1_000_000
    try:
        with start_run("million") as run:
            kept = process_candidates(range(n), lambda k: (k % 1000 == 0, "price_too_high" if k % 2 else "off_topic"),
                                      step_name="filter_by_price", id_fn=lambda k: f"B0{k:08d}")
        assert flush(timeout=120)
    finally:
        provider.shutdown()
        stop()
    assert len(kept) == 1000
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert len(collector.requests) > 1 and max(collector.sizes) <= min(limit, 4 * MiB)
    received = [s for r in collector.requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert {s.trace_id.hex() for s in received} == {run.run_id.replace("-", "")}
    (step_span,) = [s for s in received if s.name == "filter_by_price"]
    parts = [step_span] + [s for s in received if s.name == "filter_by_price outcomes"]
    assert all(s.parent_span_id == step_span.span_id for s in parts[1:])

    def attrs(span):
        out = {}
        for kv in span.attributes:
            value = kv.value
            if value.HasField("array_value"):
                out[kv.key] = [v.string_value if v.HasField("string_value") else v.int_value
                               for v in value.array_value.values]
            else:
                out[kv.key] = getattr(value, value.WhichOneof("value"))
        return out

    decoded = sorted((attrs(s) for s in parts), key=lambda a: a[c.OUTCOME_PART])
    assert [a[c.OUTCOME_PART] for a in decoded] == list(range(decoded[0][c.OUTCOME_PARTS]))
    assert len(decoded) == n // outcomes.PART_SIZE
    ids = [i for a in decoded for i in a[c.OUTCOME_IDS]]
    codes = [code for a in decoded for code in a[c.OUTCOME_CODES]]
    assert ids == [f"B0{k:08d}" for k in range(n)]
    assert all(a[c.OUTCOME_TOTAL] == n for a in decoded)
    reasons = decoded[0][c.OUTCOME_REASONS]
    assert all(a[c.OUTCOME_REASONS] == reasons for a in decoded)
    assert [reasons[code - 1] if code else "kept" for code in codes[:4]] == [
        "kept", "price_too_high", "off_topic", "price_too_high"]
    assert codes.count(0) == 1000
