"""The OpenAPI 3 document, built from the same ``Param`` lists the handlers parse with.

``ENDPOINTS`` names every GET/POST route the app serves; tests/queries/test_query_openapi.py fails when
the router has a route this table lacks, so a new endpoint cannot ship undocumented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

from . import alerts, changes, compare, history, lineage, pipelines, run_steps, runs, series, steps
from .params import Param


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    summary: str
    params: tuple[Param, ...] = ()
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    paged: bool = False  # Link / X-Next-Cursor headers
    errors: tuple[int, ...] = (400, 503)
    content_type: str = "application/json"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _array(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


_RUN_ID = Param("run_id", "string", "run id: a UUID, or the 32-hex-digit trace id", required=True)
_TIME = {"type": "string", "format": "date-time", "nullable": True}
_NUM = {"type": "number", "nullable": True}
_INT = {"type": "integer", "nullable": True}
_STR = {"type": "string", "nullable": True}
_OBJ = {"type": "object", "nullable": True}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "properties": {"status": {"type": "integer"}, "message": {"type": "string"}}}}},
    "Run": {"type": "object", "properties": {
        "id": {"type": "string", "format": "uuid"}, "name": _STR, "status": {"type": "string",
        "enum": ["RUNNING", "COMPLETED", "FAILED"]}, "service": _STR, "tags": {"type": "object"},
        "total_cost": {"type": "number"}, "step_count": {"type": "integer"}, "started_at": _TIME,
        "completed_at": _TIME, "duration_ms": _NUM, "error": _STR,
        "project": {"type": "string", "nullable": True,
                    "description": "the project whose key wrote this run (its part of the trace); null: a key bound to no project"},
        "trace_id": {"type": "string", "format": "uuid", "description": "the trace id; the run id too, but for "
                     "a project's run seen with a key bound to no project"}}},
    "StepHit": {"type": "object", "properties": {
        "id": {"type": "string"}, "run_id": {"type": "string", "format": "uuid"}, "run_name": _STR,
        "parent_id": _STR, "name": {"type": "string"}, "type": {"type": "string"}, "status": {"type": "string"},
        "service": _STR, "input_count": _INT, "output_count": _INT, "dropped": _INT, "drop_rate": _NUM,
        "rejections": _OBJ, "reasoning": _STR, "cost": {"type": "number"}, "cost_source": _STR, "model": _STR,
        "started_at": _TIME, "completed_at": _TIME, "duration_ms": _NUM, "error": _STR,
        "sample": {**_OBJ, "description": "how the step's decisions sample was drawn: `rule`, `rate`, `seed`, "
                   "`counts` (sampled and total, kept and per reason); null when the step did not say"}}},
    "Decision": {"type": "object", "properties": {
        "step_id": {"type": "string"}, "step": {"type": "string"}, "type": {"type": "string"},
        "candidate_id": _STR, "accepted": {"type": "boolean", "nullable": True}, "reason": _STR,
        "score": {"nullable": True}, "rank": {"nullable": True}, "step_input_count": _INT,
        "step_output_count": _INT, "started_at": _TIME,
        "label": {**_STR, "description": "the candidate's short text, from the step's sampled decisions"},
        "payload": {**_OBJ, "description": "what else the step's sampled decision on it holds (`sampled_as`: why "
                    "it is in the sample; `value`: what the filter compared)"},
        "sample": {**_OBJ, "description": "how the step's payload sample was drawn (`rule`, `rate`, `seed`) and "
                   "why this candidate is in it (`sampled_as`: watched, boundary, survivor, reservoir; null: not "
                   "in it); null when the step did not say"},
        "outcome": {"type": "string", "enum": ["kept", "dropped", "unknown"]},
        "source": {"type": "string", "enum": ["outcomes", "decisions"], "description": "outcomes: the step's "
                   "exact record of every candidate; decisions: its recorded decisions, a sample unless captured "
                   "in full"},
        "why": {"type": "string", "description": "for an unknown outcome: why the step cannot tell"}}},
    "Lineage": {"type": "object", "properties": {
        "run": {"type": "object"}, "candidate_id": {"type": "string"},
        "outcome": {"type": "string", "enum": ["kept", "dropped", "unknown"]},
        "left_at": {"type": "object", "nullable": True, "properties": {
            "step_id": {"type": "string"}, "step": {"type": "string"}, "type": {"type": "string"},
            "reason": _STR}},
        "why": {**_STR, "description": "for an unknown outcome: which steps cannot tell, and why"},
        "path": _array("Decision")}},
    "Comparison": {"type": "object", "properties": {
        "base": _ref("Run"), "other": _ref("Run"), "summary": {"type": "object"},
        "first_divergence": {"type": "object", "nullable": True},
        "steps": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "occurrence": {"type": "integer"}, "base": _OBJ, "other": _OBJ,
            "changed": {"type": "array", "items": {"type": "string"}}, "rejections_delta": {"type": "object"}}}}}},
    "AlertRule": {"type": "object", "description": "docs/alerts.md; the secret is write-only (has_secret)",
                  "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "kind": {"type": "string", "enum": ["threshold", "change"]},
        "pipeline": {"type": "string"}, "step": _STR,
        "metric": {"type": "string", "enum": ["drop_rate", "reason_share", "failure_rate", "cost", "duration_p95"]},
        "reason": _STR, "comparison": {"type": "string", "enum": ["above", "below"]}, "threshold": {"type": "number"},
        "window": {"type": "string", "example": "15m"}, "baseline": {"type": "string", "example": "7d"},
        "min_samples": {"type": "integer"}, "webhook": _STR, "has_secret": {"type": "boolean"},
        "enabled": {"type": "boolean"},
        "state": {"type": "string", "enum": ["unknown", "ok", "firing"], "description": "unknown: never decided, "
                  "or the last window held too little data (note says why)"},
        "value": _NUM, "note": _STR, "evaluated_at": _TIME, "created_at": _TIME, "updated_at": _TIME}},
    "AlertFiring": {"type": "object", "properties": {
        "id": {"type": "string", "format": "uuid", "description": "the webhook body's id"},
        "rule_id": {"type": "integer"}, "rule": {"type": "string"},
        "state": {"type": "string", "enum": ["firing", "resolved"]}, "firing_id": _STR, "at": _TIME,
        "value": _NUM, "pipeline": {"type": "string"}, "step": _STR, "what": _STR, "reason": _STR,
        "delivery": {**_OBJ, "description": "null: the rule has no webhook", "properties": {
            "delivered_at": _TIME, "attempts": {"type": "integer"}}}}},
    "Pipeline": {"type": "object", "properties": {
        "name": {"type": "string"}, "run_count": {"type": "integer"}, "failed_count": {"type": "integer"},
        "failure_rate": _NUM, "duration_ms": {"type": "object", "properties": {"p50": _NUM, "p95": _NUM}},
        "avg_cost": _NUM, "last_run_at": _TIME}},
    "PipelineStep": {"type": "object", "properties": {
        "name": {"type": "string"}, "type": {"type": "string"}, "count": {"type": "integer"},
        "failed_count": {"type": "integer"}, "avg_drop_rate": _NUM,
        "p95_drop_rate": {**_NUM, "description": "within 0.0005 of the exact percentile (drop rates in steps of 0.001)"},
        "avg_cost": _NUM,
        "duration_ms": {"type": "object", "description": "within 1% of the exact percentiles (2% log buckets)",
                        "properties": {"p50": _NUM, "p95": _NUM}},
        "top_rejections": {"type": "array", "items": {"type": "object", "properties": {
            "reason": {"type": "string"}, "count": {"type": "number"}}}}}},
    "Change": {"type": "object", "properties": {
        "pipeline": {"type": "string"}, "step": {"type": "string"},
        "what": {"type": "string", "enum": ["drop_rate", "reason_share", "reason_new", "reason_gone", "step_new",
                                            "step_gone", "cost", "duration"]},
        "reason": {"type": "string", "nullable": True}, "baseline": _NUM, "window": _NUM, "delta": _NUM,
        "statistic": {**_NUM, "description": "Student t (pooled over runs); null for the exact tests"},
        "p_value": _NUM, "p_adjusted": {**_NUM, "description": "Benjamini-Hochberg over the pipeline's comparisons"},
        "significant": {"type": "boolean"}, "insufficient_data": {"type": "boolean"},
        "runs": {"type": "object"}, "examples": {"type": "object"}, "compare": {"type": "string", "nullable": True}}},
}

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("get", "/runs", "Runs, newest first, with filters and a sort", runs.PARAMS, _array("Run"), paged=True),
    Endpoint("get", "/runs/{run_id}", "One run, with inputs and outputs", (_RUN_ID,), _ref("Run"),
             errors=(400, 404, 503)),
    Endpoint("get", "/runs/{run_id}/steps", "A run's steps in tree order, a page at a time", (_RUN_ID,) + run_steps.PARAMS,
             {"type": "array", "items": {"type": "object"}}, paged=True, errors=(400, 404, 503)),
    Endpoint("get", "/runs/{run_id}/candidates", "A run's candidates step by step, in step time order: every "
             "outcome of a step that sent outcomes, the recorded decisions of one that did not",
             (_RUN_ID,) + lineage.DECISION_PARAMS, _array("Decision"), paged=True, errors=(400, 404, 503)),
    Endpoint("get", "/runs/{run_id}/candidates/{candidate_id}",
             "One candidate's path through a run: each step that recorded it, kept or dropped (or unknown, at a "
             "step whose outcomes are incomplete), and where it left",
             (_RUN_ID, Param("candidate_id", "string", "candidate id as recorded", required=True)),
             _ref("Lineage"), errors=(400, 404, 503)),
    Endpoint("get", "/analyze/{run_id}", "A run's decision funnel", (_RUN_ID,), errors=(400, 404, 503)),
    Endpoint("get", "/steps", "Search steps across all runs and pipelines", steps.PARAMS, _array("StepHit"),
             paged=True),
    Endpoint("get", "/compare", "Two runs' funnels aligned by step name, and the first step where they diverge",
             compare.PARAMS, _ref("Comparison"), errors=(400, 404, 503)),
    Endpoint("get", "/pipelines", "Per run name over a time window: runs, failure rate, duration, cost",
             pipelines.LIST_PARAMS, {"type": "object", "properties": {
                 "window": {"type": "object"}, "pipelines": _array("Pipeline")}}),
    Endpoint("get", "/pipelines/{name}", "One pipeline over a time window, with per-step drop rates and reasons",
             (pipelines.NAME,) + pipelines.GET_PARAMS,
             {"allOf": [_ref("Pipeline"), {"type": "object", "properties": {"steps": _array("PipelineStep")}}]},
             errors=(400, 404, 503)),
    Endpoint("get", "/pipelines/{name}/candidates/{candidate_id}",
             "One candidate across a pipeline's runs, newest first: its fate in each run it appeared in, where it "
             "left, and where its fate changed; each page reads at most 1,000 runs and says which",
             (pipelines.NAME, Param("candidate_id", "string", "candidate id as recorded", required=True))
             + history.HISTORY_PARAMS, paged=True, errors=(400, 404, 503)),
    Endpoint("get", "/pipelines/{name}/never-survives",
             "Over the newest runs of a window, the candidates dropped most often by the same step for the same "
             "reason, and whether they ever survived", (pipelines.NAME,) + history.NEVER_PARAMS,
             errors=(400, 404, 503)),
    Endpoint("get", "/alerts", "Every alert rule with its state, and the latest firings and resolutions",
             alerts.ALERT_PARAMS, {"type": "object", "properties": {"rules": _array("AlertRule"),
                                                                   "firings": _array("AlertFiring")}}),
    Endpoint("get", "/alerts/rules", "Every alert rule", schema=_array("AlertRule")),
    Endpoint("post", "/alerts/rules", "Create an alert rule (JSON body, docs/alerts.md); `admin` scope",
             schema=_ref("AlertRule"), errors=(400, 409, 503)),
    Endpoint("get", "/alerts/rules/{id}", "One alert rule", (alerts.RULE_ID,), _ref("AlertRule"),
             errors=(400, 404, 503)),
    Endpoint("put", "/alerts/rules/{id}", "Replace an alert rule's definition (a secret left out is kept); "
             "`admin` scope", (alerts.RULE_ID,), _ref("AlertRule"), errors=(400, 404, 409, 503)),
    Endpoint("delete", "/alerts/rules/{id}", "Delete an alert rule with its firings; `admin` scope",
             (alerts.RULE_ID,), errors=(400, 404, 503)),
    Endpoint("get", "/pipelines/{name}/series", "One pipeline's step figures per UTC hour or day: runs, failures, "
             "candidates in and out, drop rate (mean, p95), reasons, cost, duration; empty buckets included",
             (pipelines.NAME,) + series.PARAMS, {"type": "object", "properties": {
                 "buckets": {"type": "array", "items": {"type": "object"}},
                 "steps": {"type": "array", "items": {"type": "object"}}}}, errors=(400, 404, 503)),
    Endpoint("get", "/pipelines/{name}/changes", "What moved in one pipeline's steps in the window against the "
             "baseline before it, most significant first (docs/health.md)", (pipelines.NAME,) + changes.PARAMS,
             {"type": "object", "properties": {"changes": _array("Change")}}, errors=(400, 404, 503)),
    Endpoint("get", "/changes", "What moved in any pipeline's steps, most significant first",
             changes.PARAMS, {"type": "object", "properties": {"changes": _array("Change")}},
             errors=(400, 503)),
    Endpoint("get", "/openapi.json", "This document", errors=()),
    Endpoint("get", "/docs", "Interactive API documentation (HTML, works offline)", errors=(),
             content_type="text/html"),
    Endpoint("get", "/", "Name, version and endpoints; a browser (Accept: text/html) is redirected to /ui/",
             errors=()),
    Endpoint("get", "/ui", "Redirects to /ui/", errors=(), content_type="text/html"),
    Endpoint("get", "/ui/", "The web UI (HTML; reads this API, needs no key to load)", errors=(),
             content_type="text/html"),
    Endpoint("get", "/health", "200 while the process is up", errors=()),
    Endpoint("get", "/ready", "200 when the database answers, else 503", errors=(503,)),
    Endpoint("get", "/metrics", "Self-metrics in the Prometheus text format", errors=(),
             schema={"type": "string"}, content_type="text/plain"),
    Endpoint("post", "/v1/traces", "OTLP/HTTP trace export (application/x-protobuf or application/json; "
             "gzip or none). Errors are google.rpc.Status in the request's encoding", errors=(400, 413, 415, 503),
             content_type="application/x-protobuf"),
    Endpoint("post", "/ingest", "The original X-Ray SDK's {\"events\": [...]}", errors=(400, 413, 503)),
    Endpoint("post", "/v1/metrics", "OTLP/HTTP metrics export: answered success and counted in /metrics "
             "(xray_otlp_ignored_requests_total), not stored", errors=(413, 503), content_type="application/x-protobuf"),
    Endpoint("post", "/v1/logs", "OTLP/HTTP logs export: answered success and counted in /metrics, not stored",
             errors=(413, 503), content_type="application/x-protobuf"),
)

_TYPES = {
    "integer": {"type": "integer"}, "number": {"type": "number"}, "boolean": {"type": "boolean"},
    "datetime": {"type": "string", "description": "ISO-8601, or relative: 30m, 24h, 7d"},
    "tag": {"type": "string", "pattern": "^[^:]+:.*$"}, "cursor": {"type": "string"}, "string": {"type": "string"},
}


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for e in ENDPOINTS:
        responses: dict[str, Any] = {"200": {"description": "OK", "content": {e.content_type: {"schema": e.schema}}}}
        if e.paged:
            responses["200"]["headers"] = {
                "Link": {"description": 'the next page: <url>; rel="next" (absent on the last page)',
                         "schema": {"type": "string"}},
                "X-Next-Cursor": {"description": "pass as `cursor` for the next page", "schema": {"type": "string"}}}
        for status in e.errors:
            responses[str(status)] = {"description": _ERRORS[status],
                                      "content": {"application/json": {"schema": _ref("Error")}}}
        operation = {"summary": e.summary, "operationId": _operation_id(e), "responses": responses,
                     "parameters": [_parameter(p, e.path) for p in e.params]}
        paths.setdefault(e.path, {})[e.method] = operation
    return {
        "openapi": "3.0.3",
        "info": {"title": "xray-otel", "version": version("xray-otel"),
                 "description": "Decision observability on OpenTelemetry: runs, steps, funnels, lineage, alerts. "
                                "All errors share one JSON shape: {\"error\": {\"status\", \"message\"}}. "
                                "Unknown query parameters are a 400."},
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }


_ERRORS = {400: "bad parameter (the message names it)", 404: "not found", 409: "a rule of that name exists",
           413: "body too large",
           415: "unsupported content type", 503: "database unavailable or at capacity; retry (Retry-After)"}


def _parameter(p: Param, path: str) -> dict[str, Any]:
    where = "path" if "{" + p.name + "}" in path else "query"
    schema = dict(_TYPES[p.type])
    if p.enum:
        schema["enum"] = list(p.enum)
    if p.minimum is not None:
        schema["minimum"] = p.minimum
    if p.maximum is not None and p.type != "integer":
        schema["maximum"] = p.maximum
    if p.default is not None:
        schema["default"] = p.default
    if p.repeat:
        schema = {"type": "array", "items": schema}
    out = {"name": p.name, "in": where, "description": p.description, "required": where == "path" or p.required,
           "schema": schema}
    if p.repeat:
        out |= {"style": "form", "explode": True}
    return out


def _operation_id(e: Endpoint) -> str:
    words = [w.strip("{}") for w in e.path.strip("/").replace(".", "_").split("/") if w] or ["index"]
    return e.method + "_" + "_".join(words)
