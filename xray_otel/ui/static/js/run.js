// One run: header, funnel chart, step tree on a shared timeline, and the chosen step's details.

import {get, seg} from "./api.js";
import {PagedRows, h, jsonBlock, replace} from "./dom.js";
import {funnelCharts} from "./funnel.js";
import * as fmt from "./format.js";
import {traceForm} from "./candidate.js";
import {badge} from "./runs.js";
import {stepDetail} from "./step.js";

const TREE_PAGE = 200;

export async function showRun(runId, query) {
  const [analysis, steps] = await Promise.all([
    get(`/analyze/${seg(runId)}`).then((r) => r.data),
    allSteps(runId),
  ]);
  const run = analysis.run;
  const detail = h("div", {class: "step-detail", id: "step-detail"});
  const byId = new Map(steps.map((st) => [st.id, st]));
  let tree = null;
  const pick = (stepId) => {
    const step = byId.get(stepId);
    if (!step) return;
    history.replaceState(null, "", `#/runs/${seg(run.id)}?step=${seg(stepId)}`);
    tree.select(stepId);
    replace(detail, stepDetail(run, step));
    detail.scrollIntoView({block: "nearest"});
  };
  tree = steps.length ? new StepTree(steps, run, pick) : null;
  const initial = byId.get(query.get("step")) || biggestDropStep(analysis, byId);
  if (initial) {
    tree.select(initial.id);
    replace(detail, stepDetail(run, initial));
  } else {
    replace(detail, h("p", {class: "muted"}, "Choose a step to see its inputs, outputs and decisions."));
  }
  return h("section", {class: "run"},
    runHeader(run, analysis),
    h("section", {"aria-labelledby": "funnel-h"},
      h("h2", {id: "funnel-h"}, several(analysis.summary) ? `Funnels (${fmt.count(analysis.summary.funnel_count)})` : "Funnel"),
      biggestDropSentence(analysis, byId, pick), funnelCharts(analysis, pick)),
    h("section", {"aria-labelledby": "steps-h", class: "steps-layout"},
      h("div", {}, h("h2", {id: "steps-h"}, `Steps (${fmt.count(steps.length)})`),
        tree ? tree.element : h("p", {class: "muted"}, "No step spans have arrived for this run (yet).")),
      detail));
}

/** Every step of the run, a page (1,000 steps) at a time: the server never builds a 100,000-step answer. */
async function allSteps(runId) {
  const steps = [];
  let cursor = null;
  do {
    const page = await get(`/runs/${seg(runId)}/steps`, {limit: 1000, cursor});
    steps.push(...page.data);
    cursor = page.next;
  } while (cursor);
  return steps;
}

/** The run's answer in one line: where most candidates went, and the reasons recorded for it. */
function biggestDropSentence(analysis, byId, pick) {
  const big = analysis.summary.biggest_drop;
  const step = big && byId.get(big.step_id);
  if (!step) return null;
  const reasons = fmt.reasonsByCount(step.rejections).slice(0, 3).map(([r, n]) => `${r} ${fmt.count(n)}`);
  return h("p", {class: "verdict dropped", id: "biggest-drop"}, "Biggest drop: ",
    h("a", {href: `#/runs/${seg(analysis.run.id)}?step=${seg(step.id)}`,
            onclick: (e) => { e.preventDefault(); pick(step.id); }}, step.name),
    ` removed ${fmt.count(big.dropped)} of ${fmt.count(step.input_count)} (${fmt.percent(big.drop_rate)})`,
    reasons.length ? `: ${reasons.join(", ")}.` : ", with no reasons recorded.");
}

function biggestDropStep(analysis, byId) {
  const big = analysis.summary.biggest_drop;
  return big ? byId.get(big.step_id) : undefined;
}

/** Whether the run holds several candidate streams, whose counts are never added up into one. */
function several(summary) {
  return (summary.funnel_count || 0) > 1;
}

/** "8 → 5", or for several streams each one's: "titles 6 → 1; bullets 8 → 5" (the first three, then how many more). */
function candidatesFact(analysis) {
  const summary = analysis.summary;
  if (!several(summary)) return `${fmt.count(summary.initial_candidates)} → ${fmt.count(summary.final_count)}`;
  const each = analysis.funnels.slice(0, 3).map((f) => `${f.name} ${fmt.count(f.initial_candidates)} → ${fmt.count(f.final_count)}`);
  const more = analysis.funnels.length - each.length;
  return each.join("; ") + (more > 0 ? `; ${fmt.count(more)} more funnels` : "");
}

