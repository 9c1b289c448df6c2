// One run: header, funnel chart, step tree on a shared timeline, and the chosen step's details.

import {get, seg} from "./api.js";
import {h, replace} from "./dom.js";
import {funnelChart} from "./funnel.js";
import * as fmt from "./format.js";
import {badge} from "./runs.js";
import {stepDetail} from "./step.js";

const TREE_PAGE = 200;

export async function showRun(runId, query) {
  const [analysis, steps] = await Promise.all([
    get(`/analyze/${seg(runId)}`).then((r) => r.data),
    get(`/runs/${seg(runId)}/steps`).then((r) => r.data),
  ]);
  const run = analysis.run;
  const detail = h("div", {class: "step-detail", id: "step-detail"});
  const byId = new Map(steps.map((st) => [st.id, st]));
  const pick = (stepId) => {
    const step = byId.get(stepId);
    if (!step) return;
    history.replaceState(null, "", `#/runs/${seg(run.id)}?step=${seg(stepId)}`);
    document.querySelectorAll("#step-tree tr[aria-selected]").forEach((tr) => tr.removeAttribute("aria-selected"));
    const row = document.querySelector(`#step-tree tr[data-step-id="${CSS.escape(stepId)}"]`);
    if (row) row.setAttribute("aria-selected", "true");
    replace(detail, stepDetail(run, step));
    detail.scrollIntoView({block: "nearest"});
  };
  const initial = byId.get(query.get("step")) || biggestDropStep(analysis, byId);
  if (initial) replace(detail, stepDetail(run, initial));
  else replace(detail, h("p", {class: "muted"}, "Choose a step to see its inputs, outputs and decisions."));
  return h("section", {class: "run"},
    runHeader(run, analysis.summary),
    h("section", {"aria-labelledby": "funnel-h"}, h("h2", {id: "funnel-h"}, "Funnel"), funnelChart(analysis, pick)),
    h("section", {"aria-labelledby": "steps-h", class: "steps-layout"},
      h("div", {}, h("h2", {id: "steps-h"}, `Steps (${fmt.count(steps.length)})`),
        steps.length ? stepTree(steps, run, pick, initial && initial.id)
          : h("p", {class: "muted"}, "No step spans have arrived for this run (yet).")),
      detail));
}

function biggestDropStep(analysis, byId) {
  const big = analysis.summary.biggest_drop;
  return big ? byId.get(big.step_id) : undefined;
}

function runHeader(run, summary) {
  const fact = (name, value) => h("div", {}, h("dt", {}, name), h("dd", {}, value));
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
      fact("Candidates", `${fmt.count(summary.initial_candidates)} → ${fmt.count(summary.final_count)}`),
      Object.keys(run.tags || {}).length ? fact("Tags", Object.entries(run.tags).map(([k, v]) => `${k}: ${v}`).join(", ")) : null),
    h("div", {class: "run-actions"}, candidateForm(run), compareForm(run)),
    run.inputs || run.outputs ? h("details", {class: "io"}, h("summary", {}, "Run inputs and outputs"),
      h("div", {class: "io-grid"}, h("div", {}, h("h3", {}, "Inputs"), jsonOf(run.inputs)),
        h("div", {}, h("h3", {}, "Outputs"), jsonOf(run.outputs)))) : null);
}

function jsonOf(value) {
  return value === null || value === undefined ? h("span", {class: "muted"}, "—")
    : h("pre", {class: "json"}, JSON.stringify(value, null, 2));
}

function candidateForm(run) {
  const input = h("input", {type: "search", id: "candidate-id", required: true, placeholder: "candidate id"});
  return h("form", {class: "inline", role: "search", onsubmit: (e) => {
    e.preventDefault();
    location.hash = `#/runs/${seg(run.id)}/candidates/${seg(input.value.trim())}`;
  }}, h("label", {for: "candidate-id"}, "Where did a candidate go?"), input, h("button", {type: "submit"}, "Trace"));
}

function compareForm(run) {
  const input = h("input", {type: "text", id: "compare-with", required: true, placeholder: "other run id"});
  return h("form", {class: "inline", onsubmit: (e) => {
    e.preventDefault();
    location.hash = `#/compare?base=${seg(run.id)}&other=${seg(input.value.trim())}`;
  }}, h("label", {for: "compare-with"}, "Compare with"), input, h("button", {type: "submit"}, "Compare"));
}

/** The step tree, a page at a time: nesting by indent, a duration bar on the run's timeline. */
function stepTree(steps, run, pick, selected) {
  const span = timeline(steps, run);
  const body = h("tbody", {});
  const more = h("button", {type: "button", class: "secondary"});
  let shown = 0;
  const showMore = () => {
    body.append(...steps.slice(shown, shown + TREE_PAGE).map((st) => stepRow(st, span, pick, st.id === selected)));
    shown = Math.min(steps.length, shown + TREE_PAGE);
    more.textContent = `Show ${fmt.count(Math.min(TREE_PAGE, steps.length - shown))} more of ${fmt.count(steps.length - shown)}`;
    more.hidden = shown >= steps.length;
  };
  more.addEventListener("click", showMore);
  showMore();
  return h("div", {},
    h("div", {class: "table-wrap"}, h("table", {class: "data tree", id: "step-tree"},
      h("thead", {}, h("tr", {}, ["Step", "Type", "Status", "Timeline", "Duration", "In → out", "Dropped"]
        .map((t) => h("th", {scope: "col", class: /Duration|Dropped|In/.test(t) ? "num" : null}, t)))),
      body)),
    more);
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
    h("td", {class: "num"}, dropped === null ? "—" : `${fmt.count(dropped)} (${fmt.percent(dropped / (step.input_count || 1))})`));
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
