"""The apps a user would write with each library, unmodified, each run in a process of its own (``main``,
started by harness.py) so one library's patches never meet another's. Each app's TracerProvider has
two processors: an in-memory exporter (the ground truth: the spans the app produced) and the stock
OTLP exporter (HTTP or gRPC) pointed at the receiver, wrapped so the test sees every export's result.
Each scenario of an app is one trace (one run).

The LangChain pieces that live outside langchain-core (ContextualCompressionRetriever, a reranker)
are written here the way langchain's own are: a BaseRetriever that calls its base retriever with the
child callbacks and then a BaseDocumentCompressor, so OpenInference sees the same runs it would.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (BatchSpanProcessor, SimpleSpanProcessor, SpanExporter,
                                            SpanExportResult)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fakes import FAIL_MODEL
from spans_json import span_dicts, trace_of

CHAT_MODEL = "gpt-4o-mini"
EMBEDDING_MODEL = "text-embedding-3-small"
QUESTION = "Can I return a jacket I bought three weeks ago?"


@dataclass
class Endpoints:
    otlp_http: str   # base URL the OTLP/HTTP exporters post to (the recording proxy)
    otlp_grpc: str   # host:port of the receiver's gRPC port
    openai: str      # the fake OpenAI API's base URL (…/v1)


@dataclass
class AppRun:
    case: str
    transport: str
    scenarios: dict[str, str] = field(default_factory=dict)      # scenario -> trace id (hex)
    spans: list[dict[str, Any]] = field(default_factory=list)    # ground truth, all scenarios
    export_results: list[str] = field(default_factory=list)      # one per OTLP export call
    exporter_logs: list[str] = field(default_factory=list)       # WARNING+ from opentelemetry loggers
    app_errors: dict[str, str] = field(default_factory=dict)     # scenario -> the exception the app caught
    forwarded: list[Any] = field(default_factory=list)           # HTTP requests through the proxy (fakes.Forwarded)
    stdout: str = ""
    window: tuple[int, int] = (0, 0)                             # time.time_ns() around the app's run
    documents: list[dict[str, Any]] = field(default_factory=list)  # the retriever's documents (LangChain)

    def spans_of(self, scenario: str) -> list[dict[str, Any]]:
        trace = self.scenarios[scenario]
        return [s for s in self.spans if s["trace_id"] == trace]


class RecordingExporter(SpanExporter):
    """The stock exporter, with each export's result kept."""

    def __init__(self, inner: SpanExporter, results: list[str]) -> None:
        self.inner, self.results = inner, results

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        self.results.append(result.name)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(f"{record.name}: {record.getMessage()}"[:500])


@contextmanager
def _exporter_logs(into: list[str]) -> Iterator[None]:
    handler = _Collect(into)
    logger = logging.getLogger("opentelemetry")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


@contextmanager
def pipeline(run: AppRun, endpoints: Endpoints, service: str) -> Iterator[tuple[TracerProvider, Callable[[str], None]]]:
    """A provider with the in-memory and the OTLP exporter; yields it and ``scenario(name)``, which
    names the trace made since the previous call. Flushes and shuts down on exit."""
    memory = InMemorySpanExporter()
    if run.transport == "http":
        otlp: SpanExporter = HttpSpanExporter(endpoint=f"{endpoints.otlp_http}/v1/traces")
    else:
        otlp = GrpcSpanExporter(endpoint=endpoints.otlp_grpc, insecure=True)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(BatchSpanProcessor(RecordingExporter(otlp, run.export_results)))
    seen = 0

    def scenario(name: str) -> None:
        nonlocal seen
        finished = memory.get_finished_spans()
        run.scenarios[name] = trace_of(span_dicts(finished[seen:]))
        seen = len(finished)

    with _exporter_logs(run.exporter_logs):
        try:
            yield provider, scenario
        finally:
            provider.force_flush()
            provider.shutdown()
    run.spans = span_dicts(memory.get_finished_spans())


# --- a. LangChain + OpenInference ----------------------------------------------------------------

