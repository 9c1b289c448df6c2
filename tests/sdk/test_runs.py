"""start_run / step: span shape, nesting across tasks and threads, decorators, failures, cost."""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry import context, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from xray_otel import configure, start_run, step
from xray_otel import conventions as c
from xray_otel.sdk import current_step


@pytest.fixture
def provider() -> TracerProvider:
    """An injected provider: the process-wide one (settable only once) stays untouched."""
    provider = TracerProvider()
    configure(tracer_provider=provider)
    return provider


@pytest.fixture
def spans(provider: TracerProvider) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {s.name: s for s in exporter.get_finished_spans()}


def test_run_span_carries_kind_tags_inputs_outputs_and_its_id_is_the_trace_id(spans):
    with start_run("pipeline", tags={"product_id": "P123", "version": 1.4}, inputs={"title": "Bottle"}) as run:
        run.set_outputs({"selected": "B01"})
        run.set_tag("env", "test")
    (span,) = spans.get_finished_spans()
    assert span.name == "pipeline" and span.parent is None
    assert dict(span.attributes) == {
        c.KIND: c.KIND_RUN,
        c.TAG_PREFIX + "product_id": "P123",
        c.TAG_PREFIX + "version": "1.4",
        c.TAG_PREFIX + "env": "test",
        c.RUN_INPUTS: '{"title":"Bottle"}',
        c.RUN_OUTPUTS: '{"selected":"B01"}',
    }
    assert run.run_id == str(uuid.UUID(int=span.context.trace_id))
    assert span.status.status_code is StatusCode.UNSET


def test_step_attributes_and_payload_forms(spans):
    with start_run("r"):
        with step("keywords", step_type="LLM", inputs={"title": "t"}, metadata={"temperature": 0}) as s:
            s.set_outputs(count=3)
            s.set_reasoning("because")
        with step("merge") as s2:
            s2.set_outputs({"a": 1}, b=2)
            s2.set_inputs([1, 2], note="x")
    got = by_name(spans)
    assert dict(got["keywords"].attributes) == {
        c.KIND: c.KIND_STEP,
        c.STEP_TYPE: "llm",
        c.STEP_INPUTS: '{"title":"t"}',
        c.STEP_METADATA: '{"temperature":0}',
        c.STEP_OUTPUTS: '{"count":3}',
        c.STEP_REASONING: "because",
    }
    assert got["merge"].attributes[c.STEP_TYPE] == c.DEFAULT_STEP_TYPE
    assert got["merge"].attributes[c.STEP_OUTPUTS] == '{"a":1,"b":2}'
    assert got["merge"].attributes[c.STEP_INPUTS] == '{"value":[1,2],"note":"x"}'


def test_steps_nest_inside_their_run_and_each_other(spans):
    with start_run("r"):
        with step("outer"):
            with step("inner"):
                pass
        with step("sibling"):
            pass
    got = by_name(spans)
    run = got["r"]
    assert {s.context.trace_id for s in got.values()} == {run.context.trace_id}
    assert got["outer"].parent.span_id == run.context.span_id
    assert got["inner"].parent.span_id == got["outer"].context.span_id
    assert got["sibling"].parent.span_id == run.context.span_id


def test_a_run_starts_a_new_trace_linked_to_the_callers_span(provider, spans):
    outer = provider.get_tracer("app").start_span("http request")
    with trace.use_span(outer, end_on_exit=True):
        with start_run("r"):
            pass
    run = by_name(spans)["r"]
    assert run.parent is None
    assert run.context.trace_id != outer.get_span_context().trace_id
    assert [link.context for link in run.links] == [outer.get_span_context()]


