// Two runs' funnels side by side, aligned per candidate stream and step name, with what changed marked.

import {ApiError, get, seg} from "./api.js";
import {PagedRows, h, notice} from "./dom.js";
import * as fmt from "./format.js";
import {funnelChart, funnelTop, streamTitle} from "./funnel.js";
import {badge} from "./runs.js";

export async function showCompare(query) {
  const base = query.get("base") || "";
  const other = query.get("other") || "";
  const form = pickForm(base, other);
  if (!base || !other) {
    return h("section", {class: "compare"}, h("h1", {}, "Compare two runs"), form,
      notice("info", "Give two run ids.", "Or tick two runs in the runs list and press “Compare 2 selected”."));
  }
  let data;
  try {
    ({data} = await get("/compare", {base, other}));
  } catch (err) {
    if (!(err instanceof ApiError) || ![400, 404].includes(err.status)) throw err;
    return h("section", {class: "compare"}, h("h1", {}, "Compare two runs"), form,
      notice("error", err.status === 404 ? "One of these runs does not exist." : "These ids cannot be compared.",
             err.message, h("a", {href: "#/runs"}, "Pick two runs from the runs list")));
  }
  return h("section", {class: "compare"}, h("h1", {}, "Compare two runs"), form,
    summary(data), funnels(data), steps(data));
}

function pickForm(base, other) {
  const field = (id, label, value) => h("label", {class: "field"}, h("span", {}, label),
    h("input", {id, name: id, value, required: true, placeholder: "run id"}));
  return h("form", {class: "filters", onsubmit: (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    location.hash = `#/compare?base=${seg(f.get("base").trim())}&other=${seg(f.get("other").trim())}`;
  }}, field("base", "Base run", base), field("other", "Other run", other),
  h("div", {class: "actions"}, h("button", {type: "submit"}, "Compare")));
}

function summary(data) {
  const s = data.summary;
  const runCell = (run) => h("div", {}, h("a", {href: `#/runs/${seg(run.id)}`}, run.name || run.id), " ", badge(run.status),
    h("div", {class: "muted"}, fmt.time(run.started_at)));
  const row = (label, pair, format, changed = pair.base !== pair.other) => h("tr", {class: changed ? "changed" : null},
    h("th", {scope: "row"}, label), h("td", {}, format(pair.base)), h("td", {}, format(pair.other)));
  const out = (v) => (v === null || v === undefined ? "—" : JSON.stringify(v));
  const div = data.first_divergence;
  return h("section", {},
    div ? h("p", {class: "verdict dropped", id: "divergence"}, "First difference at ", h("strong", {}, div.name),
      div.occurrence > 1 ? ` (occurrence ${div.occurrence})` : "",
      several(data) && div.funnel ? ` in funnel ${div.funnel}` : "", ": ", div.changed.join(", "), ".")
      : h("p", {class: "verdict kept", id: "divergence"}, "The two funnels match step for step."),
    h("div", {class: "table-wrap"}, h("table", {class: "data", id: "compare-summary"},
      h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {scope: "col"}, "Base"), h("th", {scope: "col"}, "Other"))),
      h("tbody", {},
        h("tr", {}, h("th", {scope: "row"}, "Run"), h("td", {}, runCell(data.base)), h("td", {}, runCell(data.other))),
        several(data) ? row("Funnels", {base: sideFunnels(data, "base"), other: sideFunnels(data, "other")}, String) : null,
        row(several(data) ? "Candidates in (main funnel)" : "Candidates in", s.initial_candidates, fmt.count),
        row(several(data) ? "Final count (main funnel)" : "Final count", s.final_count, fmt.count),
        row("Steps", s.step_count, fmt.count),
        row("Cost", s.total_cost, fmt.cost),
        row("Final outputs", s.final_outputs, out, s.outputs_changed)))));
}

/** Whether either run holds several candidate streams. */
function several(data) {
  return (data.funnels || []).length > 1;
}

/** One run's funnels in a cell: "titles: 6 → 1; bullets: 8 → 5". */
function sideFunnels(data, key) {
  const own = data.funnels.map((f) => f[key]).filter(Boolean);
  return own.length ? own.map(streamTitle).join("; ") : "—";
}

