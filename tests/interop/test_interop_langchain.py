"""LangChain + OpenInference: the retrieval funnel (a retriever of 20, a reranker keeping 5, a filter
keeping 4) and the documents by their own ids, over OTLP/HTTP and OTLP/gRPC."""

from __future__ import annotations

from typing import Any

import pytest

import checks
import harness
from apps import AppRun


@pytest.fixture(params=harness.TRANSPORTS)
def app(request: pytest.FixtureRequest, receiver: Any) -> AppRun:
    return harness.run_case("langchain", request.param, receiver)


def report(problems: list[str]) -> str:
    return f"{len(problems)} problem(s):\n  " + "\n  ".join(problems)


def test_funnel_reads_20_5_4_with_the_reranker_as_biggest_drop(app: AppRun, receiver: Any) -> None:
    problems = checks.langchain_funnel(app, receiver.url)
    assert not problems, report(problems)


def test_every_document_is_found_by_its_id_with_its_score(app: AppRun, receiver: Any) -> None:
    problems = checks.documents_by_real_id(app, receiver.url)
    assert not problems, report(problems)
