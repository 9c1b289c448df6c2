"""Spans from other instrumentation, end to end: real exporters into the running receiver, read back
through /runs/{id}, /runs/{id}/steps and /analyze.

- OpenInference: spans made by its own tracer helpers (openinference-instrumentation's OITracer,
  decorators and attribute builders), sent with the stock OTLP/HTTP exporter.
- OpenLLMetry: spans in the shape traceloop-sdk's @workflow/@task/@agent/@tool decorators and its
  OpenAI and Pinecone instrumentations produce, spelled with its own constants
  (opentelemetry-semantic-conventions-ai), sent with the stock OTLP/gRPC exporter. traceloop-sdk
  itself is not used: it would add some 45 packages (an instrumentation per vendor) and pin the
  OpenTelemetry SDK to its own version.
- GenAI: stock OpenTelemetry spans with gen_ai.* attributes under a generic HTTP server span.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from openinference.instrumentation import (
    OITracer,
    TraceConfig,
    get_llm_attributes,
    get_reranker_attributes,
    get_retriever_attributes,
)
from openinference.semconv.trace import SpanAttributes as OI
from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as GA
from opentelemetry.semconv_ai import SpanAttributes as TL
from opentelemetry.trace import SpanKind

from helpers import export_request, get_json, new_ids, pipeline_spans, post_otlp
from xray_otel import pricing

# --- plumbing -----------------------------------------------------------------------------------


def provider_for(exporter: Any, **resource: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create(resource))
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # exported as each span ends
    return provider


def fetched(url: str, trace_id: int) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(analysis, steps by name, funnel rows by name) of one trace, through the REST API."""
    run_id = format(trace_id, "032x")  # the form OTel tools print
    analysis = get_json(f"{url}/analyze/{run_id}")
    steps = {s["name"]: s for s in get_json(f"{url}/runs/{run_id}/steps")}
    return analysis, steps, {f["name"]: f for f in analysis["funnel"]}


def current_trace_id() -> int:
    return trace_api.get_current_span().get_span_context().trace_id


def money(value: float) -> Any:
    return pytest.approx(value, rel=1e-9, abs=1e-15)


# --- OpenInference, over OTLP/HTTP ----------------------------------------------------------------

QUESTION = "Which bottle keeps drinks cold longest?"
DOCS = [{"id": f"doc-{i}", "score": round(0.9 - i * 0.1, 2), "content": f"bottle review {i}"} for i in range(5)]
DRAFT_COST = pricing.cost_of("gpt-4o-mini-2024-07-18", 12_000, 800)


