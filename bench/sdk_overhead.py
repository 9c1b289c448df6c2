"""What the SDK adds, measured side by side in one process (not a test).

    python bench/sdk_overhead.py

Same TracerProvider for both sides, with an exporter that drops everything, so only the
instrumentation is measured. Targets: < 50 µs added per step, < 1 µs per candidate in
summary mode, < 2 µs in sampled mode. Each figure is the best of several repeats, which is
the least disturbed by other load on the machine.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from xray_otel import configure, process_candidates, start_run, step

CANDIDATES = 5_000
REPEATS = 7


class DropExporter(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS


@dataclass(frozen=True)
class Candidate:
    asin: str
    price: float


def price_filter(c: Candidate) -> tuple[bool, str]:
    return c.price <= 30.0, "price_too_high"


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
    provider.add_span_processor(SimpleSpanProcessor(DropExporter()))
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

    with start_run("bench"):
        span_us = best_us(bare_span, 2_000)
        step_us = best_us(xray_step, 2_000)
        data_us = best_us(xray_step_with_data, 2_000)
        loop_us = best_us(lambda: bare_filter(items), 20)
        modes = {mode: best_us(lambda m=mode: process_candidates(items, price_filter, step_name="f", capture=m,
                                                                 id_fn=lambda c: c.asin), 20)
                 for mode in ("summary", "sampled", "full")}

    print(f"per step        bare OTel span {span_us:7.1f} µs   xray step {step_us:7.1f} µs   "
          f"added {step_us - span_us:6.1f} µs (x{step_us / span_us:.2f})   target < 50 µs added")
    print(f"                xray step with inputs, outputs, record_llm: {data_us:7.1f} µs "
          f"(added {data_us - span_us:6.1f} µs)")
    print(f"per candidate   bare loop {loop_us / CANDIDATES:.3f} µs  ({CANDIDATES:,} -> 30 in {loop_us:,.0f} µs)")
    for mode, total in modes.items():
        added = (total - loop_us) / CANDIDATES
        target = {"summary": "target < 1 µs", "sampled": "target < 2 µs", "full": "no target"}[mode]
        print(f"  {mode:8}      {total / CANDIDATES:.3f} µs   added {added:.3f} µs per candidate "
              f"(x{total / loop_us:.2f} the bare loop)   {target}")


if __name__ == "__main__":
    main()