def test_concurrent_asyncio_tasks_get_their_own_step_under_the_parent(spans):
    async def fetch(i: int) -> int:
        with step(f"fetch-{i}", step_type="retrieval"):
            await asyncio.sleep(0.01)
            with step(f"parse-{i}"):
                await asyncio.sleep(0)
        return i

    async def pipeline() -> list[int]:
        with start_run("r"):
            with step("fan-out"):
                return await asyncio.gather(*(fetch(i) for i in range(3)))

    assert asyncio.run(pipeline()) == [0, 1, 2]
    got = by_name(spans)
    for i in range(3):
        assert got[f"fetch-{i}"].parent.span_id == got["fan-out"].context.span_id
        assert got[f"parse-{i}"].parent.span_id == got[f"fetch-{i}"].context.span_id


def test_threads_join_the_run_when_handed_the_context(spans):
    def work(name: str) -> None:
        with step(name):
            pass

    def with_otel_context(ctx: context.Context) -> None:
        token = context.attach(ctx)
        try:
            work("otel-context")
        finally:
            context.detach(token)

    with start_run("r"):
        with step("parent"):
            with ThreadPoolExecutor(2) as pool:
                pool.submit(contextvars.copy_context().run, work, "copied-context").result()
            thread = threading.Thread(target=with_otel_context, args=(context.get_current(),))
            thread.start()
            thread.join()
            bare = threading.Thread(target=work, args=("no-context",))  # not handed the context
            bare.start()
            bare.join()
    got = by_name(spans)
    assert got["copied-context"].parent.span_id == got["parent"].context.span_id
    assert got["otel-context"].parent.span_id == got["parent"].context.span_id
    assert "no-context" not in got


def test_decorator_records_arguments_and_result_when_asked(spans):
    class Ranker:
        @step("score", step_type="rank", record_args=True, record_result=True)
        def score(self, items: list[int], boost: int = 1) -> int:
            return sum(items) + boost

    @step(step_type="logic")
    def quiet(x: int) -> int:
        return x * 2

    @step
    def bare(x: int) -> int:
        return x + 1

    with start_run("r"):
        assert Ranker().score([1, 2]) == 4
        assert quiet(5) == 10
        assert bare(1) == 2
    got = by_name(spans)
    assert json.loads(got["score"].attributes[c.STEP_INPUTS]) == {"items": [1, 2], "boost": 1}
    assert got["score"].attributes[c.STEP_OUTPUTS] == "4"
    quiet_span = got[quiet.__qualname__]
    assert c.STEP_INPUTS not in quiet_span.attributes and c.STEP_OUTPUTS not in quiet_span.attributes
    assert bare.__qualname__ in got


def test_async_decorator_is_one_step_per_call(spans):
    @step("llm_call", step_type="llm", record_result=True)
    async def call(prompt: str) -> str:
        current_step().record_llm(model="gpt-4o", input_tokens=10, output_tokens=2)
        await asyncio.sleep(0)
        return prompt.upper()

    async def pipeline() -> list[str]:
        with start_run("r"):
            return list(await asyncio.gather(call("a"), call("b")))

    assert asyncio.run(pipeline()) == ["A", "B"]
    calls = [s for s in spans.get_finished_spans() if s.name == "llm_call"]
    assert sorted(s.attributes[c.STEP_OUTPUTS] for s in calls) == ['"A"', '"B"']
    assert all(s.attributes[c.GEN_AI_INPUT_TOKENS] == 10 for s in calls)