@pytest.fixture(scope="module")
def oi_run(receiver_url: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    provider = provider_for(HttpExporter(endpoint=f"{receiver_url}/v1/traces"), **{
        "service.name": "rag-app", "deployment.environment": "test", "service.version": "1.2.3"})
    tracer = OITracer(provider.get_tracer("rag"), config=TraceConfig())
    trace_ids = []

    @tracer.tool
    def lookup_stock(product_id: str) -> str:
        return "in stock"

    @tracer.chain(name="answer_question")
    def answer_question(question: str) -> dict[str, Any]:
        trace_ids.append(current_trace_id())
        with tracer.start_as_current_span("embed_question", openinference_span_kind="embedding") as span:
            span.set_attribute(OI.EMBEDDING_MODEL_NAME, "text-embedding-3-small")
        with tracer.start_as_current_span("search_reviews", openinference_span_kind="retriever") as span:
            span.set_input(question)
            span.set_attributes(get_retriever_attributes(documents=DOCS))
        with tracer.start_as_current_span("rerank_reviews", openinference_span_kind="reranker") as span:
            kept = [{**DOCS[3], "score": 0.97}, {**DOCS[1], "score": 0.64}]
            span.set_attributes(get_reranker_attributes(query=question, model_name="cross-encoder", top_k=2,
                                                        input_documents=DOCS, output_documents=kept))
        with tracer.start_as_current_span("draft_answer", openinference_span_kind="llm") as span:
            span.set_input({"messages": [{"role": "user", "content": question}]})
            span.set_attributes(get_llm_attributes(model_name="gpt-4o-mini-2024-07-18",
                                                   token_count={"prompt": 12_000, "completion": 800, "total": 12_800}))
            span.set_output("The steel one.")
        with tracer.start_as_current_span("judge_answer", openinference_span_kind="evaluator") as span:
            span.set_attributes({**get_llm_attributes(model_name="claude-3-5-haiku", token_count={"prompt": 500}),
                                 OI.LLM_COST_TOTAL: 0.0042})
        with tracer.start_as_current_span("safety_check", openinference_span_kind="guardrail"):
            pass
        lookup_stock("doc-3")
        return {"answer": "The steel one.", "sources": ["doc-3", "doc-1"]}

    answer_question(QUESTION)
    provider.shutdown()
    return fetched(receiver_url, trace_ids[0])


def test_openinference_run(oi_run) -> None:
    analysis, _, _ = oi_run
    run = analysis["run"]
    assert (run["name"], run["status"], run["service"]) == ("answer_question", "COMPLETED", "rag-app")
    assert run["tags"] == {"deployment.environment": "test", "service.version": "1.2.3"}
    assert run["step_count"] == 7
    assert run["total_cost"] == money(DRAFT_COST + 0.0042)
    assert analysis["final_outputs"] == {"answer": "The steel one.", "sources": ["doc-3", "doc-1"]}


def test_openinference_step_types_models_tokens_and_cost(oi_run) -> None:
    _, steps, _ = oi_run
    got = {name: (s["type"], s["model"], s["input_tokens"], s["output_tokens"], s["cost_source"])
           for name, s in steps.items()}
    assert got == {
        "embed_question": ("embedding", "text-embedding-3-small", None, None, "none"),
        "search_reviews": ("retrieval", None, None, None, "none"),
        "rerank_reviews": ("rank", "cross-encoder", None, None, "none"),
        "draft_answer": ("llm", "gpt-4o-mini-2024-07-18", 12_000, 800, "price_table"),
        "judge_answer": ("evaluator", "claude-3-5-haiku", 500, None, "explicit"),
        "safety_check": ("guardrail", None, None, None, "none"),
        "lookup_stock": ("tool", None, None, None, "none"),
    }
    assert steps["draft_answer"]["cost"] == money(DRAFT_COST)
    assert steps["judge_answer"]["cost"] == 0.0042
    assert steps["draft_answer"]["inputs"] == {"messages": [{"role": "user", "content": QUESTION}]}
    assert steps["draft_answer"]["outputs"] == "The steel one."
    assert steps["search_reviews"]["inputs"] == QUESTION
    assert steps["lookup_stock"]["inputs"] == {"product_id": "doc-3"}


def test_openinference_retrieval_and_rerank_funnel(oi_run) -> None:
    analysis, steps, funnel = oi_run
    retrieve, rerank = funnel["search_reviews"], funnel["rerank_reviews"]
    assert (retrieve["input_count"], retrieve["output_count"]) == (None, 5)
    assert (rerank["input_count"], rerank["output_count"], rerank["dropped"], rerank["drop_rate"]) == (5, 2, 3, 0.6)
    assert rerank["rejections"] == {"below_top_k": 3}
    assert (rerank["cost"], rerank["cost_source"]) == (0.0, "none")
    summary = analysis["summary"]
    assert (summary["initial_candidates"], summary["final_count"]) == (5, 2)
    assert summary["biggest_drop"]["step"] == "rerank_reviews"
    assert steps["search_reviews"]["decisions"] == [
        {"id": d["id"], "accepted": True, "reason": None, "score": d["score"], "rank": i + 1} for i, d in enumerate(DOCS)]
    assert [(d["id"], d["accepted"], d["rank"], d["score"]) for d in steps["rerank_reviews"]["decisions"]] == [
        ("doc-0", False, None, 0.9), ("doc-1", True, 2, 0.64), ("doc-2", False, None, 0.7),
        ("doc-3", True, 1, 0.97), ("doc-4", False, None, 0.5)]


def test_openinference_attributes_are_kept_as_sent(oi_run) -> None:
    _, steps, _ = oi_run
    attributes = steps["rerank_reviews"]["attributes"]
    assert attributes["openinference.span.kind"] == "RERANKER"
    assert attributes["reranker.input_documents.4.document.id"] == "doc-4"
    assert attributes["reranker.output_documents.0.document.score"] == 0.97
    assert steps["draft_answer"]["attributes"]["llm.token_count.total"] == 12_800


# --- OpenLLMetry (traceloop) shape, over OTLP/gRPC -------------------------------------------------

PROMPT = [("system", "Answer in one sentence."), ("user", QUESTION)]


@pytest.fixture(scope="module")
def traceloop_run(receiver) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    exporter = GrpcExporter(endpoint=f"127.0.0.1:{receiver.settings.grpc_port}", insecure=True)
    provider = provider_for(exporter, **{"service.name": "support-bot", "deployment.environment.name": "staging"})
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai")
    workflow = {TL.TRACELOOP_WORKFLOW_NAME: "answer_ticket"}

    def entity(kind: str, name: str, args: list[Any], output: Any) -> dict[str, Any]:
        """What traceloop's @workflow/@task/@agent/@tool put on their span."""
        return {TL.TRACELOOP_SPAN_KIND: kind, TL.TRACELOOP_ENTITY_NAME: name, **workflow,
                TL.TRACELOOP_ENTITY_INPUT: json.dumps({"args": args, "kwargs": {}}),
                TL.TRACELOOP_ENTITY_OUTPUT: json.dumps(output)}

    with tracer.start_as_current_span("answer_ticket.workflow",
                                      attributes=entity("workflow", "answer_ticket", [QUESTION], "Steel.")):
        trace_id = current_trace_id()
        with tracer.start_as_current_span("plan.agent", attributes=entity("agent", "plan", [], ["search"])):
            with tracer.start_as_current_span("fetch_context.task",
                                              attributes=entity("task", "fetch_context", [QUESTION], ["doc-3"])):
                with tracer.start_as_current_span("pinecone.query", kind=SpanKind.CLIENT, attributes={
                        TL.VECTOR_DB_VENDOR: "pinecone", TL.VECTOR_DB_OPERATION: "query",
                        TL.VECTOR_DB_QUERY_TOP_K: 5, **workflow}):
                    pass
            with tracer.start_as_current_span("openai.chat", kind=SpanKind.CLIENT, attributes={
                    TL.LLM_REQUEST_TYPE: "chat", TL.LLM_SYSTEM: "openai", TL.LLM_REQUEST_MODEL: "gpt-4o",
                    TL.LLM_RESPONSE_MODEL: "gpt-4o-2024-08-06", TL.LLM_USAGE_PROMPT_TOKENS: 2_000,
                    TL.LLM_USAGE_COMPLETION_TOKENS: 100, TL.LLM_USAGE_TOTAL_TOKENS: 2_100,
                    **{f"{TL.LLM_PROMPTS}.{i}.{k}": v for i, (role, text) in enumerate(PROMPT)
                       for k, v in (("role", role), ("content", text))},
                    f"{TL.LLM_COMPLETIONS}.0.role": "assistant", f"{TL.LLM_COMPLETIONS}.0.content": "Steel.",
                    f"{TL.LLM_COMPLETIONS}.0.finish_reason": "stop", **workflow}):
                pass
            with tracer.start_as_current_span("check_stock.tool",
                                              attributes=entity("tool", "check_stock", ["doc-3"], True)):
                pass
    provider.shutdown()
    return fetched(receiver.url, trace_id)


def test_traceloop_run(traceloop_run) -> None:
    analysis, _, _ = traceloop_run
    run = analysis["run"]
    assert (run["name"], run["service"], run["tags"]) == (
        "answer_ticket", "support-bot", {"deployment.environment.name": "staging"})
    assert analysis["final_outputs"] == "Steel."
    assert run["total_cost"] == money(pricing.cost_of("gpt-4o", 2_000, 100))


def test_traceloop_steps(traceloop_run) -> None:
    _, steps, _ = traceloop_run
    assert {name: s["type"] for name, s in steps.items()} == {
        "plan.agent": "agent", "fetch_context.task": "logic", "pinecone.query": "retrieval",
        "openai.chat": "llm", "check_stock.tool": "tool"}
    chat = steps["openai.chat"]
    assert (chat["model"], chat["input_tokens"], chat["output_tokens"]) == ("gpt-4o-2024-08-06", 2_000, 100)
    assert (chat["cost"], chat["cost_source"]) == (money(0.006), "price_table")  # priced as gpt-4o
    assert chat["inputs"] == [{"role": role, "content": text} for role, text in PROMPT]
    assert chat["outputs"] == [{"role": "assistant", "content": "Steel.", "finish_reason": "stop"}]
    assert steps["fetch_context.task"]["inputs"] == {"args": [QUESTION], "kwargs": {}}
    assert steps["fetch_context.task"]["outputs"] == ["doc-3"]
    assert chat["attributes"]["gen_ai.prompt.1.content"] == QUESTION  # kept as sent


# --- a stock span with gen_ai.* attributes, under a generic HTTP server span, over OTLP/HTTP --------

MESSAGES_IN = [{"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]}]
MESSAGES_OUT = [{"role": "assistant", "parts": [{"type": "text", "content": "Sunny."}], "finish_reason": "stop"}]


@pytest.fixture(scope="module")
def genai_run(receiver_url: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    provider = provider_for(HttpExporter(endpoint=f"{receiver_url}/v1/traces"),
                            **{"service.name": "chat-api", "service.version": "7"})
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER, attributes={
            "http.request.method": "POST", "url.path": "/chat", "http.route": "/chat"}):
        trace_id = current_trace_id()
        with tracer.start_as_current_span("invoke_agent weather", attributes={
                GA.GEN_AI_OPERATION_NAME: "invoke_agent", GA.GEN_AI_AGENT_NAME: "weather",
                "gen_ai.usage.cost": 0.01}):
            with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes={
                    GA.GEN_AI_OPERATION_NAME: "chat", GA.GEN_AI_PROVIDER_NAME: "openai",
                    GA.GEN_AI_REQUEST_MODEL: "gpt-4o-mini", GA.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
                    GA.GEN_AI_USAGE_INPUT_TOKENS: 10_000, GA.GEN_AI_USAGE_OUTPUT_TOKENS: 2_000,
                    GA.GEN_AI_INPUT_MESSAGES: json.dumps(MESSAGES_IN),
                    GA.GEN_AI_OUTPUT_MESSAGES: json.dumps(MESSAGES_OUT)}):
                pass
            with tracer.start_as_current_span("execute_tool get_weather", attributes={
                    GA.GEN_AI_OPERATION_NAME: "execute_tool", GA.GEN_AI_TOOL_NAME: "get_weather"}):
                with tracer.start_as_current_span("SELECT forecasts", kind=SpanKind.CLIENT, attributes={
                        "db.system.name": "postgresql", "db.query.text": "SELECT * FROM forecasts WHERE city = $1"}):
                    pass
            with tracer.start_as_current_span("embeddings local-embedder", kind=SpanKind.CLIENT, attributes={
                    GA.GEN_AI_OPERATION_NAME: "embeddings", GA.GEN_AI_REQUEST_MODEL: "local-embedder",
                    GA.GEN_AI_USAGE_INPUT_TOKENS: 40}):
                pass
    provider.shutdown()
    return fetched(receiver_url, trace_id)


def test_genai_run_named_after_service_and_route(genai_run) -> None:
    analysis, _, _ = genai_run
    run = analysis["run"]
    assert (run["name"], run["status"], run["tags"]) == ("chat-api POST /chat", "COMPLETED", {"service.version": "7"})
    assert run["total_cost"] == money(0.01 + pricing.cost_of("gpt-4o-mini", 10_000, 2_000))


def test_genai_steps(genai_run) -> None:
    _, steps, _ = genai_run
    got = {name: (s["type"], s["model"], s["input_tokens"], s["output_tokens"], s["cost"], s["cost_source"])
           for name, s in steps.items()}
    assert got == {
        "invoke_agent weather": ("agent", None, None, None, 0.01, "explicit"),
        "chat gpt-4o-mini": ("llm", "gpt-4o-mini-2024-07-18", 10_000, 2_000, money(0.0027), "price_table"),
        "execute_tool get_weather": ("tool", None, None, None, 0.0, "none"),
        "SELECT forecasts": ("retrieval", None, None, None, 0.0, "none"),
        "embeddings local-embedder": ("embedding", "local-embedder", 40, None, 0.0, "none"),  # not in the table
    }
    chat = steps["chat gpt-4o-mini"]
    assert (chat["inputs"], chat["outputs"]) == (MESSAGES_IN, MESSAGES_OUT)
    assert chat["attributes"][GA.GEN_AI_INPUT_MESSAGES] == json.dumps(MESSAGES_IN)


# --- xray.* spans say where their cost came from too ------------------------------------------------


def test_xray_steps_report_cost_source(receiver_url: str) -> None:
    trace_id, base = new_ids()
    assert post_otlp(receiver_url, export_request(pipeline_spans(trace_id, base))).status == 200
    _, steps, funnel = fetched(receiver_url, int.from_bytes(trace_id, "big"))
    assert {n: s["cost_source"] for n, s in steps.items()} == {
        "keywords": "explicit", "retrieve": "none", "filter_price": "none", "rank": "explicit"}
    assert funnel["keywords"]["cost_source"] == "explicit"
