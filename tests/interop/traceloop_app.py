"""The traceloop-sdk app, run by tests/interop in a venv of its own (traceloop_env.py):

    python traceloop_app.py API_ENDPOINT OPENAI_BASE_URL OUT.json

``Traceloop.init(api_endpoint=...)`` exactly as its docs show, metrics on as by default (spans,
metrics and, if enabled, logs all go to API_ENDPOINT: ``http://…`` for OTLP/HTTP, ``grpc://host:port``
for OTLP/gRPC). An in-memory exporter is added to the provider traceloop sets up, for the ground
truth. Writes {"scenarios", "spans", "exporter_logs", "app_errors"} to OUT.json.
"""

from __future__ import annotations

import json
import logging
import sys

FAIL_MODEL = "gpt-4o-fail"  # fakes.FAIL_MODEL (this script imports nothing of the project's)
CHAT_MODEL = "gpt-4o-mini"
EMBEDDING_MODEL = "text-embedding-3-small"
QUESTION = "Can I return a jacket I bought three weeks ago?"


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}"[:500])


def main(api_endpoint: str, openai_base_url: str, out: str) -> None:
    collect = Collect()
    logging.getLogger("opentelemetry").addHandler(collect)

    import openai
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from traceloop.sdk import Traceloop
    from traceloop.sdk.decorators import task, workflow

    from spans_json import span_dicts, trace_of

    Traceloop.init(app_name="interop-traceloop", api_endpoint=api_endpoint)
    memory = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    provider.add_span_processor(SimpleSpanProcessor(memory))  # type: ignore[attr-defined]

    client = openai.OpenAI(base_url=openai_base_url, api_key="sk-interop", max_retries=0)
    scenarios: dict[str, str] = {}
    errors: dict[str, str] = {}
    seen = 0

    def scenario(name: str) -> None:
        nonlocal seen
        finished = memory.get_finished_spans()
        scenarios[name] = trace_of(span_dicts(finished[seen:]))
        seen = len(finished)

    @task(name="retrieve_context")
    def retrieve_context(question: str) -> list[str]:
        return ["kb-returns-2024", "kb-refund-timing", "kb-return-label"]

    @task(name="embed_question")
    def embed_question(question: str) -> list[float]:
        return client.embeddings.create(model=EMBEDDING_MODEL, input=question).data[0].embedding

    @task(name="draft_answer")
    def draft_answer(question: str, context: list[str], model: str = CHAT_MODEL) -> str:
        reply = client.chat.completions.create(model=model, messages=[
            {"role": "system", "content": "Answer from these articles: " + ", ".join(context)},
            {"role": "user", "content": question}])
        return reply.choices[0].message.content or ""

    @workflow(name="support_answer")
    def support_answer(question: str) -> str:
        embed_question(question)
        return draft_answer(question, retrieve_context(question))

    @workflow(name="support_answer_failing")
    def support_answer_failing(question: str) -> str:
        return draft_answer(question, retrieve_context(question), model=FAIL_MODEL)

    support_answer(QUESTION)
    scenario("workflow")
    client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": QUESTION}])
    scenario("bare_chat")
    try:
        support_answer_failing(QUESTION)
    except openai.BadRequestError as exc:
        errors["failing"] = str(exc)
    scenario("failing")

    provider.force_flush()  # type: ignore[attr-defined]
    meter_provider = metrics.get_meter_provider()
    if hasattr(meter_provider, "force_flush"):
        meter_provider.force_flush()  # what the periodic reader sends every minute, sent now
    provider.shutdown()  # type: ignore[attr-defined]
    if hasattr(meter_provider, "shutdown"):
        meter_provider.shutdown()
    with open(out, "w") as f:
        json.dump({"scenarios": scenarios, "spans": span_dicts(memory.get_finished_spans()),
                   "exporter_logs": collect.lines, "app_errors": errors}, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])
