"""What a user of each library expects to see, as checks that list every problem they find (so one
failing test reports all of a case's wrong answers, with the values seen), against the ground truth:
the app's own spans (in-memory exporter) and the fake OpenAI API's log of what it served.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from apps import AppRun
from fakes import FAIL_MESSAGE, FAIL_MODEL, FakeOpenAI, Served
from helpers import call, get_json
from xray_otel import pricing

# The step type a user expects for each span the apps produce, by span name. A span not listed is a
# problem too: the library now sends something this harness has not judged.
EXPECTED_TYPES: dict[str, dict[str, set[str]]] = {
    "langchain": {
        "support_rag": {"logic"}, "support_agent": {"logic"}, "support_answer_failing": {"logic"},
        "RunnableParallel<context,question>": {"logic"}, "RunnableSequence": {"logic"},
        "RunnablePassthrough": {"logic"}, "ChatPromptTemplate": {"logic"}, "StrOutputParser": {"logic"},
        "format_docs": {"logic"},
        "KnowledgeBaseRetriever": {"retrieval"},
        # A retriever that wraps a retriever and keeps the top 5 of its 20: a reranker, whichever word.
        "ContextualCompressionRetriever": {"rank", "retrieval"},
        # Documents in, fewer documents out.
        "keep_current_policies": {"filter"},
        "ChatOpenAI": {"llm"},
        "lookup_order": {"tool"},
    },
    "openai-openinference": {"ChatCompletion": {"llm"}, "CreateEmbeddings": {"embedding"}},
    "openai-openllmetry": {"openai.chat": {"llm"}, "openai.embeddings": {"embedding"}},
    "traceloop": {"support_answer.workflow": {"logic"}, "support_answer_failing.workflow": {"logic"},
                  "retrieve_context.task": {"logic"}, "embed_question.task": {"logic"},
                  "draft_answer.task": {"logic"}, "openai.chat": {"llm"}, "openai.embeddings": {"embedding"}},
}
# A root span of one of these types is the call itself (a bare call): it is the run and also its step.
WORK = {"llm", "embedding", "tool", "retrieval", "rank"}
# OpenAI's list prices (USD per million input tokens) for the embedding models the apps call: the
# receiver's price table should know them (issue 19, item 7).
EMBEDDING_PRICES = {"text-embedding-3-small": 0.02}
MAX_ERROR_CHARS = 300


def close(a: Any, b: float) -> bool:
    return isinstance(a, (int, float)) and abs(a - b) <= max(abs(b) * 1e-9, 1e-15)


def expected_type(case: str, span: dict[str, Any]) -> set[str] | None:
    return EXPECTED_TYPES[case].get(span["name"])


def expected_steps(run: AppRun, scenario: str) -> dict[str, tuple[dict[str, Any], set[str] | None]]:
    """span id -> (span, expected types) for every span of the scenario that should be a step."""
    out = {}
    for span in run.spans_of(scenario):
        types = expected_type(run.case, span)
        if span["parent_id"] is None and not (types and types & WORK):
            continue  # the run span
        out[span["span_id"]] = (span, types)
    return out


def steps_of(url: str, trace: str) -> list[dict[str, Any]]:
    return get_json(f"{url}/runs/{trace}/steps")


def run_of(url: str, trace: str) -> dict[str, Any]:
    return get_json(f"{url}/runs/{trace}")


def served_in(fake: FakeOpenAI, span: dict[str, Any]) -> list[Served]:
    return fake.served_between(span["start"], span["end"])


def expected_cost(served: Served) -> float | None:
    if served.status != 200:
        return 0.0
    if served.kind == "embedding":
        price = EMBEDDING_PRICES.get(served.request_model or "")
        return None if price is None else (served.input_tokens or 0) * price / 1_000_000
    return pricing.cost_of(served.response_model, served.input_tokens, served.output_tokens)


# --- the checks -------------------------------------------------------------------------------------

def every_span_is_a_step(run: AppRun, url: str) -> list[str]:
    problems = []
    for scenario, trace in run.scenarios.items():
        want = expected_steps(run, scenario)
        got = {s["id"]: s for s in steps_of(url, trace)}
        stored = run_of(url, trace)
        for span_id, (span, types) in want.items():
            step = got.get(span_id)
            if types is None:
                problems.append(f"{scenario}: span {span['name']!r} is new to this harness (judge its type)")
            if step is None:
                problems.append(f"{scenario}: span {span['name']!r} ({span_id}) is not among /runs/{{id}}/steps")
            elif types and step["type"] not in types:
                problems.append(f"{scenario}: {span['name']!r} is type {step['type']!r}, expected {'/'.join(sorted(types))}")
        for step_id, step in got.items():
            if step_id not in want:
                problems.append(f"{scenario}: step {step['name']!r} ({step_id}) is not a span the app sent as a step")
        n_spans = len(run.spans_of(scenario))
        if stored["step_count"] != len(want):
            problems.append(f"{scenario}: run step_count {stored['step_count']}, expected {len(want)} "
                            f"({n_spans} spans{', root is the call itself' if len(want) == n_spans else ' = steps + run span'})")
        if len(got) != len(want):
            problems.append(f"{scenario}: /runs/{{id}}/steps lists {len(got)} steps, expected {len(want)}")
    return problems


def model_tokens_cost(run: AppRun, url: str, fake: FakeOpenAI) -> list[str]:
    """Every successful LLM or embedding call: its step has the model, the tokens the API reported and
    the cost they price to; each run's total_cost is the sum."""
    problems = []
    for scenario, trace in run.scenarios.items():
        got = {s["id"]: s for s in steps_of(url, trace)}
        total = 0.0
        for span_id, (span, types) in expected_steps(run, scenario).items():
            if not types or not types & {"llm", "embedding"}:
                continue
            served = served_in(fake, span)
            if len(served) != 1:
                problems.append(f"{scenario}: {span['name']!r} span saw {len(served)} API calls, expected 1")
                continue
            call_ = served[0]
            cost = expected_cost(call_)
            total += cost or 0.0
            if call_.status != 200:
                continue  # failed_call checks those
            step = got.get(span_id)
            if step is None:
                problems.append(f"{scenario}: {span['name']!r} has no step (model {call_.response_model}, "
                                f"{call_.input_tokens}+{call_.output_tokens} tokens lost)")
                continue
            label = f"{scenario}: {span['name']!r}"
            if step["model"] not in (call_.request_model, call_.response_model):
                problems.append(f"{label} model {step['model']!r}, expected {call_.response_model!r}")
            if step["input_tokens"] != call_.input_tokens:
                problems.append(f"{label} input_tokens {step['input_tokens']!r}, expected {call_.input_tokens}")
            if step["output_tokens"] not in ((call_.output_tokens,) if call_.output_tokens else (None, 0)):
                problems.append(f"{label} output_tokens {step['output_tokens']!r}, expected {call_.output_tokens}")
            if cost is None:
                problems.append(f"{label}: no price known to the harness for {call_.response_model!r}")
            elif not close(step["cost"], cost) or step["cost_source"] != "price_table":
                problems.append(f"{label} cost {step['cost']!r} ({step['cost_source']}), expected {cost:.10g} (price_table)")
        stored = run_of(url, trace)
        if not close(stored["total_cost"], total):
            problems.append(f"{scenario}: run total_cost {stored['total_cost']!r}, expected {total:.10g}")
    return problems


