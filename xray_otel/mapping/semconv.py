"""Spans from other OpenTelemetry instrumentation: OpenInference, OpenLLMetry and GenAI.

Most LLM pipelines are already traced by a library that knows nothing of ``xray.*``. This
module reads what those libraries write into the step fields the ``xray.*`` attributes fill,
so their spans arrive as typed steps with model, tokens, cost and funnel figures. Every rule
is documented in docs/conventions.md ("Spans from other OpenTelemetry instrumentation").

Pure and table-driven: one table per convention (OPENINFERENCE, OPENLLMETRY, GENAI) of
``attribute -> (field, reader)`` rows. They are merged once, at import, into one index from
attribute name to (precedence, field, reader), so a span costs one dictionary look-up per
attribute it carries, however many rules there are. Precedence: ``xray.*`` first (mapping.py
reads those), then the tables in the order OpenInference, OpenLLMetry, GenAI, rows in table
order within each. A value a reader cannot use (an unknown span kind, an empty model name)
leaves the field to the next rule. Indexed lists (``retrieval.documents.{i}.document.id``)
are gathered by prefix (LISTS), and the span kind decides last (SPAN_KINDS).

Nothing is removed: attributes read here stay in the step's ``attributes`` as sent.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Callable, NamedTuple

from .values import clean_text, json_column, to_json

MAX_BIGINT = 2**63 - 1
MAX_ID = 200  # characters of a decision id, as the SDK

Reader = Callable[[Any, dict[str, Any]], Any]  # (value, all attributes) -> field value or None


# --- readers: one attribute value to one field, or None when unusable --------------------------


def as_count(value: Any, maximum: int) -> int | None:
    """A non-negative whole number up to ``maximum`` (int, integral float or digit string), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            return None
    return value if isinstance(value, int) and 0 <= value <= maximum else None


MAX_USD = 1e12
"""No real step costs more; beyond it a sum over a run could overflow double precision in SQL."""


