// One candidate's path through a run: each step that decided on it, and where and why it left.

import {ApiError, get, seg} from "./api.js";
import {h, notice} from "./dom.js";
import * as fmt from "./format.js";
import {historyHref} from "./history.js";

export async function showCandidate(runId, candidateId) {
  const crumbs = (runName) => h("p", {class: "crumbs"}, h("a", {href: "#/runs"}, "Runs"), " / ",
                                h("a", {href: `#/runs/${seg(runId)}`}, runName), " / ");
  const form = traceForm(runId, {label: "Candidate id", button: "Trace another", value: candidateId});
  let path;
  try {
    path = (await get(`/runs/${seg(runId)}/candidates/${seg(candidateId)}`)).data;
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) throw err;
    const run = await get(`/runs/${seg(runId)}`).then((r) => r.data, () => null);
    return h("section", {class: "candidate"}, crumbs((run && run.name) || "Run"),
      h("h1", {}, "Candidate ", h("code", {}, candidateId)), form,
      notice("info", err.message, "Check the id, or look for it in the pipeline's other runs."),
      acrossRuns(run && run.name, candidateId));
  }
  return h("section", {class: "candidate"}, crumbs(path.run.name || path.run.id),
    h("h1", {}, "Candidate ", h("code", {}, path.candidate_id)),
    path.path.some((p) => p.label) ? h("p", {class: "label", id: "candidate-label"}, path.path.find((p) => p.label).label) : null,
    form,
    acrossRuns(path.run.name, path.candidate_id),
    verdict(path),
    h("div", {class: "table-wrap"}, h("table", {class: "data", id: "candidate-path"},
      h("thead", {}, h("tr", {}, ["Step", "Type", "Outcome", "Reason", "Score", "Rank", "Step in → out"]
        .map((t) => h("th", {scope: "col"}, t)))),
      h("tbody", {}, path.path.map((p) => h("tr", {"data-step": p.step, class: p.accepted === false ? "dropped-row" : null},
        h("th", {scope: "row"}, h("a", {href: `#/runs/${seg(runId)}?step=${seg(p.step_id)}`}, p.step)),
        h("td", {}, p.type),
        h("td", {}, outcome(p.accepted)),
        h("td", {}, p.reason ?? ""),
        h("td", {class: "num"}, p.score ?? ""),
        h("td", {class: "num"}, p.rank ?? ""),
        h("td", {class: "num"}, `${fmt.count(p.step_input_count)} → ${fmt.count(p.step_output_count)}`)))))));
}

/** The same id in the other runs of this run's pipeline (GET /pipelines/{name}/candidates/{id}). */
function acrossRuns(pipeline, candidateId) {
  if (!pipeline) return null;
  return h("p", {class: "across"}, h("a", {href: historyHref(pipeline, candidateId), id: "across-runs"},
    "This candidate across runs of ", h("strong", {}, pipeline)));
}

function outcome(accepted) {
  const word = accepted === true ? "kept" : accepted === false ? "dropped" : "unknown";
  return h("span", {class: `badge ${word}`}, accepted === null || accepted === undefined ? "not recorded" : word);
}

function verdict(path) {
  if (path.outcome === "unknown") {
    return h("p", {class: "verdict unknown", id: "verdict"}, "Fate unknown: ", path.why || "a step's record of it is incomplete", ".");
  }
  if (path.outcome !== "dropped" || !path.left_at) {
    const exact = path.path.length && path.path.every((p) => p.source === "outcomes");
    return h("p", {class: "verdict kept", id: "verdict"},
      exact ? "Kept by every step that decided on it." : "Not dropped by any step that recorded a decision on it.");
  }
  const at = path.left_at;
  return h("p", {class: "verdict dropped", id: "verdict"}, "Dropped at ", h("strong", {}, at.step),
    ` (${at.type})`, at.reason ? [" because ", h("strong", {}, at.reason)] : " (no reason recorded)", ".");
}

/** A form that opens a candidate's path in this run: the run page's and this page's. */
export function traceForm(runId, {label, button, value = ""}) {
  const input = h("input", {type: "search", id: "candidate-id", value, required: true, placeholder: "candidate id"});
  return h("form", {class: "inline", role: "search", onsubmit: (e) => {
    e.preventDefault();
    location.hash = `#/runs/${seg(runId)}/candidates/${seg(input.value.trim())}`;
  }}, h("label", {for: "candidate-id"}, label), input, h("button", {type: "submit"}, button));
}