def bare_call_run(run: AppRun, url: str, fake: FakeOpenAI) -> list[str]:
    """A chat call with no span of the app's own around it: its run shows the call."""
    problems = []
    trace = run.scenarios["bare_chat"]
    spans = run.spans_of("bare_chat")
    stored = run_of(url, trace)
    steps = steps_of(url, trace)
    served = [s for span in spans if span["parent_id"] is None for s in served_in(fake, span)]
    cost = sum(expected_cost(s) or 0.0 for s in served)
    if not (stored["total_cost"] or 0) > 0 or not close(stored["total_cost"], cost):
        problems.append(f"run total_cost {stored['total_cost']!r}, expected {cost:.10g}")
    if (stored["step_count"] or 0) < 1:
        problems.append(f"run step_count {stored['step_count']!r}, expected >= 1")
    if not steps:
        problems.append("/runs/{id}/steps is []")
    elif not any(s["model"] and s["input_tokens"] for s in steps):
        problems.append(f"no step with model and tokens: {[(s['name'], s['model'], s['input_tokens']) for s in steps]}")
    return problems


def failed_call(run: AppRun, url: str) -> list[str]:
    """The call the API refused: a FAILED step naming its model, with a short error, in a FAILED run."""
    problems = []
    trace = run.scenarios["failing"]
    stored = run_of(url, trace)
    steps = {s["id"]: s for s in steps_of(url, trace)}
    if stored["status"] != "FAILED":
        problems.append(f"run status {stored['status']!r}, expected 'FAILED'")
    problems += _short_error("run error", stored.get("error"))
    llm_spans = [(sid, span) for sid, (span, types) in expected_steps(run, "failing").items()
                 if types and "llm" in types and span["status"] == "ERROR"]
    if not llm_spans:
        problems.append("the app sent no failed LLM span")
    for span_id, span in llm_spans:
        step = steps.get(span_id)
        if step is None:
            problems.append(f"failed {span['name']!r} call has no step")
            continue
        if step["status"] != "FAILED":
            problems.append(f"step status {step['status']!r}, expected 'FAILED'")
        if step["model"] != FAIL_MODEL:
            problems.append(f"step model {step['model']!r}, expected {FAIL_MODEL!r}")
        problems += _short_error("step error", step["error"])
    return problems


