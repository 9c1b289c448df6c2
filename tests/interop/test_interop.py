"""Issue 19's "Done when", per library and transport, through the REST API: real instrumentation
libraries (the `interop` extra; traceloop-sdk in a venv of its own) run against a fake OpenAI API, export
to the session's receiver over OTLP/HTTP and OTLP/gRPC, and what the receiver shows is compared with the
spans the app produced and the calls the API served.

Each test lists every problem it finds for its case, with the values seen. Run:

    pytest tests/interop -p no:cacheprovider
"""

from __future__ import annotations

from typing import Any

import pytest

import checks
import harness
from apps import AppRun

CASES = [(case, transport) for case in harness.CASES for transport in harness.TRANSPORTS]
IDS = [f"{case}-{transport}" for case, transport in CASES]


@pytest.fixture(params=CASES, ids=IDS)
def app(request: pytest.FixtureRequest, receiver: Any) -> AppRun:
    case, transport = request.param
    return harness.run_case(case, transport, receiver)


def report(problems: list[str]) -> str:
    return f"{len(problems)} problem(s):\n  " + "\n  ".join(problems)


def test_every_span_becomes_a_step_of_the_expected_type(app: AppRun, receiver: Any) -> None:
    problems = checks.every_span_is_a_step(app, receiver.url)
    assert not problems, report(problems)


def test_model_tokens_and_cost_match_the_api_calls(app: AppRun, receiver: Any) -> None:
    problems = checks.model_tokens_cost(app, receiver.url, harness.env(receiver).fake)
    assert not problems, report(problems)


def test_a_bare_call_run_shows_its_call(app: AppRun, receiver: Any) -> None:
    problems = checks.bare_call_run(app, receiver.url, harness.env(receiver).fake)
    assert not problems, report(problems)


def test_a_failed_call_is_short_and_names_its_model(app: AppRun, receiver: Any) -> None:
    problems = checks.failed_call(app, receiver.url)
    assert not problems, report(problems)


def test_llm_step_inputs_are_the_messages(app: AppRun, receiver: Any) -> None:
    problems = checks.llm_inputs_are_messages(app, receiver.url)
    assert not problems, report(problems)


def test_no_request_the_library_sends_gets_an_error(app: AppRun) -> None:
    problems = checks.no_request_gets_an_error(app)
    assert not problems, report(problems)


def test_each_scenario_is_one_trace_and_the_app_failed_only_where_meant(app: AppRun) -> None:
    """The harness itself: every scenario made its trace, and only the failing call raised."""
    assert set(app.app_errors) == {"failing"}, app.app_errors
    assert len(set(app.scenarios.values())) == len(app.scenarios), app.scenarios
    assert {s["trace_id"] for s in app.spans} == set(app.scenarios.values())
