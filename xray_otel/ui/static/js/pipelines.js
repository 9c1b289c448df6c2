// Pipelines: every pipeline over a window with its runs, failures, worst step, a trend line of that
// step's drop rate, and what changed (GET /changes) marked. Each figure a pipeline could not get (an
// endpoint this server lacks, a key that may not read it) is shown as unknown; the rest still shows.

import {ApiError, get, seg} from "./api.js";
import {h, notice} from "./dom.js";
import {sparkline} from "./charts.js";
import * as fmt from "./format.js";
import {go} from "./runs.js";

export const WINDOWS = [["24h", "last 24 hours", "hour"], ["7d", "last 7 days", "day"], ["30d", "last 30 days", "day"]];

/** The window the address names, or the first: [since, label, bucket]. */
export function windowOf(query) {
  return WINDOWS.find(([value]) => value === query.get("since")) || WINDOWS[0];
}

const SHOWN = 100;  // rows drawn; a name filter finds the others
const AT_ONCE = 6;  // pipelines whose details are read at the same time

export async function showPipelines(query) {
  const [since, , bucket] = windowOf(query);
  const wanted = (query.get("q") || "").trim();
  let list;
  try {
    ({data: list} = await get("/pipelines", {since, limit: 1000}));
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 400) throw err;
    return page(query, notice("error", "These pipelines cannot be listed.", err.message));
  }
  if (!list.pipelines.length) {
    return page(query, notice("info", `No run started in the ${windowOf(query)[1]}.`,
      h("a", {href: "#/pipelines?since=30d"}, "Look at the last 30 days"), h("a", {href: "#/runs"}, "Or all runs")));
  }
  const matching = list.pipelines.filter((p) => !wanted || p.name.toLowerCase().includes(wanted.toLowerCase()));
  const shown = matching.slice(0, SHOWN);
  const note = matching.length > shown.length
    ? h("p", {class: "muted", id: "pipelines-note"}, `The ${fmt.count(shown.length)} with the most runs of `
        + `${fmt.count(matching.length)}${list.pipelines.length >= 1000 ? " (or more)" : ""}; filter by name to find another.`)
    : !shown.length ? notice("info", `No pipeline name contains “${wanted}”.`) : null;
  const rows = shown.map((p) => pipelineRow(p, since));
  fillRows(rows, since, bucket);  // the table shows now; each row's details arrive as they are read
  return page(query, note, shown.length ? pipelineTable(rows) : null);
}

function page(query, ...parts) {
  return h("section", {class: "pipelines"}, h("h1", {}, "Pipelines"), windowForm(query, "#/pipelines", true), ...parts);
}

/** The window picker (and, with ``byName``, a name filter): a form that navigates, so the address holds it. */
export function windowForm(query, path, byName = false) {
  const [since] = windowOf(query);
  const select = h("select", {id: "window", name: "since"}, WINDOWS.map(([value, label]) =>
    h("option", {value, selected: value === since}, label)));
  const name = byName ? h("input", {type: "search", id: "pipeline-filter", value: query.get("q") || ""}) : null;
  return h("form", {class: "filters", onsubmit: (e) => {
    e.preventDefault();
    const next = new URLSearchParams(query);
    next.set("since", select.value);
    if (name) name.value.trim() ? next.set("q", name.value.trim()) : next.delete("q");
    go(`${path}?${next}`);
  }}, h("label", {class: "field", for: "window"}, h("span", {}, "Window"), select),
  name ? h("label", {class: "field", for: "pipeline-filter"}, h("span", {}, "Name contains"), name) : null,
  h("div", {class: "actions"}, h("button", {type: "submit"}, "Show")));
}

/** One pipeline's steps and series; each null when it could not be read (said in the row). */
async function pipelineDetail(name, since, bucket) {
  const [steps, series] = await Promise.all([
    get(`/pipelines/${seg(name)}`, {since}).then((r) => r.data.steps, orUnknown),
    get(`/pipelines/${seg(name)}/series`, {since, bucket}).then((r) => r.data, orUnknown),
  ]);
  return {steps, series};
}

/** A read a page can do without: gone, refused or missing is unknown; a server fault is still raised. */
function orUnknown(err) {
  if (err instanceof ApiError && err.status >= 400 && err.status < 500) return null;
  throw err;
}

/** Significant changes of every pipeline in the window, by pipeline; null when unknown. */
async function changesByPipeline(window) {
  const answer = await get("/changes", {window, limit: 1000}).then((r) => r.data, orUnknown);
  if (!answer) return null;
  const byName = new Map();
  for (const change of changeList(answer)) {
    if (!change.significant) continue;
    if (!byName.has(change.pipeline)) byName.set(change.pipeline, []);
    byName.get(change.pipeline).push(change);
  }
  return byName;
}

/** The entries of a changes answer, whether a bare list or {changes: [...]}. */
export function changeList(answer) {
  return Array.isArray(answer) ? answer : (answer && answer.changes) || [];
}

/**
 * The step that most needs a look: the highest failure rate when any step failed, else the highest
 * mean drop rate. {step, why} or null when no step has either figure.
 */
export function worstStep(steps) {
  const failing = (steps || []).filter((st) => st.count > 0 && st.failed_count > 0);
  if (failing.length) {
    const rate = (st) => st.failed_count / st.count;
    const step = failing.reduce((a, b) => (rate(b) > rate(a) ? b : a));
    return {step, why: `fails ${fmt.percent(rate(step), 0)} of its runs`};
  }
  const dropping = (steps || []).filter((st) => Number.isFinite(st.avg_drop_rate));
  if (!dropping.length) return null;
  const step = dropping.reduce((a, b) => (b.avg_drop_rate > a.avg_drop_rate ? b : a));
  return {step, why: `drops ${fmt.percent(step.avg_drop_rate, 0)} on average`};
}