def _short_error(what: str, error: str | None) -> list[str]:
    if not error:
        return [f"{what} is empty"]
    out = []
    if len(error) > MAX_ERROR_CHARS or "Traceback" in error:
        out.append(f"{what} is {len(error)} characters{' with a traceback' if 'Traceback' in error else ''} "
                   f"(expected <= {MAX_ERROR_CHARS}, no traceback): {error[:80]!r}…")
    if FAIL_MESSAGE[:40] not in error:
        out.append(f"{what} does not say what the API said: {error[:120]!r}")
    return out


def llm_inputs_are_messages(run: AppRun, url: str) -> list[str]:
    """An LLM step's inputs are the messages sent (role and content), not a library's serialization."""
    problems = []
    for scenario, trace in run.scenarios.items():
        for step in steps_of(url, trace):
            if step["type"] != "llm":
                continue
            text = json.dumps(step["inputs"])
            if '"lc": 1' in text or '"constructor"' in text:
                problems.append(f"{scenario}: {step['name']!r} inputs are LangChain's serialization: {text[:100]}…")
            elif '"role"' not in text:
                problems.append(f"{scenario}: {step['name']!r} inputs carry no message roles: {text[:100]}…")
    return problems


def no_request_gets_an_error(run: AppRun) -> list[str]:
    problems = [f"an OTLP trace export returned {r}" for r in run.export_results if r != "SUCCESS"]
    problems += [f"the app logged: {line}" for line in sorted(set(run.exporter_logs))]
    failed: dict[tuple[str, str, int], int] = {}
    for f in run.forwarded:
        if not 200 <= f.status < 300:
            failed[(f.method, f.path, f.status)] = failed.get((f.method, f.path, f.status), 0) + 1
    problems += [f"{method} {path} answered {status} ({n}x)" for (method, path, status), n in sorted(failed.items())]
    return problems


# --- LangChain: the funnel and the documents ------------------------------------------------------