# 20 knowledge-base articles; the retriever's own score falls with position. The reranker keeps the 5
# with the highest relevance_score (topic words), the filter then drops the one that is superseded.
KB = [
    ("kb-returns-2019", "Returns (2019 policy): items may be returned within 14 days.", True),
    ("kb-returns-2024", "Returns: items may be returned within 30 days of delivery for a refund.", False),
    ("kb-refund-timing", "Refunds reach your card 5-10 days after the return is received.", False),
    ("kb-return-label", "Print a prepaid return label from your orders page.", False),
    ("kb-exchange", "Exchanges for another size are free within 30 days.", False),
    ("kb-shipping-eu", "Shipping to the EU takes 3-5 business days.", False),
    ("kb-shipping-us", "Shipping in the US takes 2-4 business days.", False),
    ("kb-gift-cards", "Gift cards cannot be returned.", False),
    ("kb-warranty", "Jackets carry a two-year warranty against defects.", False),
    ("kb-care-wool", "Wash wool jackets cold, lay flat to dry.", False),
    ("kb-sizing", "Our jackets run small; size up for layering.", False),
    ("kb-store-hours", "Stores open 9-21 on weekdays.", False),
    ("kb-loyalty", "Loyalty points expire after 12 months.", False),
    ("kb-price-match", "We match prices of authorised resellers.", False),
    ("kb-discounts", "Student discounts apply online only.", False),
    ("kb-damaged", "Report damaged items within 48 hours with a photo.", False),
    ("kb-preorder", "Pre-orders ship on the release date.", False),
    ("kb-payment", "We accept cards, PayPal and bank transfer.", False),
    ("kb-privacy", "We never sell your personal data.", False),
    ("kb-contact", "Chat with us 24/7 from the help page.", False),
]
TOP_N = 5
RELEVANT = {"kb-returns-2019": 0.97, "kb-returns-2024": 0.95, "kb-refund-timing": 0.81, "kb-return-label": 0.77,
            "kb-exchange": 0.64}


def kb_documents() -> list[dict[str, Any]]:
    """The retriever's 20 documents as the test expects to find them: id, source, score."""
    return [{"id": doc_id, "source": f"kb/{doc_id}.md", "score": round(0.9 - 0.02 * i, 2), "content": text,
             "superseded": superseded}
            for i, (doc_id, text, superseded) in enumerate(KB)]


