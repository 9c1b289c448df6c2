// One step's details: figures, reasoning, why candidates were dropped, inputs/outputs, decisions.

import {get, seg} from "./api.js";
import {h, jsonBlock} from "./dom.js";
import * as fmt from "./format.js";
import {badge} from "./runs.js";

const DECISION_PAGE = 50;

export function stepDetail(run, step) {
  const fact = (name, value) => (value === null || value === undefined || value === "" ? null
    : h("div", {}, h("dt", {}, name), h("dd", {}, value)));
  const tokens = step.input_tokens !== null || step.output_tokens !== null
    ? `${fmt.count(step.input_tokens)} in / ${fmt.count(step.output_tokens)} out` : null;
  return h("article", {"aria-labelledby": "step-h", "data-step-id": step.id},
    h("h2", {id: "step-h"}, step.name, " ", h("span", {class: `type ${step.type}`}, step.type), " ", badge(step.status)),
    step.error ? h("p", {class: "error-text", role: "note"}, step.error) : null,
    h("dl", {class: "facts"},
      fact("Span id", h("code", {}, step.id)),
      fact("Duration", fmt.duration(step.duration_ms)),
      fact("Candidates", step.input_count !== null || step.output_count !== null
        ? `${fmt.count(step.input_count)} in → ${fmt.count(step.output_count)} out` : null),
      fact("Cost", step.cost ? `${fmt.cost(step.cost)} (${step.cost_source})` : null),
      fact("Model", step.model),
      fact("Tokens", tokens)),
    step.reasoning ? h("section", {}, h("h3", {}, "Reasoning"), h("p", {class: "reasoning"}, step.reasoning)) : null,
    rejections(step.rejections),
    decisions(run, step),
    h("details", {class: "io", open: !step.decisions || !step.decisions.length},
      h("summary", {}, "Inputs, outputs and metadata"),
      h("h3", {}, "Inputs"), jsonBlock(step.inputs),
      h("h3", {}, "Outputs"), jsonBlock(step.outputs),
      step.metadata ? [h("h3", {}, "Metadata"), jsonBlock(step.metadata)] : null));
}

/** Why candidates were dropped, as bars: reason, count, share of all rejections. */
function rejections(counts) {
  const entries = fmt.reasonsByCount(counts);
  if (!entries.length) return null;
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  const top = entries[0][1] || 1;
  return h("section", {class: "rejections"}, h("h3", {}, "Why candidates were dropped"),
    h("ul", {class: "histogram", id: "rejections"}, entries.map(([reason, n]) => h("li", {"data-reason": reason},
      h("span", {class: "reason"}, reason),
      h("span", {class: "hbar", "aria-hidden": "true"}, h("span", {style: {width: `${(n / top) * 100}%`}})),
      h("span", {class: "num"}, `${fmt.count(n)} (${fmt.percent(n / total, 0)})`)))));
}

/** The recorded decisions, filtered in place and shown a page at a time. */
function decisions(run, step) {
  const all = step.decisions || [];
  if (!all.length) return null;
  const body = h("tbody", {});
  const status = h("p", {class: "muted", "aria-live": "polite"});
  const search = h("input", {type: "search", id: "decision-search", placeholder: "candidate id or reason…",
                             "aria-label": "Search decisions by candidate id or reason"});
  const which = h("select", {"aria-label": "Show decisions"},
    h("option", {value: ""}, "kept and dropped"), h("option", {value: "dropped"}, "dropped only"),
    h("option", {value: "kept"}, "kept only"));
  const prev = h("button", {type: "button", class: "secondary"}, "← Previous");
  const next = h("button", {type: "button", class: "secondary"}, "Next →");
  let page = 0;
  let matching = all;
  const render = () => {
    const start = page * DECISION_PAGE;
    body.replaceChildren(...matching.slice(start, start + DECISION_PAGE).map((d) => decisionRow(run, d)));
    status.textContent = matching.length
      ? `${fmt.count(start + 1)}–${fmt.count(Math.min(start + DECISION_PAGE, matching.length))} of ${fmt.count(matching.length)}`
        + (matching.length < all.length ? ` matching (of ${fmt.count(all.length)} recorded)` : " recorded")
      : "No recorded decision matches.";
    prev.disabled = page === 0;
    next.disabled = start + DECISION_PAGE >= matching.length;
  };
  let asked = 0;
  const refilter = async () => {
    const typed = search.value.trim();
    const needle = typed.toLowerCase();
    const want = which.value;
    matching = all.filter((d) => (!needle || `${d.id ?? ""}\u0000${d.reason ?? ""}`.toLowerCase().includes(needle))
      && (!want || (want === "kept" ? d.accepted === true : d.accepted === false)));
    page = 0;
    render();
    if (!typed || matching.length) return;
    // Not in the sample: the step's outcomes answer for every candidate it decided on.
    const mine = ++asked;
    try {
      const {data: rows} = await get(`/runs/${seg(run.id)}/candidates`, {step: step.id, candidate: typed, limit: 20});
      if (mine !== asked) return;
      matching = rows.filter((r) => !want || (want === "kept" ? r.accepted === true : r.accepted === false))
        .map((r) => ({id: r.candidate_id, accepted: r.accepted, reason: r.reason, score: r.score, rank: r.rank}));
      render();
      if (matching.length) status.textContent = "Not in the sample: its exact outcome at this step.";
    } catch (err) {
      if (mine === asked) status.textContent = `No recorded decision matches; looking it up failed: ${err.message}`;
    }
  };
  search.addEventListener("input", refilter);
  which.addEventListener("change", refilter);
  prev.addEventListener("click", () => { page--; render(); });
  next.addEventListener("click", () => { page++; render(); });
  render();
  const sampled = step.input_count !== null && all.length < step.input_count;
  return h("section", {class: "decisions"}, h("h3", {}, "Candidate decisions"),
    sampled ? h("p", {class: "muted"}, `A sample: ${fmt.count(all.length)} of ${fmt.count(step.input_count)} candidates were recorded.`) : null,
    h("div", {class: "inline"}, search, which),
    h("div", {class: "table-wrap"}, h("table", {class: "data", id: "decisions"},
      h("thead", {}, h("tr", {}, ["Candidate", "Outcome", "Reason", "Score", "Rank"].map((t) => h("th", {scope: "col"}, t)))),
      body)),
    h("div", {class: "pager"}, prev, status, next));
}

function decisionRow(run, d) {
  const kept = d.accepted === true;
  return h("tr", {"data-candidate": d.id ?? ""},
    h("td", {}, d.id === null || d.id === undefined ? "—"
      : h("a", {href: `#/runs/${seg(run.id)}/candidates/${seg(d.id)}`}, String(d.id))),
    h("td", {}, h("span", {class: `badge ${kept ? "kept" : d.accepted === false ? "dropped" : "unknown"}`},
      kept ? "kept" : d.accepted === false ? "dropped" : "—")),
    h("td", {}, d.reason ?? ""),
    h("td", {class: "num"}, d.score ?? ""),
    h("td", {class: "num"}, d.rank ?? ""));
}
