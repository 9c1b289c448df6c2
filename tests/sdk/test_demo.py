"""The example pipeline's recorded funnel, and the demo's table, without a receiver."""

from __future__ import annotations

import json

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from demo_funnel import EXPECTED_FUNNEL, SELECTED
from xray_otel import configure
from xray_otel import conventions as c
from xray_otel.demo import run as demo
from xray_otel.demo.competitor_selection import STEP_NAMES, run_pipeline



def test_the_pipeline_records_its_funnel_step_by_step():
    exporter, provider = InMemorySpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    configure(tracer_provider=provider)
    run_id, best = run_pipeline()
    assert best.asin == SELECTED
    spans = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time)
    run, steps = spans[0], spans[1:]
    assert run.attributes[c.KIND] == c.KIND_RUN and run_id.replace("-", "") == f"{run.context.trace_id:032x}"
    got = [
        (s.name, s.attributes[c.STEP_TYPE], s.attributes.get(c.STEP_INPUT_COUNT), s.attributes.get(c.STEP_OUTPUT_COUNT),
         json.loads(s.attributes.get(c.STEP_REJECTIONS, "{}")))
        for s in steps
    ]
    assert got == EXPECTED_FUNNEL
    assert tuple(s.name for s in steps) == STEP_NAMES
    assert json.loads(run.attributes[c.RUN_OUTPUTS])["selected"] == SELECTED


def test_the_funnel_table_is_aligned_and_names_the_reasons():
    analysis = {
        "run": {"id": "r1", "name": "competitor_selection", "status": "COMPLETED", "duration_ms": 52.4},
        "funnel": [
            {"name": "retrieve", "type": "retrieval", "depth": 0, "input_count": None, "output_count": 5000,
             "dropped": None, "drop_rate": None, "rejections": {}},
            {"name": "price", "type": "filter", "depth": 1, "input_count": 5000, "output_count": 1731,
             "dropped": 3269, "drop_rate": 0.6538, "rejections": {"too_low": 661, "too_high": 2608}},
        ],
        "summary": {"total_cost": 0.0019, "biggest_drop": {"step": "price", "dropped": 3269, "drop_rate": 0.6538}},
        "final_outputs": {"selected": "B01"},
    }
    lines = demo.format_funnel(analysis).splitlines()
    assert lines[0] == "Run r1  competitor_selection  COMPLETED  52 ms  cost $0.001900"
    header, retrieve, price = lines[2:5]
    assert header.index("out") + len("out") == retrieve.index("5,000") + len("5,000") == price.index("1,731") + 5
    assert price.startswith("  price") and price.endswith("65.4%  too_high 2608, too_low 661")
    assert lines[-2:] == ["Biggest drop: price (-3269, 65.4%)", 'Final outputs: {"selected": "B01"}']


def test_without_a_receiver_and_told_not_to_start_one_the_demo_says_so(capsys):
    assert demo.main("http://127.0.0.1:9", start_server=False) == 1
    assert "No xray-otel receiver answers at http://127.0.0.1:9" in capsys.readouterr().err
