"""Span attribute names that the SDK writes and the receiver reads.

This module is the one definition of the ``xray.*`` attributes; docs/conventions.md
documents each. It has no dependencies so both sides can import it.

JSON-valued attributes travel as JSON strings (OTLP attribute values cannot nest
maps inside arrays in every exporter). The receiver stores a value that is not
valid JSON as a plain string rather than rejecting the span.
"""

from __future__ import annotations

# --- span roles -----------------------------------------------------------------
KIND = "xray.kind"
"""``"run"`` on the span that represents the whole pipeline execution; ``"step"`` otherwise."""
KIND_RUN = "run"
KIND_STEP = "step"
KIND_OUTCOMES = "outcomes"  # a continuation span: more outcomes of its parent step (below)

# --- run span -------------------------------------------------------------------
RUN_NAME = "xray.run.name"
"""Overrides the span name as the run name (optional)."""
RUN_INPUTS = "xray.run.inputs"  # JSON
RUN_OUTPUTS = "xray.run.outputs"  # JSON
RUN_TAGS = "xray.run.tags"  # JSON object; merged with xray.tag.* attributes
TAG_PREFIX = "xray.tag."
"""``xray.tag.<key> = <value>``: one run tag per attribute."""

# --- step span ------------------------------------------------------------------
STEP_TYPE = "xray.step.type"
"""llm, retrieval, filter, rank, logic, ... (free text, lower case)."""
STEP_INPUTS = "xray.step.inputs"  # JSON
STEP_OUTPUTS = "xray.step.outputs"  # JSON
STEP_METADATA = "xray.step.metadata"  # JSON object
STEP_REASONING = "xray.step.reasoning"  # string
STEP_COST = "xray.step.cost"  # double, in USD
STEP_COST_SOURCE = "xray.step.cost_source"  # "explicit" | "price_table"

# Funnel figures.
STEP_INPUT_COUNT = "xray.step.input_count"  # int
STEP_OUTPUT_COUNT = "xray.step.output_count"  # int
STEP_REJECTIONS = "xray.step.rejections"  # JSON object: reason -> count
STEP_DECISIONS = "xray.step.decisions"  # JSON array of decision objects (see below)
STEP_CAPTURE = "xray.step.capture"  # "summary" | "sampled" | "full"
STEP_DECISIONS_DROPPED = "xray.step.decisions_dropped"  # int: decisions not recorded (sampling caps)
STEP_FUNNEL = "xray.step.funnel"
DERIVED = "xray.derived"  # set by the receiver, not sent: which step fields a heuristic rule filled, and how

# Candidate outcomes: every candidate's fate, exact, as parallel arrays (docs/conventions.md).
OUTCOME_IDS = "xray.step.outcomes.ids"  # string array, input order
OUTCOME_REASONS = "xray.step.outcomes.reasons"  # string array
OUTCOME_CODES = "xray.step.outcomes.codes"  # int array: 0 kept, r >= 1 dropped for reasons[r - 1]
OUTCOME_RANKS = "xray.step.outcomes.ranks"  # int array: rank (1 = best), 0 none; optional
OUTCOME_TOTAL = "xray.step.outcomes.total"  # int: candidates over all parts
OUTCOME_PART = "xray.step.outcomes.part"  # int, 0-based; optional
OUTCOME_PARTS = "xray.step.outcomes.parts"  # int; optional (absent: one part)

# Keys of one decision object inside STEP_DECISIONS.
DECISION_ID = "id"  # candidate id (string)
DECISION_ACCEPTED = "accepted"  # bool
DECISION_REASON = "reason"  # string or null
DECISION_SCORE = "score"  # number or null (ranking)
DECISION_RANK = "rank"  # int or null (1 = best)
DECISION_LABEL = "label"  # string, optional: what the candidate was (label_fn: a title, a category path)

# --- OpenTelemetry GenAI semantic conventions the SDK also sets ------------------
GEN_AI_SYSTEM = "gen_ai.system"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"

# --- values ---------------------------------------------------------------------
STEP_TYPES = ("llm", "retrieval", "filter", "rank", "logic")
"""The documented step types. Other values are kept as sent (lower-cased)."""
DEFAULT_STEP_TYPE = "logic"

STATUS_RUNNING = "RUNNING"
STATUS_COMPLETED = "COMPLETED"
STATUS_FAILED = "FAILED"

TRUNCATION_MARKER = "…[truncated by xray-otel]"
"""Appended to a JSON-encoded value cut at the size cap, so a reader sees it was cut."""