def langchain_openinference(run: AppRun, endpoints: Endpoints) -> None:
    import openai
    from langchain_core.callbacks import CallbackManagerForRetrieverRun, Callbacks
    from langchain_core.documents import Document
    from langchain_core.documents.compressor import BaseDocumentCompressor
    from langchain_core.messages import HumanMessage
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from openinference.instrumentation.langchain import LangChainInstrumentor

    class KnowledgeBaseRetriever(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
            return [Document(page_content=d["content"],
                             metadata={"id": d["id"], "source": d["source"], "score": d["score"],
                                       "superseded": d["superseded"]})
                    for d in kb_documents()]

    class TopKReranker(BaseDocumentCompressor):
        top_n: int = TOP_N

        def compress_documents(self, documents: Sequence[Document], query: str,
                               callbacks: Callbacks | None = None) -> Sequence[Document]:
            scored = [Document(page_content=d.page_content,
                               metadata={**d.metadata, "relevance_score": RELEVANT.get(d.metadata["id"], 0.1)})
                      for d in documents]
            scored.sort(key=lambda d: -d.metadata["relevance_score"])
            return scored[: self.top_n]

    class ContextualCompressionRetriever(BaseRetriever):
        """As langchain_classic.retrievers.ContextualCompressionRetriever does it."""
        base_compressor: BaseDocumentCompressor
        base_retriever: BaseRetriever

        def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
            docs = self.base_retriever.invoke(query, config={"callbacks": run_manager.get_child()})
            return list(self.base_compressor.compress_documents(docs, query, callbacks=run_manager.get_child()))

    def keep_current_policies(docs: list[Document]) -> list[Document]:
        return [d for d in docs if not d.metadata.get("superseded")]

    def format_docs(docs: list[Document]) -> str:
        return "\n".join(f"[{d.metadata['id']}] {d.page_content}" for d in docs)

    @tool
    def lookup_order(order_id: str) -> str:
        """Look up an order's shipping status."""
        return f"Order {order_id}: shipped on Monday, arriving Thursday."

    instrumentor = LangChainInstrumentor()
    with pipeline(run, endpoints, "interop-langchain") as (provider, scenario):
        instrumentor.instrument(tracer_provider=provider)
        try:
            llm = ChatOpenAI(model=CHAT_MODEL, base_url=endpoints.openai, api_key="sk-interop", max_retries=0)
            retriever = ContextualCompressionRetriever(base_compressor=TopKReranker(),
                                                       base_retriever=KnowledgeBaseRetriever())
            prompt = ChatPromptTemplate.from_messages([
                ("system", "Answer from these articles only:\n{context}"), ("human", "{question}")])
            chain = ({"context": retriever | RunnableLambda(keep_current_policies) | RunnableLambda(format_docs),
                      "question": RunnablePassthrough()}
                     | prompt | llm | StrOutputParser()).with_config(run_name="support_rag")
            chain.invoke(QUESTION)
            scenario("rag")

            llm.invoke(QUESTION)  # a bare chat model call: the LLM span is the trace's root
            scenario("bare_chat")

            def support_agent(question: str) -> str:
                with_tools = llm.bind_tools([lookup_order])
                messages: list[Any] = [HumanMessage(question)]
                ai = with_tools.invoke(messages)
                messages.append(ai)
                for call in ai.tool_calls:
                    messages.append(lookup_order.invoke(call))
                return str(with_tools.invoke(messages).content)

            RunnableLambda(support_agent, name="support_agent").invoke("Where is my order A-1001?")
            scenario("tool")

            failing = ChatOpenAI(model=FAIL_MODEL, base_url=endpoints.openai, api_key="sk-interop", max_retries=0)
            failing_chain = (ChatPromptTemplate.from_messages([("human", "{question}")])
                             | failing).with_config(run_name="support_answer_failing")
            try:
                failing_chain.invoke({"question": QUESTION})
            except openai.BadRequestError as exc:
                run.app_errors["failing"] = str(exc)
            scenario("failing")
        finally:
            instrumentor.uninstrument()
    run.documents = kb_documents()


# --- b./c. openai + OpenInference or OpenLLMetry ----------------------------------------------------

def _openai_scenarios(run: AppRun, endpoints: Endpoints, scenario: Callable[[str], None]) -> None:
    import openai

    client = openai.OpenAI(base_url=endpoints.openai, api_key="sk-interop", max_retries=0)
    # The bare call: no span of the app's own around it.
    client.chat.completions.create(model=CHAT_MODEL, messages=[
        {"role": "system", "content": "You answer customer questions briefly."},
        {"role": "user", "content": QUESTION}])
    scenario("bare_chat")
    client.embeddings.create(model=EMBEDDING_MODEL, input=[QUESTION, "returns policy"])
    scenario("embeddings")
    try:
        client.chat.completions.create(model=FAIL_MODEL, messages=[{"role": "user", "content": QUESTION}])
    except openai.BadRequestError as exc:
        run.app_errors["failing"] = str(exc)
    scenario("failing")


def openai_openinference(run: AppRun, endpoints: Endpoints) -> None:
    from openinference.instrumentation.openai import OpenAIInstrumentor

    instrumentor = OpenAIInstrumentor()
    with pipeline(run, endpoints, "interop-openai-openinference") as (provider, scenario):
        instrumentor.instrument(tracer_provider=provider)
        try:
            _openai_scenarios(run, endpoints, scenario)
        finally:
            instrumentor.uninstrument()


def openai_openllmetry(run: AppRun, endpoints: Endpoints) -> None:
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    instrumentor = OpenAIInstrumentor()
    with pipeline(run, endpoints, "interop-openai-openllmetry") as (provider, scenario):
        instrumentor.instrument(tracer_provider=provider)
        try:
            _openai_scenarios(run, endpoints, scenario)
        finally:
            instrumentor.uninstrument()


IN_PROCESS = {
    "langchain": langchain_openinference,
    "openai-openinference": openai_openinference,
    "openai-openllmetry": openai_openllmetry,
}


def main(case: str, transport: str, otlp_http: str, otlp_grpc: str, openai_base_url: str, out: str) -> None:
    """One app in a process of its own, as a user runs it: instrumented once, so one case's patches
    (LangChain's callback handler, the openai wrappers) never meet another's."""
    import dataclasses
    import json

    run = AppRun(case, transport)
    IN_PROCESS[case](run, Endpoints(otlp_http, otlp_grpc, openai_base_url))
    with open(out, "w") as f:
        json.dump(dataclasses.asdict(run), f)


if __name__ == "__main__":
    import sys

    main(*sys.argv[1:7])