def as_usd(value: Any) -> float | None:
    """A cost: a non-negative number up to MAX_USD, else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= MAX_USD:
        return float(value)
    return None


def _text(value: Any, attrs: dict[str, Any]) -> str | None:
    return clean_text(value) if isinstance(value, str) and value.strip() else None


def _json(value: Any, attrs: dict[str, Any]) -> str | None:
    return json_column(value)


def _tokens(value: Any, attrs: dict[str, Any]) -> int | None:
    return as_count(value, MAX_BIGINT)


def _cost(value: Any, attrs: dict[str, Any]) -> float | None:
    return as_usd(value)


def _typed_by(mime_key: str) -> Reader:
    """OpenInference ``input.value``: JSON when ``input.mime_type`` says so, else plain text (the spec's default)."""
    def read(value: Any, attrs: dict[str, Any]) -> str | None:
        if isinstance(value, str) and attrs.get(mime_key) != "application/json":
            return to_json(clean_text(value))
        return json_column(value)
    return read


def _invoked_model(value: Any, attrs: dict[str, Any]) -> str | None:
    """OpenInference ``llm.invocation_parameters``: the JSON the call was made with; its ``model`` (or
    ``model_name``) names the model even when the call failed before a response said which one answered."""
    params = _json_object(value)
    for key in ("model", "model_name"):
        if isinstance(params.get(key), str) and params[key].strip():
            return clean_text(params[key])
    return None


def _json_object(value: Any) -> dict[str, Any]:
    """A dict, or JSON text of one (as OpenInference sends nested objects); else empty."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.startswith("{"):
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _kinds(table: dict[str, str]) -> Reader:
    """A span-kind value (any case) to a step type; a value not in the table is left to the next rule."""
    folded = {k.lower(): v for k, v in table.items()}

    def read(value: Any, attrs: dict[str, Any]) -> str | None:
        return folded.get(value.strip().lower()) if isinstance(value, str) else None
    return read


# --- the tables: attribute -> (field, reader), in precedence order ------------------------------
# Fields: type, inputs, outputs, model, input_tokens, output_tokens, cost (explicit, USD), run_name.

OPENINFERENCE_KINDS = {
    "LLM": "llm", "RETRIEVER": "retrieval", "RERANKER": "rank", "EMBEDDING": "embedding",
    "TOOL": "tool", "CHAIN": "logic", "AGENT": "agent", "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluator", "PROMPT": "logic", "DECISION": "llm",
}
OPENLLMETRY_KINDS = {"workflow": "logic", "task": "logic", "agent": "agent", "tool": "tool"}
OPENLLMETRY_REQUEST_TYPES = {"chat": "llm", "completion": "llm", "embedding": "embedding", "rerank": "rank"}
GENAI_OPERATIONS = {
    "chat": "llm", "text_completion": "llm", "generate_content": "llm", "embeddings": "embedding",
    "retrieval": "retrieval", "execute_tool": "tool", "create_agent": "agent", "invoke_agent": "agent",
    "invoke_workflow": "logic",
    # OpenLLMetry's extensions of the same attribute.
    "execute_task": "logic", "vector_db_retrieve": "retrieval", "llm_request": "llm",
}

Table = dict[str, tuple[str, Reader]]

OPENINFERENCE: Table = {
    "openinference.span.kind": ("type", _kinds(OPENINFERENCE_KINDS)),
    "input.value": ("inputs", _typed_by("input.mime_type")),
    "output.value": ("outputs", _typed_by("output.mime_type")),
    "llm.model_name": ("model", _text),
    "llm.response.model_name": ("model", _text),
    "llm.request.model_name": ("model", _text),
    "embedding.model_name": ("model", _text),
    "reranker.model_name": ("model", _text),
    "decision.model_name": ("model", _text),
    "llm.invocation_parameters": ("model", _invoked_model),  # after the response's: the model asked for
    "llm.token_count.prompt": ("input_tokens", _tokens),
    "decision.token_count.input": ("input_tokens", _tokens),
    "llm.token_count.completion": ("output_tokens", _tokens),
    "decision.token_count.output": ("output_tokens", _tokens),
    "llm.cost.total": ("cost", _cost),
}

OPENLLMETRY: Table = {  # traceloop-sdk; its LLM spans also carry the GenAI attributes below
    "traceloop.span.kind": ("type", _kinds(OPENLLMETRY_KINDS)),
    "llm.request.type": ("type", _kinds(OPENLLMETRY_REQUEST_TYPES)),
    "traceloop.entity.input": ("inputs", _json),
    "traceloop.entity.output": ("outputs", _json),
    "traceloop.workflow.name": ("run_name", _text),
}

GENAI: Table = {  # OpenTelemetry GenAI semantic conventions, current and older names
    "gen_ai.operation.name": ("type", _kinds(GENAI_OPERATIONS)),
    "gen_ai.input.messages": ("inputs", _json),
    "gen_ai.prompt": ("inputs", _json),
    "gen_ai.output.messages": ("outputs", _json),
    "gen_ai.completion": ("outputs", _json),
    "gen_ai.response.model": ("model", _text),
    "gen_ai.request.model": ("model", _text),
    "gen_ai.usage.input_tokens": ("input_tokens", _tokens),
    "gen_ai.usage.prompt_tokens": ("input_tokens", _tokens),
    "gen_ai.usage.output_tokens": ("output_tokens", _tokens),
    "gen_ai.usage.completion_tokens": ("output_tokens", _tokens),
    "gen_ai.usage.cost": ("cost", _cost),  # not in the spec; sent by some gateways
    "gen_ai.workflow.name": ("run_name", _text),
}

CONVENTIONS: tuple[Table, ...] = (OPENINFERENCE, OPENLLMETRY, GENAI)

# Indexed lists, flattened one attribute per item field: prefix -> list name.
LISTS = {
    "retrieval.documents.": "retrieved",  # OpenInference: retrieval.documents.{i}.document.id / .score / .content
    "reranker.input_documents.": "rerank_in",  # OpenInference: reranker.input_documents.{i}.document.*
    "reranker.output_documents.": "rerank_out",
    "llm.input_messages.": "in_messages",  # OpenInference: llm.input_messages.{i}.message.role / .content / …
    "llm.output_messages.": "out_messages",
    "gen_ai.prompt.": "prompt",  # OpenLLMetry: gen_ai.prompt.{i}.role / .content
    "gen_ai.completion.": "completion",  # OpenLLMetry: gen_ai.completion.{i}.role / .content
}

# Last resort for the step type: span kind + an attribute present -> type.
SPAN_KIND_CLIENT, SPAN_KIND_SERVER = 3, 2  # opentelemetry.proto.trace.v1.Span.SpanKind
SPAN_KINDS: dict[int, tuple[tuple[str, str], ...]] = {
    SPAN_KIND_CLIENT: (("db.system.name", "retrieval"), ("db.system", "retrieval")),  # a database query
}

# Run tags taken from resource attributes (``xray.tag.*`` wins on the same key).
RESOURCE_TAGS = ("deployment.environment.name", "deployment.environment", "service.version", "service.namespace")

# A root SERVER span with one of these is a generic HTTP request: the run is named "<service> <span name>".
HTTP_METHOD_KEYS = ("http.request.method", "http.method")

REJECTED_BY_RERANK = "below_top_k"  # as the SDK's rank_candidates


def _index(tables: tuple[Table, ...]) -> dict[str, tuple[int, str, Reader]]:
    index: dict[str, tuple[int, str, Reader]] = {}
    for table in tables:
        for key, (field_name, reader) in table.items():
            index.setdefault(key, (len(index), field_name, reader))
    return index


_INDEX = _index(CONVENTIONS)
_LIST_PREFIXES = tuple(LISTS)
_LISTED, _UNREAD = "list item", "no rule"
_ROUTES: dict[str, Any] = {}  # attribute key -> its _INDEX rule or _UNREAD; a memo of _route
_MAX_ROUTES = 10_000  # keys are client-chosen: past this many, new ones are routed without the memo


def _route(key: str) -> Any:
    """A key's rule, _LISTED or _UNREAD. List items are not memoised: their keys hold an index, so they
    would fill the memo with one-off keys."""
    route = _INDEX.get(key) or (_LISTED if key.startswith(_LIST_PREFIXES) else _UNREAD)
    if route is not _LISTED and len(_ROUTES) < _MAX_ROUTES:
        _ROUTES[key] = route
    return route


# --- reading one span ---------------------------------------------------------------------------


class Found(NamedTuple):
    """What other conventions say about one span; None where they say nothing. JSON fields are JSON text."""

    type: str | None = None
    inputs: str | None = None
    outputs: str | None = None
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None
    run_name: str | None = None
    input_count: int | None = None
    output_count: int | None = None
    rejections: str | None = None
    decisions: str | None = None
    derived: str | None = None  # what a heuristic rule filled, and how: shown in the step's attributes


NOTHING = Found()


def read(attrs: dict[str, Any], span_kind: int = 0) -> Found:
    """The step fields other conventions give a span, by the tables above."""
    hits: list[tuple[int, str, Reader, str]] = []
    lists: dict[str, dict[int, dict[str, Any]]] = {}
    for key in attrs:  # one memo look-up per key: a span's keys are mostly ones seen before
        rule = _ROUTES.get(key) or _route(key)
        if rule is _UNREAD:
            continue
        if rule is _LISTED:
            _gather(lists, key, attrs[key])
        else:
            hits.append((*rule, key))
    by_kind = SPAN_KINDS.get(span_kind)
    if not hits and not lists and by_kind is None:
        return NOTHING
    fields: dict[str, Any] = {}
    for _, field_name, reader, key in sorted(hits):
        if field_name not in fields:
            value = reader(attrs[key], attrs)
            if value is not None:
                fields[field_name] = value
    if "type" not in fields and by_kind:
        fields["type"] = next((t for key, t in by_kind if key in attrs), None)
    if lists:
        _from_lists(lists, fields)
    if "input_count" not in fields and "output_count" not in fields and fields.get("type") in (None, "logic"):
        _document_filter(fields)
    return Found(**fields)


REJECTED_BY_FILTER = "not_in_output"
DERIVED_DOCUMENT_FILTER = ("counts and decisions from the Documents in input.value and output.value; type filter "
                           "because fewer came out (heuristic)")


def _document_filter(fields: dict[str, Any]) -> None:
    """A step whose input and output are both lists of LangChain Documents (a filtering chain): its counts,
    and a decision per input document, kept or ``not_in_output``. A heuristic, so it is marked ``derived``."""
    ins, outs = _documents(fields.get("inputs")), _documents(fields.get("outputs"))
    if ins is None or outs is None or len(outs) > len(ins):
        return
    kept = {_doc_id(d) for d in outs}
    decisions = [_decision(d, i, _doc_id(d) in kept, None if _doc_id(d) in kept else REJECTED_BY_FILTER)
                 for i, d in enumerate(ins)]
    dropped = sum(1 for d in decisions if not d["accepted"])
    fields.update(input_count=len(ins), output_count=len(outs), decisions=to_json(decisions))
    if dropped:
        fields.update(type="filter", rejections=to_json({REJECTED_BY_FILTER: dropped}))
    fields["derived"] = DERIVED_DOCUMENT_FILTER


def _documents(text: str | None) -> list[dict[str, Any]] | None:
    """JSON text of a list of serialised Documents (``page_content`` and ``metadata``), as the document
    fields _doc_id reads; None for anything else."""
    if not text or not text.startswith("["):
        return None
    try:
        items = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not items or not all(isinstance(i, dict) and isinstance(i.get("page_content"), str) for i in items):
        return None
    return [{"document.content": i["page_content"], "document.metadata": i.get("metadata") or {},
             **({"document.id": i["id"]} if i.get("id") is not None else {})} for i in items]


def _gather(lists: dict[str, dict[int, dict[str, Any]]], key: str, value: Any) -> None:
    cut = key.find(".", key.find(".") + 1) + 1  # every LISTS prefix is two names and a dot
    name = LISTS.get(key[:cut])
    index, _, item_field = key[cut:].partition(".")
    if name is not None and index.isascii() and index.isdigit() and item_field:
        lists.setdefault(name, {}).setdefault(int(index), {})[item_field] = value


def _from_lists(lists: dict[str, dict[int, dict[str, Any]]], fields: dict[str, Any]) -> None:
    if "rerank_in" in lists or "rerank_out" in lists:
        ins, outs = _items(lists.get("rerank_in")), _items(lists.get("rerank_out"))
        fields["input_count"] = len(ins) if ins else None
        fields["output_count"] = len(outs) if outs else None
        if ins and outs and len(ins) > len(outs):
            fields["rejections"] = to_json({REJECTED_BY_RERANK: len(ins) - len(outs)})
        fields["decisions"] = to_json(_rerank_decisions(ins, outs))
    elif "retrieved" in lists:
        docs = _items(lists["retrieved"])
        fields["output_count"] = len(docs)
        fields["decisions"] = to_json([_decision(d, i, True, None, rank=i + 1) for i, d in enumerate(docs)])
    # The messages as sent, not a framework's serialisation of them in input.value (LangChain's
    # {"lc": 1, "type": "constructor", ...}): they win over input.value / output.value.
    if "in_messages" in lists:
        fields["inputs"] = to_json({"messages": _messages(lists["in_messages"])})
    if "out_messages" in lists:
        fields["outputs"] = to_json({"messages": _messages(lists["out_messages"])})
    if "inputs" not in fields and "prompt" in lists:
        fields["inputs"] = to_json(_items(lists["prompt"]))
    if "outputs" not in fields and "completion" in lists:
        fields["outputs"] = to_json(_items(lists["completion"]))


def _messages(indexed: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenInference's flattened messages (``message.role``, ``message.content``,
    ``message.tool_calls.{j}.tool_call.function.name`` / ``.arguments`` / ``.id``) as plain objects."""
    messages = []
    for item in _items(indexed):
        message: dict[str, Any] = {}
        calls: dict[int, dict[str, Any]] = {}
        for key, value in item.items():
            name = key.removeprefix("message.")
            if name.startswith("tool_calls."):
                index, _, rest = name[len("tool_calls."):].partition(".")
                if index.isdigit():
                    calls.setdefault(int(index), {})[rest.removeprefix("tool_call.").removeprefix("function.")] = value
            else:
                message[name] = value
        if calls:
            message["tool_calls"] = _items(calls)
        messages.append(message)
    return messages


def _items(indexed: dict[int, dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [indexed[i] for i in sorted(indexed)] if indexed else []


def _rerank_decisions(ins: list[dict[str, Any]], outs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each input document kept (with its output rank) or cut; matched by document id, else content."""
    in_keys, out_keys = [_doc_key(d) for d in ins], [_doc_key(d) for d in outs]
    if not ins or None in in_keys or None in out_keys:  # cannot tell which went through: outputs only
        return [_decision(d, i, True, None, rank=i + 1) for i, d in enumerate(outs)]
    placed: dict[Any, tuple[int, dict[str, Any]]] = {}
    for rank, (key, doc) in enumerate(zip(out_keys, outs), 1):
        placed.setdefault(key, (rank, doc))
    decisions = []
    for position, (key, doc) in enumerate(zip(in_keys, ins)):
        hit = placed.pop(key, None)
        if hit is None:
            decisions.append(_decision(doc, position, False, REJECTED_BY_RERANK))
        else:
            rank, out = hit
            decisions.append(_decision(doc, position, True, None, rank=rank, score_from=out))
    for rank, doc in placed.values():  # an output that was not among the inputs
        decisions.append(_decision(doc, rank - 1, True, None, rank=rank))
    return decisions


def _doc_key(doc: dict[str, Any]) -> Any:
    return _doc_id(doc)


# Where a document's own id and score are, when ``document.id`` / ``document.score`` are not sent
# (openinference-instrumentation-langchain sends only content and metadata).
DOCUMENT_ID_KEYS = ("id", "doc_id", "document_id")
DOCUMENT_SCORE_KEYS = ("relevance_score", "score")  # a reranker's relevance before the retriever's score


def _doc_id(doc: dict[str, Any]) -> str | None:
    """A document's id: ``document.id``, else an id in its metadata, else ``content:`` and a digest of its
    text (the same document gets the same id in every step, and two documents never share one); None
    when it has neither."""
    if doc.get("document.id") is not None:
        return clean_text(str(doc["document.id"]))[:MAX_ID]
    metadata = _json_object(doc.get("document.metadata"))
    for key in DOCUMENT_ID_KEYS:
        value = metadata.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return clean_text(str(value))[:MAX_ID]
    content = doc.get("document.content")
    if isinstance(content, str):
        return "content:" + hashlib.blake2b(content.encode("utf-8", "replace"), digest_size=8).hexdigest()
    return None


def _doc_score(doc: dict[str, Any]) -> float | None:
    score = _score(doc.get("document.score"))
    if score is None:
        metadata = _json_object(doc.get("document.metadata"))
        score = next((s for s in (_score(metadata.get(k)) for k in DOCUMENT_SCORE_KEYS) if s is not None), None)
    return score


def _decision(doc: dict[str, Any], position: int, accepted: bool, reason: str | None, *, rank: int | None = None,
              score_from: dict[str, Any] | None = None) -> dict[str, Any]:
    """One decision object, the shape of ``xray.step.decisions``; a document with no id and no text is named
    by position."""
    doc_id = _doc_id(doc)
    score = _doc_score(score_from or doc)
    if score is None and score_from is not None:
        score = _doc_score(doc)
    return {
        "id": doc_id if doc_id is not None else str(position),
        "accepted": accepted,
        "reason": reason,
        "score": score,
        "rank": rank,
    }


def _score(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


# --- run-level rules ----------------------------------------------------------------------------


def resource_tags(resource: dict[str, Any]) -> dict[str, Any]:
    """Run tags from the resource attributes listed in RESOURCE_TAGS, keyed as sent."""
    return {key: resource[key] for key in RESOURCE_TAGS if key in resource}


def default_run_name(span_name: str, span_kind: int, attrs: dict[str, Any], service: str | None) -> str:
    """The run span's name; for a generic HTTP server span ("GET /search"), prefixed with the service."""
    if service and span_kind == SPAN_KIND_SERVER and any(key in attrs for key in HTTP_METHOD_KEYS):
        return f"{service} {span_name}"
    return span_name
