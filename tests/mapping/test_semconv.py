"""Spans from other instrumentation (xray_otel.mapping.semconv), pure: attributes in, step fields out.

The tables are checked against the libraries that define the names (OpenInference's and
OpenLLMetry's semantic-convention packages, the OTel GenAI constants), and every rule of
docs/conventions.md "Spans from other OpenTelemetry instrumentation" has a case here.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from openinference.semconv import trace as oi
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as genai
from opentelemetry.semconv_ai import LLMRequestTypeValues, SpanAttributes as Llmetry, TraceloopSpanKindValues
from opentelemetry.trace import SpanKind

from xray_otel import pricing
from xray_otel.mapping import semconv
from xray_otel.mapping.rows import Batch
from xray_otel.mapping.spans import map_request, step_type
from xray_otel.mapping.semconv import NOTHING, read

CLIENT, SERVER, INTERNAL = semconv.SPAN_KIND_CLIENT, semconv.SPAN_KIND_SERVER, 1


def constants(*holders: Any) -> set[str]:
    return {v for h in holders for k, v in vars(h).items() if k.isupper() and isinstance(v, str)}


# --- the tables spell the libraries' names ------------------------------------------------------


def test_openinference_table_uses_openinference_names() -> None:
    names = constants(oi.SpanAttributes, oi.RerankerAttributes)
    assert set(semconv.OPENINFERENCE) <= names
    assert oi.SpanAttributes.RETRIEVAL_DOCUMENTS + "." in semconv.LISTS
    assert oi.RerankerAttributes.RERANKER_INPUT_DOCUMENTS + "." in semconv.LISTS
    assert oi.RerankerAttributes.RERANKER_OUTPUT_DOCUMENTS + "." in semconv.LISTS
    assert {"document." + f for f in ("id", "score", "content")} <= constants(oi.DocumentAttributes)


def test_every_openinference_span_kind_has_a_step_type() -> None:
    assert set(semconv.OPENINFERENCE_KINDS) == {k.value for k in oi.OpenInferenceSpanKindValues} - {"UNKNOWN"}


def test_openllmetry_table_uses_openllmetry_names() -> None:
    names = constants(Llmetry)
    assert set(semconv.OPENLLMETRY) <= names
    assert {Llmetry.LLM_PROMPTS + ".", Llmetry.LLM_COMPLETIONS + "."} <= set(semconv.LISTS)
    assert set(semconv.OPENLLMETRY_KINDS) == {k.value for k in TraceloopSpanKindValues} - {"unknown"}
    assert set(semconv.OPENLLMETRY_REQUEST_TYPES) == {k.value for k in LLMRequestTypeValues} - {"unknown"}


def test_genai_table_uses_genai_names() -> None:
    assert set(semconv.GENAI) - {"gen_ai.usage.cost"} <= constants(genai)  # the one name not in the spec
    assert {v.value for v in genai.GenAiOperationNameValues} <= set(semconv.GENAI_OPERATIONS)


def test_list_prefixes_are_two_names_and_a_dot() -> None:
    assert all(prefix.count(".") == 2 and prefix.endswith(".") for prefix in semconv.LISTS)  # what _gather relies on


def test_one_index_entry_per_attribute_in_table_order() -> None:
    keys = [k for table in semconv.CONVENTIONS for k in table]
    assert len(keys) == len(set(keys))
    assert [semconv._INDEX[k][0] for k in keys] == list(range(len(keys)))


# --- step type ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("openinference.span.kind", "LLM", "llm"), ("openinference.span.kind", "RETRIEVER", "retrieval"),
    ("openinference.span.kind", "RERANKER", "rank"), ("openinference.span.kind", "EMBEDDING", "embedding"),
    ("openinference.span.kind", "TOOL", "tool"), ("openinference.span.kind", "CHAIN", "logic"),
    ("openinference.span.kind", "AGENT", "agent"), ("openinference.span.kind", "GUARDRAIL", "guardrail"),
    ("openinference.span.kind", "EVALUATOR", "evaluator"), ("openinference.span.kind", "PROMPT", "logic"),
    ("openinference.span.kind", "DECISION", "llm"), ("openinference.span.kind", "llm", "llm"),
    ("traceloop.span.kind", "workflow", "logic"), ("traceloop.span.kind", "task", "logic"),
    ("traceloop.span.kind", "agent", "agent"), ("traceloop.span.kind", "tool", "tool"),
    ("llm.request.type", "chat", "llm"), ("llm.request.type", "completion", "llm"),
    ("llm.request.type", "embedding", "embedding"), ("llm.request.type", "rerank", "rank"),
    ("gen_ai.operation.name", "chat", "llm"), ("gen_ai.operation.name", "text_completion", "llm"),
    ("gen_ai.operation.name", "generate_content", "llm"), ("gen_ai.operation.name", "embeddings", "embedding"),
    ("gen_ai.operation.name", "retrieval", "retrieval"), ("gen_ai.operation.name", "execute_tool", "tool"),
    ("gen_ai.operation.name", "create_agent", "agent"), ("gen_ai.operation.name", "invoke_agent", "agent"),
    ("gen_ai.operation.name", "invoke_workflow", "logic"), ("gen_ai.operation.name", "vector_db_retrieve", "retrieval"),
    ("gen_ai.operation.name", " Chat ", "llm"),
])
def test_step_type_tables(key: str, value: str, expected: str) -> None:
    assert read({key: value}).type == expected
    assert step_type({key: value}) == expected


@pytest.mark.parametrize("value", ["UNKNOWN", "", "something-new", 3, None])
def test_unknown_kind_values_leave_the_type_to_the_next_rule(value: Any) -> None:
    assert read({"openinference.span.kind": value}).type is None
    assert read({"openinference.span.kind": value, "gen_ai.operation.name": "chat"}).type == "llm"
    assert step_type({"openinference.span.kind": value}) == "logic"


def test_key_memo_is_bounded_and_keys_past_it_still_count() -> None:
    """Attribute keys are client-chosen: the memo of their routes stops growing, the reading does not change."""
    read({f"custom.key.{i}": i for i in range(semconv._MAX_ROUTES + 10)})
    assert len(semconv._ROUTES) <= semconv._MAX_ROUTES
    docs = {f"retrieval.documents.{i}.document.id": f"d{i}" for i in range(3)}
    assert read({**docs, "x.unseen.key": 1, "llm.model_name": "m"}).model == "m"
    assert read(docs).output_count == 3


def test_step_type_precedence() -> None:
    every = {"gen_ai.operation.name": "execute_tool", "traceloop.span.kind": "agent",
             "openinference.span.kind": "RETRIEVER", "db.system": "postgresql"}
    assert read(every, CLIENT).type == "retrieval"  # OpenInference first
    del every["openinference.span.kind"]
    assert read(every, CLIENT).type == "agent"  # then OpenLLMetry
    del every["traceloop.span.kind"]
    assert read(every, CLIENT).type == "tool"  # then GenAI
    del every["gen_ai.operation.name"]
    assert read(every, CLIENT).type == "retrieval"  # then the span kind
    assert step_type({"xray.step.type": "filter", "openinference.span.kind": "LLM"}) == "filter"  # xray.* above all


@pytest.mark.parametrize(("kind", "attrs", "expected"), [
    (CLIENT, {"db.system": "pinecone"}, "retrieval"),
    (CLIENT, {"db.system.name": "postgresql"}, "retrieval"),
    (INTERNAL, {"db.system": "postgresql"}, None),
    (SERVER, {"db.system": "postgresql"}, None),
    (CLIENT, {"http.request.method": "GET"}, None),
    (CLIENT, {}, None),
])
def test_span_kind_rule(kind: int, attrs: dict[str, Any], expected: str | None) -> None:
    assert read(attrs, kind).type == expected


# --- inputs and outputs -------------------------------------------------------------------------


def test_openinference_values_follow_their_mime_type() -> None:
    found = read({"input.value": '{"q": 1}', "input.mime_type": "application/json",
                  "output.value": '{"not": "parsed"}', "output.mime_type": "text/plain"})
    assert json.loads(found.inputs) == {"q": 1}
    assert json.loads(found.outputs) == '{"not": "parsed"}'  # text stays text, even when it looks like JSON


def test_openinference_value_without_mime_type_is_text() -> None:
    assert json.loads(read({"input.value": "42"}).inputs) == "42"
    assert json.loads(read({"input.value": "a\x00b"}).inputs) == "ab"


@pytest.mark.parametrize(("attrs", "expected_inputs"), [
    ({"input.value": "oi", "traceloop.entity.input": '"tl"', "gen_ai.input.messages": '["ga"]', "gen_ai.prompt": "p"},
     "oi"),
    ({"traceloop.entity.input": '{"args": ["tl"], "kwargs": {}}', "gen_ai.input.messages": '["ga"]'},
     {"args": ["tl"], "kwargs": {}}),
    ({"gen_ai.input.messages": '[{"role": "user", "parts": []}]', "gen_ai.prompt": "p"},
     [{"role": "user", "parts": []}]),
    ({"gen_ai.prompt": "plain prompt", "gen_ai.prompt.0.content": "indexed"}, "plain prompt"),
    ({"gen_ai.prompt.1.content": "hi", "gen_ai.prompt.1.role": "user", "gen_ai.prompt.0.role": "system",
      "gen_ai.prompt.0.content": "be brief"},
     [{"role": "system", "content": "be brief"}, {"content": "hi", "role": "user"}]),
])
def test_inputs_precedence(attrs: dict[str, Any], expected_inputs: Any) -> None:
    assert json.loads(read(attrs).inputs) == expected_inputs


def test_outputs_from_each_convention() -> None:
    assert json.loads(read({"output.value": "o", "traceloop.entity.output": '"t"'}).outputs) == "o"
    assert json.loads(read({"traceloop.entity.output": '"t"', "gen_ai.output.messages": "[]"}).outputs) == "t"
    assert json.loads(read({"gen_ai.output.messages": "[1]", "gen_ai.completion": "c"}).outputs) == [1]
    assert json.loads(read({"gen_ai.completion": "c"}).outputs) == "c"
    indexed = {"gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "hi",
               "gen_ai.completion.0.tool_calls.0.name": "lookup", "gen_ai.completion.0.finish_reason": "stop"}
    assert json.loads(read(indexed).outputs) == [{"role": "assistant", "content": "hi", "tool_calls.0.name": "lookup",
                                                  "finish_reason": "stop"}]


@pytest.mark.parametrize("key", ["gen_ai.prompt.name", "gen_ai.prompt.x.content", "gen_ai.prompt.0", "gen_ai.prompt.².a"])
def test_names_under_a_list_prefix_that_are_not_items_are_ignored(key: str) -> None:
    assert read({key: "v"}) == NOTHING


def test_a_genai_value_sent_as_an_otlp_array_is_stored_as_json() -> None:
    assert json.loads(read({"gen_ai.input.messages": [{"role": "user"}]}).inputs) == [{"role": "user"}]


# --- model, tokens, cost ------------------------------------------------------------------------


@pytest.mark.parametrize(("attrs", "model"), [
    ({"llm.model_name": "gpt-4o", "gen_ai.response.model": "gpt-4o-mini"}, "gpt-4o"),
    ({"llm.response.model_name": "a", "llm.request.model_name": "b"}, "a"),
    ({"llm.request.model_name": "b"}, "b"),
    ({"embedding.model_name": "text-embedding-3-small"}, "text-embedding-3-small"),
    ({"reranker.model_name": "cross-encoder"}, "cross-encoder"),
    ({"decision.model_name": "jev-1"}, "jev-1"),
    ({"gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06"}, "gpt-4o-2024-08-06"),
    ({"gen_ai.request.model": "gpt-4o", "gen_ai.response.model": ""}, "gpt-4o"),
    ({"llm.model_name": "  ", "gen_ai.request.model": "gpt-4o"}, "gpt-4o"),
    ({"gen_ai.request.model": 4}, None),
])
def test_model(attrs: dict[str, Any], model: str | None) -> None:
    assert read(attrs).model == model


@pytest.mark.parametrize(("attrs", "tokens"), [
    ({"llm.token_count.prompt": 10, "llm.token_count.completion": 5}, (10, 5)),
    ({"decision.token_count.input": 7, "decision.token_count.output": 1}, (7, 1)),
    ({"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5}, (10, 5)),
    ({"gen_ai.usage.prompt_tokens": 11, "gen_ai.usage.completion_tokens": 6}, (11, 6)),
    ({"gen_ai.usage.input_tokens": 10, "gen_ai.usage.prompt_tokens": 11}, (10, None)),
    ({"llm.token_count.prompt": 1, "gen_ai.usage.input_tokens": 2}, (1, None)),
    ({"llm.token_count.prompt": -1, "gen_ai.usage.input_tokens": 2}, (2, None)),  # unusable: next rule
    ({"gen_ai.usage.input_tokens": "12", "gen_ai.usage.output_tokens": 3.0}, (12, 3)),
    ({"gen_ai.usage.input_tokens": True, "gen_ai.usage.output_tokens": 2**63}, (None, None)),
])
def test_tokens(attrs: dict[str, Any], tokens: tuple[int | None, int | None]) -> None:
    found = read(attrs)
    assert (found.input_tokens, found.output_tokens) == tokens


@pytest.mark.parametrize(("attrs", "cost"), [
    ({"llm.cost.total": 0.25}, 0.25),
    ({"gen_ai.usage.cost": 1}, 1.0),
    ({"llm.cost.total": 0.25, "gen_ai.usage.cost": 9.0}, 0.25),
    ({"llm.cost.total": -1.0, "gen_ai.usage.cost": 9.0}, 9.0),
    ({"llm.cost.total": "0.25"}, None),
    ({"llm.cost.total": "NaN"}, None),  # how the receiver holds a NaN double
    ({"llm.cost.prompt": 0.1, "llm.cost.completion": 0.2}, None),  # only the total is read
])
def test_explicit_cost(attrs: dict[str, Any], cost: float | None) -> None:
    assert read(attrs).cost == cost


# --- retrieval and reranking join the funnel ------------------------------------------------------


def docs(prefix: str, *items: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}.{i}.document.{k}": v for i, item in enumerate(items) for k, v in item.items()}


def test_retrieved_documents_are_the_output_count_and_accepted_decisions() -> None:
    attrs = {"openinference.span.kind": "RETRIEVER",
             **docs("retrieval.documents", {"id": "d1", "score": 0.9, "content": "a"}, {"id": 7, "score": 0.5},
                    {"content": "no id"})}
    found = read(attrs)
    assert (found.type, found.input_count, found.output_count, found.rejections) == ("retrieval", None, 3, None)
    assert json.loads(found.decisions) == [
        {"id": "d1", "accepted": True, "reason": None, "score": 0.9, "rank": 1},
        {"id": "7", "accepted": True, "reason": None, "score": 0.5, "rank": 2},
        # no id: named by its text, so the same document has the same id in every step (a position would
        # name another document in the next step)
        {"id": CONTENT_ID_OF_NO_ID, "accepted": True, "reason": None, "score": None, "rank": 3},
    ]


def content_id(text: str) -> str:
    """The id a document without one gets: its text's digest (semconv._doc_id)."""
    return "content:" + hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