function runHeader(run, analysis) {
  const summary = analysis.summary;
  const fact = (name, value, wide = false) => h("div", {class: wide ? "wide" : null}, h("dt", {}, name), h("dd", {}, value));
  return h("header", {class: "run-header"},
    h("p", {class: "crumbs"}, h("a", {href: "#/runs"}, "Runs"), " / "),
    h("h1", {}, run.name || "(unnamed run)", " ", badge(run.status)),
    run.error ? h("p", {class: "error-text", role: "note"}, run.error) : null,
    h("dl", {class: "facts"},
      fact("Run id", h("code", {}, run.id)),
      fact("Service", run.service || "—"),
      fact("Started", fmt.time(run.started_at)),
      fact("Duration", fmt.duration(run.duration_ms)),
      fact("Steps", fmt.count(summary.step_count)),
      fact("Cost", fmt.cost(run.total_cost)),
      fact(several(summary) ? "Candidates, per funnel" : "Candidates", candidatesFact(analysis), several(summary)),
      run.outputs !== null && run.outputs !== undefined ? fact("Result", h("code", {}, fmt.clip(JSON.stringify(run.outputs), 160)), true) : null,
      Object.keys(run.tags || {}).length ? fact("Tags", Object.entries(run.tags).map(([k, v]) => `${k}: ${v}`).join(", "), true) : null),
    h("div", {class: "run-actions"}, traceForm(run.id, {label: "Where did a candidate go?", button: "Trace"}), compareForm(run)),
    run.inputs || run.outputs ? h("details", {class: "io"}, h("summary", {}, "Run inputs and outputs"),
      h("div", {class: "io-grid"}, h("div", {}, h("h3", {}, "Inputs"), jsonBlock(run.inputs)),
        h("div", {}, h("h3", {}, "Outputs"), jsonBlock(run.outputs)))) : null);
}

function compareForm(run) {
  const input = h("input", {type: "text", id: "compare-with", required: true, placeholder: "other run id"});
  return h("form", {class: "inline", onsubmit: (e) => {
    e.preventDefault();
    location.hash = `#/compare?base=${seg(run.id)}&other=${seg(input.value.trim())}`;
  }}, h("label", {for: "compare-with"}, "Compare with"), input, h("button", {type: "submit"}, "Compare"));
}

/** The step tree, a page at a time: nesting by indent, a duration bar on the run's timeline. */
class StepTree {
  constructor(steps, run, pick) {
    this.steps = steps;
    this.selected = null;
    const span = timeline(steps, run);
    this.rows = new PagedRows(steps, (st) => stepRow(st, span, pick, st.id === this.selected), TREE_PAGE);
    this.element = h("div", {},
      h("div", {class: "table-wrap"}, h("table", {class: "data tree", id: "step-tree"},
        h("thead", {}, h("tr", {}, ["Step", "Type", "Status", "Timeline", "Duration", "In → out", "Dropped"]
          .map((t) => h("th", {scope: "col", class: /Duration|Dropped|In/.test(t) ? "num" : null}, t)))),
        this.rows.body)),
      this.rows.more);
  }

  /** Mark one step as chosen, showing more rows until it is among them. */
  select(stepId) {
    this.selected = stepId;
    this.rows.showUntil(this.steps.findIndex((st) => st.id === stepId));
    const body = this.rows.body;
    for (const row of body.querySelectorAll("tr[aria-selected]")) row.removeAttribute("aria-selected");
    const row = body.querySelector(`tr[data-step-id="${CSS.escape(stepId)}"]`);
    if (row) row.setAttribute("aria-selected", "true");
  }
}

function stepRow(step, span, pick, selected) {
  const activate = (e) => {
    if (e.type === "keydown" && e.key !== "Enter" && e.key !== " ") return;
    e.preventDefault();
    pick(step.id);
  };
  const dropped = step.input_count !== null && step.output_count !== null ? step.input_count - step.output_count : null;
  return h("tr", {"data-step-id": step.id, "data-step": step.name, tabindex: 0, class: "pickable",
                  "aria-selected": selected ? "true" : null, onclick: activate, onkeydown: activate},
    h("th", {scope: "row"}, h("span", {class: "indent", style: {paddingLeft: `${step.depth * 1.1}em`}},
      step.depth ? "└ " : "", step.name)),
    h("td", {}, h("span", {class: `type ${step.type}`}, step.type)),
    h("td", {}, badge(step.status)),
    h("td", {class: "timeline-cell"}, timeBar(step, span)),
    h("td", {class: "num"}, fmt.duration(step.duration_ms)),
    h("td", {class: "num"}, step.input_count === null && step.output_count === null ? "—"
      : `${fmt.count(step.input_count)} → ${fmt.count(step.output_count)}`),
    h("td", {class: "num"}, droppedText(dropped, step.input_count)));
}

/** "3,269 (65.4%)"; a step that added candidates dropped none: "+4 added". */
function droppedText(dropped, inputCount) {
  if (dropped === null) return "—";
  if (dropped < 0) return `+${fmt.count(-dropped)} added`;
  return `${fmt.count(dropped)} (${fmt.percent(dropped / (inputCount || 1))})`;
}

function timeline(steps, run) {
  const times = (key) => steps.map((st) => st[key]).concat(run[key]).filter(Boolean).map((t) => Date.parse(t));
  const start = Math.min(...times("started_at"));
  const end = Math.max(...times("completed_at"), ...times("started_at"));
  return {start, length: Math.max(end - start, 1)};
}

function timeBar(step, span) {
  if (!step.started_at || !Number.isFinite(span.start)) return "";
  const left = ((Date.parse(step.started_at) - span.start) / span.length) * 100;
  const width = step.completed_at ? ((Date.parse(step.completed_at) - Date.parse(step.started_at)) / span.length) * 100 : 0;
  return h("div", {class: "track", "aria-hidden": "true"},
    h("div", {class: `bar ${fmt.status(step.status)}`, style: {left: `${left}%`, width: `max(${width}%, 2px)`}}));
}