def test_a_failing_step_fails_itself_and_the_run_and_the_error_propagates(spans):
    with pytest.raises(KeyError):
        with start_run("r"):
            with step("ok"):
                pass
            with step("lookup"):
                {}["missing"]
    got = by_name(spans)
    failed = got["lookup"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "KeyError: 'missing'"
    assert [e.name for e in failed.events] == ["exception"]
    assert got["r"].status.status_code is StatusCode.ERROR
    assert got["r"].status.description == "step 'lookup' failed: KeyError: 'missing'"
    assert got["ok"].status.status_code is StatusCode.UNSET


def test_an_error_handled_inside_the_step_fails_nothing(spans):
    with start_run("r"):
        with step("retrying") as s:
            try:
                raise TimeoutError("first attempt")
            except TimeoutError:
                s.set_metadata(attempts=2)
    assert all(sp.status.status_code is StatusCode.UNSET for sp in spans.get_finished_spans())


def test_a_run_failing_outside_any_step_records_the_error(spans):
    with pytest.raises(RuntimeError):
        with start_run("r"):
            raise RuntimeError("no candidates")
    (run,) = spans.get_finished_spans()
    assert run.status.description == "RuntimeError: no candidates"
    assert [e.name for e in run.events] == ["exception"]


def test_cost_from_the_price_table_accumulates_over_calls(spans):
    with start_run("r"):
        with step("two_calls", step_type="llm") as s:
            s.record_llm(model="gpt-4o", input_tokens=1_000_000, output_tokens=0)
            s.record_llm(model="gpt-4o-2024-08-06", input_tokens=0, output_tokens=100_000)
    attrs = by_name(spans)["two_calls"].attributes
    assert attrs[c.STEP_COST] == pytest.approx(2.50 + 1.00)
    assert attrs[c.STEP_COST_SOURCE] == "price_table"
    assert attrs[c.GEN_AI_REQUEST_MODEL] == "gpt-4o-2024-08-06"
    assert (attrs[c.GEN_AI_INPUT_TOKENS], attrs[c.GEN_AI_OUTPUT_TOKENS]) == (1_000_000, 100_000)


def test_explicit_cost_wins_and_an_unknown_model_costs_nothing_but_is_warned_once(provider, spans, caplog):
    configure(tracer_provider=provider, prices={"house-model": (1.0, 2.0)})
    with start_run("r"):
        with step("explicit") as s:
            s.record_llm(model="gpt-4o", input_tokens=10, output_tokens=10, cost=0.5)
        with step("override") as s:
            s.record_llm(model="gpt-4o", input_tokens=10, output_tokens=10)
            s.set_cost(0.25)
        with step("custom_price") as s:
            s.record_llm(model="house-model", input_tokens=1_000_000, output_tokens=1_000_000)
        with step("unknown") as s:
            s.record_llm(model="mystery-1", input_tokens=5, output_tokens=5)
            s.record_llm(model="mystery-1", input_tokens=5, output_tokens=5)
    got = {n: (s.attributes.get(c.STEP_COST), s.attributes.get(c.STEP_COST_SOURCE)) for n, s in by_name(spans).items()}
    assert got["explicit"] == (0.5, "explicit")
    assert got["override"] == (0.25, "explicit")
    assert got["custom_price"] == (pytest.approx(3.0), "price_table")
    assert got["unknown"] == (None, None)
    assert by_name(spans)["unknown"].attributes[c.GEN_AI_INPUT_TOKENS] == 10
    assert sum("mystery-1" in r.getMessage() for r in caplog.records) == 1


def test_outside_a_run_steps_record_nothing_and_still_run_the_code(spans):
    @step("decorated", record_args=True, record_result=True)
    def double(x: int) -> int:
        return 2 * x

    with step("loose") as s:
        s.set_outputs(x=1)
        s.record_llm(model="gpt-4o", input_tokens=1, output_tokens=1)
        assert not s.recording
        assert current_step() is None
    assert double(4) == 8
    with pytest.raises(ValueError):
        with step("failing"):
            raise ValueError("still raised")
    assert spans.get_finished_spans() == ()


def test_bad_values_never_reach_the_application(spans, caplog):
    with start_run("r", tags={"k": object()}):
        with step("s") as s:
            s.set_cost("not a number")  # logged, not raised
            s.set_counts(input_count="many")
            s.set_outputs({1, "mixed", (2, 3)})
    assert "set_cost failed" in caplog.text and "set_counts failed" in caplog.text
    assert len(json.loads(by_name(spans)["s"].attributes[c.STEP_OUTPUTS])) == 3


def test_a_with_step_needs_a_name():
    with pytest.raises(ValueError, match="needs a name"):
        with step():
            pass