/** A step's mean drop rate per bucket of a series answer (null where unknown). */
export function dropRates(series, stepName) {
  const step = series && (series.steps || []).find((st) => st.name === stepName);
  if (!step) return null;
  return (step.points || []).map((p) => (p && p.drop_rate && Number.isFinite(p.drop_rate.mean) ? p.drop_rate.mean : null));
}

const WHAT_WORDS = {drop_rate: "drop rate", reason_share: "share of", reason_new: "new reason", reason_gone: "reason gone:",
                    step_new: "new step", step_gone: "step gone", cost: "mean cost", duration: "median duration"};

/** A change in words: "filter_by_price: drop rate +30.0 pts", "rank: new reason low_score". */
export function changeText(change) {
  const what = [WHAT_WORDS[change.what] || change.what, change.reason].filter(Boolean).join(" ");
  const delta = Number.isFinite(change.delta) && !/_new|_gone/.test(change.what || "")
    ? ` ${change.delta > 0 ? "+" : "−"}${changeValue(change.what, Math.abs(change.delta), true)}` : "";
  return `${change.step || "(pipeline)"}: ${what}${delta}`;
}

/** A figure of a change in its unit: shares and rates in percent (points for a difference), cost, time. */
export function changeValue(what, value, difference = false) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "unknown";
  if (what === "cost") return fmt.cost(value);
  if (what === "duration") return fmt.duration(value);
  return difference ? `${(value * 100).toFixed(1)} pts` : fmt.percent(value);
}

function pipelineTable(rows) {
  return h("div", {class: "table-wrap"}, h("table", {class: "data", id: "pipelines-table"},
    h("caption", {class: "sr-only"}, "Pipelines with their runs, failures, worst step, its trend, and what changed"),
    h("thead", {}, h("tr", {}, ["Pipeline", "Runs", "Failed", "Worst step", "Trend", "What changed"].map((t) =>
      h("th", {scope: "col", class: ["Runs", "Failed"].includes(t) ? "num" : null}, t)))),
    h("tbody", {}, rows.map((r) => r.tr))));
}

/** A pipeline's row, its figures from the list; worst step, trend and changes are filled in later. */
function pipelineRow(p, since) {
  const runsLink = (extra = {}) => `#/runs?${new URLSearchParams({name: p.name, since, ...extra})}`;
  const waiting = () => h("td", {"aria-busy": "true"}, h("span", {class: "muted"}, "…"));
  const cells = {worst: waiting(), trend: waiting(), changes: waiting()};
  const tr = h("tr", {"data-pipeline": p.name},
    h("th", {scope: "row"}, h("a", {href: `#/pipelines/${seg(p.name)}?since=${since}`}, p.name)),
    h("td", {class: "num"}, h("a", {href: runsLink(), "aria-label": `${fmt.count(p.run_count)} runs of ${p.name}`},
      fmt.count(p.run_count))),
    h("td", {class: "num"}, p.failed_count
      ? h("a", {href: runsLink({status: "failed"}), class: "error-text"},
          `${fmt.count(p.failed_count)} (${fmt.percent(p.failure_rate)})`) : fmt.count(p.failed_count)),
    cells.worst, cells.trend, cells.changes);
  return {name: p.name, tr, cells};
}

function settle(cell, ...content) {
  cell.removeAttribute("aria-busy");
  cell.replaceChildren(...content);
}

/** Reads each row's details, AT_ONCE pipelines at a time, and the window's changes; a read that fails
 * leaves its cells saying unknown, never the page broken. */
async function fillRows(rows, since, bucket) {
  changesByPipeline(since).catch(() => null).then((changes) => {
    for (const r of rows) {
      const marked = changes ? changes.get(r.name) || [] : null;
      if (marked && marked.length) r.tr.classList.add("changed");
      settle(r.cells.changes, changeCell(marked));
    }
  });
  let next = 0;
  const worker = async () => {
    while (next < rows.length) {
      const r = rows[next++];
      const detail = await pipelineDetail(r.name, since, bucket).catch(() => ({steps: null, series: null}));
      const worst = worstStep(detail.steps);
      settle(r.cells.worst, ...(worst ? [worst.step.name, " ", h("span", {class: "muted"}, worst.why)]
        : [h("span", {class: "muted"}, detail.steps ? "no step figures" : "unknown")]));
      settle(r.cells.trend, worst ? trend(detail.series, worst.step.name) : h("span", {class: "muted"}, "unknown"));
    }
  };
  await Promise.all(Array.from({length: Math.min(AT_ONCE, rows.length)}, worker));
}

function trend(series, stepName) {
  const values = dropRates(series, stepName);
  if (!values) return h("span", {class: "muted"}, "unknown");
  return sparkline(values, {label: `${stepName} drop rate by ${series.bucket || "bucket"}`, top: 1});
}

function changeCell(marked) {
  if (marked === null) return h("span", {class: "muted", title: "this server does not answer GET /changes"}, "unknown");
  if (!marked.length) return h("span", {class: "muted"}, "no significant change");
  return h("ul", {class: "chips warn"}, marked.slice(0, 3).map((c) => h("li", {}, `⚑ ${changeText(c)}`)),
    marked.length > 3 ? h("li", {}, `+${marked.length - 3} more`) : null);
}