CONTENT_ID_OF_NO_ID = content_id("no id")


def test_documents_named_by_their_metadata_as_openinference_langchain_sends_them() -> None:
    """openinference-instrumentation-langchain sends document.content and document.metadata only: the id
    and the score are in the metadata (a reranker's relevance_score before the retriever's score)."""
    attrs = {"openinference.span.kind": "RETRIEVER", **docs(
        "retrieval.documents",
        {"content": "Returns within 30 days.", "metadata": json.dumps({"id": "kb-returns-2024", "score": 0.88})},
        {"content": "Old policy.", "metadata": json.dumps({"id": "kb-returns-2019", "score": 0.9,
                                                           "relevance_score": 0.97})},
        {"content": "No id here.", "metadata": json.dumps({"source": "kb/x.md"})})}
    decisions = json.loads(read(attrs).decisions)
    assert [(d["id"], d["score"]) for d in decisions] == [
        ("kb-returns-2024", 0.88), ("kb-returns-2019", 0.97),
        (content_id("No id here."), None)]


def test_llm_messages_win_over_a_frameworks_serialisation() -> None:
    attrs = {"openinference.span.kind": "LLM",
             "input.value": json.dumps({"messages": [[{"lc": 1, "type": "constructor"}]]}),
             "input.mime_type": "application/json",
             "llm.input_messages.0.message.role": "system", "llm.input_messages.0.message.content": "Be brief.",
             "llm.input_messages.1.message.role": "user", "llm.input_messages.1.message.content": "Where is A-1?",
             "llm.output_messages.0.message.role": "assistant",
             "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_1",
             "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup_order",
             "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"order_id": "A-1"}'}
    found = read(attrs)
    assert json.loads(found.inputs) == {"messages": [{"role": "system", "content": "Be brief."},
                                                     {"role": "user", "content": "Where is A-1?"}]}
    assert json.loads(found.outputs) == {"messages": [{"role": "assistant", "tool_calls": [
        {"id": "call_1", "name": "lookup_order", "arguments": '{"order_id": "A-1"}'}]}]}


def test_a_failed_calls_model_from_its_invocation_parameters() -> None:
    found = read({"openinference.span.kind": "LLM",
                  "llm.invocation_parameters": json.dumps({"model": "gpt-4o-fail", "temperature": 0})})
    assert found.model == "gpt-4o-fail"
    answered = read({"llm.model_name": "gpt-4o-mini-2024-07-18", "llm.invocation_parameters": '{"model": "gpt-4o-mini"}'})
    assert answered.model == "gpt-4o-mini-2024-07-18"  # the model that answered, when the response said


def test_retrieved_documents_in_any_attribute_order_and_with_gaps() -> None:
    attrs = {"retrieval.documents.10.document.id": "last", "retrieval.documents.2.document.id": "first"}
    assert [d["id"] for d in json.loads(read(attrs).decisions)] == ["first", "last"]
    assert read(attrs).output_count == 2


def test_reranker_counts_rejections_and_decisions_matched_by_id() -> None:
    attrs = {"openinference.span.kind": "RERANKER",
             **docs("reranker.input_documents", *({"id": f"d{i}", "score": 0.1 * i} for i in range(5))),
             **docs("reranker.output_documents", {"id": "d3", "score": 0.97}, {"id": "d0", "score": 0.61})}
    found = read(attrs)
    assert (found.type, found.input_count, found.output_count) == ("rank", 5, 2)
    assert json.loads(found.rejections) == {"below_top_k": 3}
    assert json.loads(found.decisions) == [
        {"id": "d0", "accepted": True, "reason": None, "score": 0.61, "rank": 2},
        {"id": "d1", "accepted": False, "reason": "below_top_k", "score": 0.1, "rank": None},
        {"id": "d2", "accepted": False, "reason": "below_top_k", "score": 0.2, "rank": None},
        {"id": "d3", "accepted": True, "reason": None, "score": 0.97, "rank": 1},
        {"id": "d4", "accepted": False, "reason": "below_top_k", "score": 0.4, "rank": None},
    ]


def test_reranker_documents_without_ids_are_matched_by_content() -> None:
    attrs = {**docs("reranker.input_documents", {"content": "a"}, {"content": "b"}, {"content": "c"}),
             **docs("reranker.output_documents", {"content": "c", "score": 2.0})}
    assert [(d["id"], d["accepted"], d["rank"], d["score"]) for d in json.loads(read(attrs).decisions)] == [
        (content_id("a"), False, None, None), (content_id("b"), False, None, None), (content_id("c"), True, 1, 2.0)]


def test_reranker_documents_that_cannot_be_matched_record_the_outputs_only() -> None:
    attrs = {**docs("reranker.input_documents", {"score": 0.1}, {"score": 0.2}),
             **docs("reranker.output_documents", {"score": 0.2})}
    found = read(attrs)
    assert (found.input_count, found.output_count, json.loads(found.rejections)) == (2, 1, {"below_top_k": 1})
    assert json.loads(found.decisions) == [{"id": "0", "accepted": True, "reason": None, "score": 0.2, "rank": 1}]


def test_reranker_with_only_one_side_recorded() -> None:
    found = read(docs("reranker.input_documents", {"id": "a"}, {"id": "b"}))
    assert (found.input_count, found.output_count, found.rejections) == (2, None, None)
    found = read(docs("reranker.output_documents", {"id": "a"}))
    assert (found.input_count, found.output_count) == (None, 1)
    assert json.loads(found.decisions) == [{"id": "a", "accepted": True, "reason": None, "score": None, "rank": 1}]


def test_reranker_output_not_among_its_inputs_is_still_recorded() -> None:
    attrs = {**docs("reranker.input_documents", {"id": "a"}), **docs("reranker.output_documents", {"id": "z"})}
    assert [(d["id"], d["accepted"]) for d in json.loads(read(attrs).decisions)] == [("a", False), ("z", True)]


def test_decision_ids_are_capped() -> None:
    (decision,) = json.loads(read(docs("retrieval.documents", {"id": "x" * 1000})).decisions)
    assert decision["id"] == "x" * semconv.MAX_ID


# --- the fast path --------------------------------------------------------------------------------


def test_a_span_with_nothing_foreign_reads_nothing() -> None:
    xray_only = {"xray.kind": "step", "xray.step.type": "filter", "xray.step.input_count": 3, "custom": "x"}
    assert read(xray_only) is NOTHING
    assert read({}, INTERNAL) is NOTHING


# --- through the mapping: precedence over xray.*, cost_source, the run, nothing lost ---------------


def mapped(build: Any, resource: dict[str, Any] | None = None) -> Batch:
    """Spans made by the OTel SDK (``build(tracer)``), encoded as the OTLP exporter does, then mapped."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "svc", **(resource or {})}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    build(provider.get_tracer("test"))
    provider.shutdown()
    return map_request(encode_spans(exporter.get_finished_spans()))


def steps_by_name(batch: Batch) -> dict[str, Any]:
    return {s.name: s for s in batch.steps}


def test_xray_attributes_win_over_every_other_convention() -> None:
    def build(tracer: Any) -> None:
        with tracer.start_as_current_span("root"):
            tracer.start_span("s", attributes={
                "xray.step.type": "filter", "openinference.span.kind": "LLM",
                "xray.step.inputs": '{"x": 1}', "input.value": "oi", "xray.step.outputs": "[]", "output.value": "o",
                "xray.step.input_count": 9, "xray.step.output_count": 4, "xray.step.rejections": '{"r": 5}',
                "xray.step.decisions": "[]", **docs("reranker.input_documents", {"id": "a"}, {"id": "b"}),
                **docs("reranker.output_documents", {"id": "a"}),
                "xray.step.cost": 0.5, "llm.cost.total": 9.0,
            }).end()
    step = steps_by_name(mapped(build))["s"]
    assert (step.type, json.loads(step.inputs), step.outputs, step.input_count, step.output_count) == (
        "filter", {"x": 1}, "[]", 9, 4)
    assert (step.rejections, step.decisions, step.cost, step.cost_source) == ('{"r": 5}', "[]", 0.5, "explicit")


@pytest.mark.parametrize(("attrs", "cost", "source"), [
    ({"xray.step.cost": 0.5, "xray.step.cost_source": "price_table"}, 0.5, "price_table"),  # the SDK priced it
    ({"xray.step.cost": 0.5, "xray.step.cost_source": "guess"}, 0.5, "explicit"),
    ({"xray.step.cost": 0}, 0.0, "explicit"),
    ({"llm.cost.total": 0.03, "llm.model_name": "gpt-4o", "llm.token_count.prompt": 10**6}, 0.03, "explicit"),
    ({"gen_ai.usage.cost": 0.02}, 0.02, "explicit"),
    ({"llm.model_name": "gpt-4o", "llm.token_count.prompt": 10**6, "llm.token_count.completion": 10**5}, 3.5,
     "price_table"),
    ({"gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.prompt_tokens": 10**6}, 0.15, "price_table"),
    ({"gen_ai.request.model": "gpt-4o"}, 0.0, "none"),  # no tokens: nothing to price
    ({"gen_ai.request.model": "my-local-model", "gen_ai.usage.input_tokens": 10}, 0.0, "none"),
    ({"gen_ai.usage.input_tokens": 10}, 0.0, "none"),
    ({}, 0.0, "none"),
])
def test_cost_and_its_source(attrs: dict[str, Any], cost: float, source: str) -> None:
    def build(tracer: Any) -> None:
        with tracer.start_as_current_span("root"):
            tracer.start_span("s", attributes=attrs).end()
    step = steps_by_name(mapped(build))["s"]
    assert (step.cost, step.cost_source) == (pytest.approx(cost), source)


def test_price_table_cost_is_the_pricing_module() -> None:
    def build(tracer: Any) -> None:
        with tracer.start_as_current_span("root"):
            tracer.start_span("s", attributes={"llm.model_name": "claude-3-5-haiku-20241022",
                                               "llm.token_count.prompt": 1234, "llm.token_count.completion": 56}).end()
    assert steps_by_name(mapped(build))["s"].cost == pricing.cost_of("claude-3-5-haiku-20241022", 1234, 56)


@pytest.mark.parametrize(("kind", "attrs", "service", "expected"), [
    (SpanKind.INTERNAL, {}, "svc", "root"),
    (SpanKind.INTERNAL, {"traceloop.workflow.name": "answer"}, "svc", "answer"),
    (SpanKind.INTERNAL, {"gen_ai.workflow.name": "g"}, "svc", "g"),
    (SpanKind.INTERNAL, {"traceloop.workflow.name": "t", "gen_ai.workflow.name": "g"}, "svc", "t"),
    (SpanKind.INTERNAL, {"traceloop.workflow.name": "t", "xray.run.name": "x"}, "svc", "x"),
    (SpanKind.SERVER, {"http.request.method": "GET"}, "shop", "shop root"),
    (SpanKind.SERVER, {"http.method": "GET"}, "shop", "shop root"),
    (SpanKind.SERVER, {"http.method": "GET", "traceloop.workflow.name": "w"}, "shop", "w"),
    (SpanKind.SERVER, {}, "shop", "root"),  # a server span that is not HTTP
    (SpanKind.CLIENT, {"http.request.method": "GET"}, "shop", "root"),
])
def test_run_name(kind: SpanKind, attrs: dict[str, Any], service: str, expected: str) -> None:
    batch = mapped(lambda tracer: tracer.start_span("root", kind=kind, attributes=attrs).end(),
                   {"service.name": service})
    (run,) = batch.runs.values()
    assert run.name == expected


def test_run_tags_from_resource_attributes_and_xray_tags_win() -> None:
    resource = {"deployment.environment": "prod", "deployment.environment.name": "prod-eu", "service.version": "1.2",
                "service.namespace": "shop", "host.name": "not-a-tag", "service.instance.id": "i-1"}
    batch = mapped(lambda tracer: tracer.start_span("root", attributes={"xray.tag.service.version": "pinned"}).end(),
                   resource)
    (run,) = batch.runs.values()
    assert json.loads(run.tags) == {"deployment.environment": "prod", "deployment.environment.name": "prod-eu",
                                    "service.version": "pinned", "service.namespace": "shop"}


def test_run_inputs_and_outputs_from_the_run_span() -> None:
    def build(tracer: Any) -> None:
        tracer.start_span("root", attributes={"input.value": "question", "output.value": '{"a": 1}',
                                              "output.mime_type": "application/json"}).end()
    (run,) = mapped(build).runs.values()
    assert (json.loads(run.inputs), json.loads(run.outputs)) == ("question", {"a": 1})


def test_every_foreign_attribute_stays_in_the_step_attributes() -> None:
    sent = {"openinference.span.kind": "LLM", "input.value": "q", "llm.model_name": "gpt-4o",
            "llm.token_count.prompt": 3, "llm.cost.total": 0.1, "traceloop.workflow.name": "w",
            "gen_ai.prompt.0.content": "hi", **docs("retrieval.documents", {"id": "d", "score": 0.5})}

    def build(tracer: Any) -> None:
        with tracer.start_as_current_span("root"):
            tracer.start_span("s", attributes=sent).end()
    assert json.loads(steps_by_name(mapped(build))["s"].attributes) == sent