def langchain_funnel(run: AppRun, url: str) -> list[str]:
    problems = []
    trace = run.scenarios["rag"]
    analysis = get_json(f"{url}/analyze/{trace}")
    summary = analysis["summary"]
    if (summary["initial_candidates"], summary["final_count"]) != (20, 4):
        problems.append(f"funnel reads {summary['initial_candidates']} -> {summary['final_count']}, expected 20 -> 4")
    biggest = summary["biggest_drop"] or {}
    if (biggest.get("step"), biggest.get("dropped")) != ("ContextualCompressionRetriever", 15):
        problems.append(f"biggest_drop {summary['biggest_drop']!r}, expected ContextualCompressionRetriever dropped 15")
    rows = {f["name"]: f for f in analysis["funnel"]}
    want = {"KnowledgeBaseRetriever": (None, 20, {}),
            "ContextualCompressionRetriever": (20, 5, {"below_top_k": 15}),
            "keep_current_policies": (5, 4, None)}
    for name, (n_in, n_out, rejections) in want.items():
        row = rows.get(name)
        if row is None:
            problems.append(f"{name} is not in the funnel")
            continue
        if (row["input_count"], row["output_count"]) != (n_in, n_out):
            problems.append(f"{name} counts {row['input_count']} -> {row['output_count']}, expected {n_in} -> {n_out}")
        if rejections is not None and row["rejections"] != rejections:
            problems.append(f"{name} rejections {row['rejections']!r}, expected {rejections!r}")
    counted = [f["name"] for f in analysis["funnel"] if f["output_count"] is not None]
    order = [n for n in counted if n in want]
    if order != list(want):
        problems.append(f"counted steps in funnel order {order}, expected data-flow order {list(want)}")
    return problems


def documents_by_real_id(run: AppRun, url: str) -> list[str]:
    """Every retrieved document is found by its own id, with its retriever score, and its path says where
    it left: below the reranker's top 5, or at the filter (the superseded policy)."""
    problems = []
    trace = run.scenarios["rag"]
    real = {d["id"]: d for d in run.documents}
    kept_by_reranker = {"kb-returns-2019", "kb-returns-2024", "kb-refund-timing", "kb-return-label", "kb-exchange"}
    missing = []
    for doc_id, doc in real.items():
        reply = call("GET", f"{url}/runs/{trace}/candidates/{quote(doc_id, safe='')}")
        if reply.status != 200:
            missing.append(doc_id)
            continue
        path = reply.json()
        retrieved = [d for d in path["path"] if d["step"] == "KnowledgeBaseRetriever"]
        if not retrieved or retrieved[0]["score"] != doc["score"]:
            problems.append(f"{doc_id}: retriever decision {retrieved[:1]!r}, expected score {doc['score']}")
        left = path["left_at"] or {}
        if doc_id not in kept_by_reranker:
            want = ("ContextualCompressionRetriever", "below_top_k")
        elif doc["superseded"]:
            want = ("keep_current_policies", None)
        else:
            want = None
        if want is None and path["outcome"] != "kept":
            problems.append(f"{doc_id}: outcome {path['outcome']!r} at {left!r}, expected kept")
        elif want is not None and (left.get("step") != want[0] or (want[1] and left.get("reason") != want[1])):
            problems.append(f"{doc_id}: left at {left!r}, expected {want[0]}" + (f" ({want[1]})" if want[1] else ""))
    if missing:
        problems.append(f"GET /runs/{{id}}/candidates/{{id}} is 404 for {len(missing)} of {len(real)} documents, "
                        f"e.g. {missing[:3]}")
    listed = get_json(f"{url}/runs/{trace}/candidates?limit=1000")
    foreign = sorted({d["candidate_id"] for d in listed} - set(real), key=str)
    if foreign:
        problems.append(f"candidates under ids that are no document's: {foreign[:8]}{'…' if len(foreign) > 8 else ''}")
    return problems
