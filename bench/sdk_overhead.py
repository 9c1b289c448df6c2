"""What the SDK adds, measured side by side in one process (not a test).

    python bench/sdk_overhead.py

Same TracerProvider for both sides, with an exporter that drops everything, so only the
instrumentation is measured. Targets: < 50 µs added per step, < 1 µs per candidate in
summary mode; the default (every candidate's outcome, exact, plus the decisions sample) at
most 0.5 µs per candidate more than summary (issue 18). Each figure is the best of several
repeats, which is the least disturbed by other load on the machine.

Also printed, for information: the default without the SDK's direct array store (what OTel's
per-item attribute check would cost), and the OTLP encoding of the outcomes, which the batch
exporter's thread does later, off the application's path.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from xray_otel import configure, process_candidates, start_run, step
from xray_otel.sdk import outcomes

CANDIDATES = 5_000
REPEATS = 7


class DropExporter(SpanExporter):
    def __init__(self) -> None:
        self.last = None

    def export(self, spans):
        self.last = spans[-1]
        return SpanExportResult.SUCCESS


@dataclass(frozen=True)
class Candidate:
    asin: str
    price: float


def price_filter(c: Candidate) -> tuple[bool, str]:
    return c.price <= 30.0, "price_too_high"


def price_filter_with_value(c: Candidate) -> tuple[bool, str, float]:
    """The same filter reporting the price it compared: the sample adds the decision boundary."""
    return c.price <= 30.0, "price_too_high", c.price


def best_us(fn: Callable[[], object], number: int) -> float:
    """Best-of-REPEATS time of one call of ``fn``, in microseconds."""
    return min(timeit.repeat(fn, number=number, repeat=REPEATS)) / number * 1e6


def bare_filter(items: list[Candidate]) -> list[Candidate]:
    survivors = []
    for c in items:
        keep, _reason = price_filter(c)
        if keep:
            survivors.append(c)
    return survivors


def main() -> None:
    provider = TracerProvider()
    dropped = DropExporter()
    provider.add_span_processor(SimpleSpanProcessor(dropped))
    configure(tracer_provider=provider)
    tracer = provider.get_tracer("bench")
    items = [Candidate(f"B{i:08d}", 30.0 + (i % 5000) * 0.01 if i >= 30 else 9.99) for i in range(CANDIDATES)]
    assert len(bare_filter(items)) == 30

    def bare_span() -> None:
        with tracer.start_as_current_span("s"):
            pass

    def xray_step() -> None:
        with step("s"):
            pass

    def xray_step_with_data() -> None:
        with step("s", step_type="llm", inputs={"title": "Steel bottle 32oz"}) as s:
            s.set_outputs(keywords=["steel bottle", "vacuum flask"])
            s.record_llm(model="gpt-4o-mini", input_tokens=812, output_tokens=40)

    def candidates(mode: str | None, fn: Callable[[Candidate], object] = price_filter) -> Callable[[], object]:
        kwargs = {} if mode is None else {"capture": mode}
        return lambda: process_candidates(items, fn, step_name="f", id_fn=lambda c: c.asin, **kwargs)

    def side_by_side(runs: dict[str, Callable[[], object]], number: int = 20) -> dict[str, float]:
        """Best time of each, the repeats taken in turn so that drifting load hits all alike."""
        best = dict.fromkeys(runs, float("inf"))
        for _ in range(REPEATS * 2):
            for name, fn in runs.items():
                best[name] = min(best[name], timeit.timeit(fn, number=number) / number * 1e6)
        return best

    with start_run("bench"):
        span_us = best_us(bare_span, 2_000)
        step_us = best_us(xray_step, 2_000)
        data_us = best_us(xray_step_with_data, 2_000)
        loop_us = best_us(lambda: bare_filter(items), 20)
        modes = side_by_side({"summary": candidates("summary"), "default": candidates(None),
                              "full": candidates("full"),
                              "valued summary": candidates("summary", price_filter_with_value),
                              "valued default": candidates(None, price_filter_with_value)})
        real_fast_path = outcomes._sdk_attributes
        outcomes._sdk_attributes = lambda span: None  # every array through span.set_attributes()
        try:
            slow_us = best_us(candidates(None), 20)
        finally:
            outcomes._sdk_attributes = real_fast_path
        candidates(None)()
        step_span = dropped.last
        encode_us = best_us(lambda: encode_spans([step_span]).SerializeToString(), 5)

    print(f"per step        bare OTel span {span_us:7.1f} µs   xray step {step_us:7.1f} µs   "
          f"added {step_us - span_us:6.1f} µs (x{step_us / span_us:.2f})   target < 50 µs added")
    print(f"                xray step with inputs, outputs, record_llm: {data_us:7.1f} µs "
          f"(added {data_us - span_us:6.1f} µs)")
    print(f"per candidate   bare loop {loop_us / CANDIDATES:.3f} µs  ({CANDIDATES:,} -> 30 in {loop_us:,.0f} µs)")
    print(f"  process_candidates, {CANDIDATES:,} candidates, µs per candidate:")
    print(f"  {'capture':26} {'total':>7} {'over bare loop':>15} {'over summary':>13}")
    what = {"summary": "summary (counts only)", "default": "default (outcomes+sample)", "full": "full (outcomes+all)",
            "valued summary": "summary, filter gives value", "valued default": "default, + boundary"}
    for mode, total in modes.items():
        base = modes["valued summary" if mode.startswith("valued") else "summary"]
        print(f"  {what[mode]:26} {total / CANDIDATES:7.3f} {(total - loop_us) / CANDIDATES:15.3f} "
              f"{(total - base) / CANDIDATES:13.3f}")
    for name, default, summary in (("", "default", "summary"), (" (value)", "valued default", "valued summary")):
        added = (modes[default] - modes[summary]) / CANDIDATES
        print(f"  default - summary{name} = {added:.3f} µs per candidate   target <= 0.5 µs   "
              f"{'OK' if added <= 0.5 else 'MISSED'}")
    print(f"  for information: default with OTel's per-item attribute check {slow_us / CANDIDATES:.3f} µs "
          f"({(slow_us - modes['summary']) / CANDIDATES:.3f} over summary); OTLP encoding of the step span "
          f"on the export thread {encode_us / CANDIDATES:.3f} µs")


if __name__ == "__main__":
    main()