/** Each run's funnels, drawn as on its run page, next to the other's: one pair per aligned stream, on one scale. */
function funnels(data) {
  const pairs = (data.funnels || []).length ? data.funnels : [{name: null, base: null, other: null}];
  const pair = (p, i) => {
    const sides = (key) => data.steps.filter((st) => st[key] && st.funnel === p.name).map((st) => ({...st[key], name: st.name}));
    const top = Math.max(funnelTop(sides("base")), funnelTop(sides("other")));
    const chart = (key) => {
      const run = data[key];
      const funnel = sides(key);
      const biggest = funnel.reduce((best, f) => ((f.dropped || 0) > ((best && best.dropped) || 0) ? f : best), null);
      const own = p[key] || {};
      const analysis = {funnel, summary: {
        initial_candidates: pairs.length > 1 ? own.initial_candidates : data.summary.initial_candidates[key],
        final_count: pairs.length > 1 ? own.final_count : data.summary.final_count[key],
        biggest_drop: biggest && {...biggest, step: biggest.name}}};
      const open = (stepId) => { location.hash = `#/runs/${seg(run.id)}?step=${seg(stepId)}`; };
      return h("div", {"data-side": key}, h(pairs.length > 1 ? "h4" : "h3", {}, key === "base" ? "Base" : "Other", ": ", run.name || run.id),
        p[key] || !p.name ? funnelChart(analysis, open, {id: `funnel-${key}-${i}`, top, compact: true})
          : h("p", {class: "muted"}, "This funnel is not in this run."));
    };
    return h("div", {class: "stream", "data-funnel": p.name},
      pairs.length > 1 ? h("h3", {}, `Funnel ${p.name}`) : null,
      h("div", {class: "side-by-side"}, chart("base"), chart("other")));
  };
  return h("section", {"aria-labelledby": "funnels-h"}, h("h2", {id: "funnels-h"}, "Funnels"),
    h("div", {id: "compare-funnels"}, pairs.map(pair)));
}

const STEP_PAGE = 200;

function steps(data) {
  const side = (f) => (f ? [
    h("td", {class: "num"}, `${fmt.count(f.input_count)} → ${fmt.count(f.output_count)}`),
    h("td", {class: "num"}, fmt.percent(f.drop_rate)),
    h("td", {}, reasons(f.rejections)),
  ] : [h("td", {colspan: 3, class: "muted"}, "not in this run")]);
  const rows = new PagedRows(data.steps, (st) => stepRow(st, side, several(data)), STEP_PAGE);
  const changedOnly = h("input", {type: "checkbox", id: "changed-only", onchange: () => {
    rows.reset(changedOnly.checked ? data.steps.filter((st) => st.changed.length) : data.steps);
  }});
  const changedCount = data.steps.filter((st) => st.changed.length).length;
  return h("section", {}, h("h2", {}, several(data) ? "Steps, aligned per funnel by name" : "Steps, aligned by name"),
    h("p", {class: "inline"}, changedOnly,
      h("label", {for: "changed-only"}, `Only the ${fmt.count(changedCount)} changed of ${fmt.count(data.steps.length)} steps`)),
    h("div", {class: "table-wrap"}, h("table", {class: "data", id: "compare-steps"},
      h("thead", {},
        h("tr", {}, h("th", {rowspan: 2, scope: "col"}, "Step"), h("th", {colspan: 3, scope: "colgroup"}, "Base"),
          h("th", {colspan: 3, scope: "colgroup"}, "Other"), h("th", {rowspan: 2, scope: "col"}, "Changed")),
        h("tr", {}, ["In → out", "Drop", "Reasons", "In → out", "Drop", "Reasons"].map((t) => h("th", {scope: "col"}, t)))),
      rows.body)),
    rows.more);
}

function stepRow(st, side, labelled) {
  return h("tr", {"data-step": st.name, "data-funnel": st.funnel, class: st.changed.length ? "changed" : null},
    h("th", {scope: "row"}, st.name, st.occurrence > 1 ? ` #${st.occurrence}` : "",
      labelled && st.funnel ? h("span", {class: "funnel-tag"}, st.funnel) : null),
    side(st.base), side(st.other),
    h("td", {}, st.changed.length ? h("ul", {class: "chips warn"}, st.changed.map((c) => h("li", {}, c))) : "—"));
}

function reasons(counts) {
  const entries = fmt.reasonsByCount(counts);
  return entries.length ? entries.map(([r, n]) => `${r} ${fmt.count(n)}`).join(", ") : "—";
}
