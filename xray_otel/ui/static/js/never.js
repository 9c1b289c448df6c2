// The candidates a pipeline drops most often at the same step for the same reason
// (GET /pipelines/{name}/never-survives), narrowed by step and reason; each opens its history. The page
// says which runs the counts cover and which were left out, so a count is never read as the window's.

import {ApiError, get, seg} from "./api.js";
import {h, notice} from "./dom.js";
import * as fmt from "./format.js";
import {historyHref, windowOfHistory} from "./history.js";
import {WINDOWS} from "./pipelines.js";
import {go} from "./runs.js";

const FILTERS = ["step", "reason", "runs"];

export async function showNeverSurvives(name, query) {
  const [since, label] = windowOfHistory(query);
  const path = `#/pipelines/${seg(name)}/never-survives`;
  const params = {since, limit: query.get("limit") || 50};
  for (const key of FILTERS) params[key] = query.get(key) || "";
  const head = [
    h("p", {class: "crumbs"}, h("a", {href: `#/pipelines?since=${seg(since)}`}, "Pipelines"), " / ",
      h("a", {href: `#/pipelines/${seg(name)}?since=${seg(since)}`}, name), " / "),
    h("h1", {}, "Never survives"),
    h("p", {class: "muted"}, `The candidates runs of ${name} drop most often at the same step for the same reason.`),
    filterForm(path, since, params),
  ];
  let answer;
  try {
    ({data: answer} = await get(`/pipelines/${seg(name)}/never-survives`, params));
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 400) throw err;
    return h("section", {class: "never"}, head, notice("error", "This list cannot be read.", err.message));
  }
  return h("section", {class: "never"}, head, coverage(answer || {}, name, label), ranked(answer || {}, name, since));
}

function filterForm(path, since, params) {
  const field = (id, text, input, hint) => h("label", {class: "field", for: id}, h("span", {}, text), input,
    hint ? h("small", {}, hint) : null);
  const windowSelect = h("select", {id: "never-window"}, WINDOWS.map(([value, text]) =>
    h("option", {value, selected: value === since}, text)));
  const step = h("input", {id: "never-step", type: "text", value: params.step, placeholder: "any step", autocomplete: "off"});
  const reason = h("input", {id: "never-reason", type: "text", value: params.reason, placeholder: "any reason",
                             autocomplete: "off"});
  const runs = h("input", {id: "never-runs", type: "number", min: 1, max: 1000, value: params.runs, placeholder: "200"});
  return h("form", {class: "filters", id: "never-filters", onsubmit: (e) => {
    e.preventDefault();
    const next = new URLSearchParams({since: windowSelect.value});
    for (const [key, input] of [["step", step], ["reason", reason], ["runs", runs]]) {
      if (input.value.trim()) next.set(key, input.value.trim());
    }
    go(`${path}?${next}`);
  }},
  field("never-window", "Window", windowSelect),
  field("never-step", "Step", step),
  field("never-reason", "Reason", reason, "exactly as recorded"),
  field("never-runs", "Newest runs to read", runs, "1 to 1,000"),
  h("div", {class: "actions"}, h("button", {type: "submit"}, "Show")));
}

function coverage(answer, name, label) {
  const read = Number.isFinite(answer.runs_read) ? answer.runs_read : 0;
  if (!read) return notice("info", `No run of ${name} started in the ${label}.`);
  const span = answer.read_from && answer.read_until
    ? ` (started from ${fmt.time(answer.read_from)} to ${fmt.time(answer.read_until)})` : "";
  const skipped = answer.runs_not_counted;
  const why = skipped && skipped.why ? Object.entries(skipped.why).map(([w, n]) => `${w}: ${fmt.count(n)}`).join(", ") : "";
  const sampled = Array.isArray(answer.steps_sampled_only) ? answer.steps_sampled_only : [];
  return h("div", {class: "notice coverage", id: "never-coverage", role: "status"},
    h("p", {}, `Read the newest ${fmt.count(read)} runs of the ${label}${span}; the counts are exact over the `
      + `${fmt.count(answer.runs_counted)} of them whose outcomes are complete.`),
    skipped && skipped.runs ? h("p", {}, `${fmt.count(skipped.runs)} run${skipped.runs === 1 ? "" : "s"} not counted (a candidate's fate there is unknown)`
      + `${why ? `: ${why}` : ""}.`) : null,
    sampled.length ? h("p", {}, "Steps that recorded only a sample of their decisions, so their drops are not counted: ",
      sampled.join(", "), ".") : null);
}

function ranked(answer, name, since) {
  const candidates = (Array.isArray(answer.candidates) ? answer.candidates : []).filter(Boolean);
  if (!candidates.length) return h("p", {class: "muted", id: "never-empty"}, "No candidate was dropped in the runs counted.");
  return h("ol", {class: "never-list", id: "never-list"}, candidates.map((c) => {
    const id = String(c.candidate_id ?? "");
    return h("li", {"data-candidate": id},
      h("a", {href: historyHref(name, id, since)}, h("code", {}, id)), " ",
      c.never_survives ? h("span", {class: "badge dropped"}, "never survives")
        : h("span", {class: "badge kept"}, `survived ${fmt.count(c.survived_runs)} run${c.survived_runs === 1 ? "" : "s"}`),
      h("p", {}, "Dropped at ", h("strong", {}, c.step || "an unnamed step"),
        c.reason ? [" because ", h("strong", {}, c.reason)] : " (no reason recorded)",
        ` in ${fmt.count(c.dropped_runs)} of the ${fmt.count(c.seen_runs)} runs it appeared in.`));
  }));
}
