// One pipeline over time: each step's drop rate per bucket as lines, one step's reason mix per bucket as
// stacked bars, the changes GET /pipelines/{name}/changes found marked on the chart and listed; a bucket
// (a point's column) opens that bucket's runs. Every chart has a table of the same figures.

import {ApiError, get, seg} from "./api.js";
import {h, notice} from "./dom.js";
import {SERIES_STYLES, lineChart, stackedBars} from "./charts.js";
import * as fmt from "./format.js";
import {candidateFinder} from "./history.js";
import {changeList, changeText, changeValue, windowForm, windowOf, worstStep} from "./pipelines.js";

const TOP_REASONS = 5;
const BASELINE = "7d"; // what the window is compared with: the API's default

/** The chart shows the baseline and then the window, so the mark between them has a before and after. */
function chartSince(since) {
  const days = since.endsWith("h") ? Number.parseInt(since, 10) / 24 : Number.parseInt(since, 10);
  return `${Math.ceil(days) + Number.parseInt(BASELINE, 10)}d`;
}

export async function showPipeline(name, query) {
  const [since, label, bucket] = windowOf(query);
  const [summary, series, changes] = await Promise.all([
    get(`/pipelines/${seg(name)}`, {since}).then((r) => r.data),
    get(`/pipelines/${seg(name)}/series`, {since: chartSince(since), bucket, step: query.getAll("step")})
      .then((r) => r.data, unknown),
    get(`/pipelines/${seg(name)}/changes`, {window: since, baseline: BASELINE}).then((r) => r.data, unknown),
  ]);
  const path = `#/pipelines/${seg(name)}`;
  return h("section", {class: "pipeline"},
    h("p", {class: "crumbs"}, h("a", {href: `#/pipelines?since=${since}`}, "Pipelines"), " / "),
    h("h1", {}, name),
    windowForm(query, path),
    facts(summary, name, since, label),
    candidateTools(name, since),
    series ? charts(name, series, changes, summary, query, path)
      : notice("info", "The figures over time are unknown.", "This server does not answer GET /pipelines/{name}/series."),
    changeSection(changes));
}

/** Across runs: one candidate's history by id, and the candidates this pipeline drops most often. */
function candidateTools(name, since) {
  return h("div", {class: "toolbar candidate-tools"}, candidateFinder(name, {since}),
    h("a", {href: `#/pipelines/${seg(name)}/never-survives?since=${seg(since)}`, id: "never-link"},
      "Never survives: the candidates it drops most often"));
}

/** An endpoint a page can do without (absent on this server, refused): its part says unknown. */
function unknown(err) {
  if (err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 400) return null;
  throw err;
}

function facts(p, name, since, label) {
  const fact = (term, value) => h("div", {}, h("dt", {}, term), h("dd", {}, value));
  const runs = `#/runs?${new URLSearchParams({name, since})}`;
  return h("dl", {class: "facts", id: "pipeline-facts"},
    fact(`Runs (${label})`, h("a", {href: runs}, fmt.count(p.run_count))),
    fact("Failed", p.failed_count ? `${fmt.count(p.failed_count)} (${fmt.percent(p.failure_rate)})` : fmt.count(p.failed_count)),
    fact("Duration p50 / p95", `${fmt.duration(p.duration_ms && p.duration_ms.p50)} / ${fmt.duration(p.duration_ms && p.duration_ms.p95)}`),
    fact("Average cost", fmt.cost(p.avg_cost)),
    fact("Last run", fmt.time(p.last_run_at)));
}

/** The series answer's buckets as the charts take them: label, where a click goes, what it holds. */
export function bucketsOf(series, name) {
  const hourly = series.bucket === "hour";
  return (series.buckets || []).map((b) => {
    const start = new Date(b.start);
    const label = hourly
      ? start.toLocaleString(undefined, {month: "short", day: "numeric", hour: "2-digit", minute: "2-digit"})
      : start.toLocaleDateString(undefined, {month: "short", day: "numeric"});
    const runs = Number.isFinite(b.run_count) ? `${fmt.count(b.run_count)} run${b.run_count === 1 ? "" : "s"}` : "runs unknown";
    return {start: b.start, end: b.end, partial: !!b.partial, runCount: b.run_count,
            label: b.partial ? `${label} (part)` : label,
            href: `#/runs?${new URLSearchParams({name, since: b.start, until: b.end})}`,
            runs: b.failed_count ? `${runs}, ${fmt.count(b.failed_count)} failed` : runs};
  });
}

/** Steps with a drop rate somewhere in the series, each as a line of its mean drop rate per bucket. */
export function dropLines(series) {
  return (series.steps || []).map((st) => ({name: st.name, values: (st.points || []).map((p) =>
    (p && p.drop_rate && Number.isFinite(p.drop_rate.mean) ? p.drop_rate.mean : null))}))
    .filter((line) => line.values.some((v) => v !== null));
}

/** The bucket where the changes' window starts, marked with how many significant changes it holds. */
export function changeMarks(buckets, answer, changed) {
  const since = Date.parse((answer && answer.window && answer.window.since) || "");
  if (!buckets.length || Number.isNaN(since)) return [];
  const index = buckets.findIndex((b) => Date.parse(b.end) > since);
  if (index < 0) return [];
  const label = changed.length ? `⚑ ${changed.length} change${changed.length > 1 ? "s" : ""} from here` : "window";
  return [{index, label}];
}

function charts(name, series, changes, summary, query, path) {
  const buckets = bucketsOf(series, name);
  const lines = dropLines(series);
  const changed = changeList(changes).filter((c) => c.significant);
  const changedSteps = new Set(changed.map((c) => c.step));
  const shown = lines.slice(0, SERIES_STYLES).map((line) => ({...line, changed: changedSteps.has(line.name)}));
  if (!buckets.length) return notice("info", "No bucket in this window.");
  const noRuns = buckets.every((b) => !b.runCount);
  return h("div", {},
    h("section", {"aria-labelledby": "drop-h"}, h("h2", {id: "drop-h"}, "Drop rate by step"),
      noRuns ? notice("info", "No run started in this window.") : null,
      shown.length ? [
        lineChart({id: "drop-chart", title: lineSummary(name, shown, buckets, changed), marks: changeMarks(buckets, changes, changed),
                   lines: shown, buckets: buckets.map((b, i) => ({...b, summary: bucketSummary(b, shown, i)}))}),
        h("p", {class: "muted"}, "Choose a column to open that bucket's runs: from the keyboard, Tab to the chart, "
          + "move with the arrow keys, Home and End, and press Enter."),
        lines.length > shown.length ? h("p", {class: "muted"},
          `The first ${shown.length} of ${lines.length} steps with a drop rate are drawn; the table has them all.`) : null,
        dropTable(lines, buckets)]
        : h("p", {class: "muted"}, "No step recorded both candidate counts in this window, so no drop rate is known.")),
    reasonSection(name, series, buckets, summary, changed, query, path));
}

function lineSummary(name, lines, buckets, changed) {
  return `Mean drop rate of ${lines.length} steps of ${name} over ${buckets.length} buckets`
    + (changed.length ? `; ${changed.length} significant changes marked.` : ".");
}

function bucketSummary(b, lines, i) {
  const rates = lines.map((line) => `${line.name} ${line.values[i] === null ? "unknown" : fmt.percent(line.values[i])}`);
  return `${b.label}: ${b.runs}; ${rates.join(", ")}. Open its runs.`;
}

function dropTable(lines, buckets) {
  return h("details", {class: "chart-table"}, h("summary", {}, "Drop rates as a table"),
    h("div", {class: "table-wrap"}, h("table", {class: "data", id: "drop-table"},
      h("thead", {}, h("tr", {}, h("th", {scope: "col"}, "Bucket"), h("th", {scope: "col", class: "num"}, "Runs"),
        lines.map((line) => h("th", {scope: "col", class: "num"}, line.name)))),
      h("tbody", {}, buckets.map((b, i) => h("tr", {},
        h("th", {scope: "row"}, h("a", {href: b.href}, b.label)),
        h("td", {class: "num"}, b.runs),
        lines.map((line) => h("td", {class: "num"}, line.values[i] === null
          ? h("span", {class: "muted"}, "unknown") : fmt.percent(line.values[i])))))))));
}

/** The step whose reasons to stack: the one asked for, else a changed one, else the worst with reasons. */
function reasonStep(series, summary, changed, query) {
  const withReasons = (series.steps || []).filter((st) => (st.points || []).some((p) => p && Object.keys(p.rejections || {}).length));
  const names = withReasons.map((st) => st.name);
  const asked = query.get("reasons");
  const worst = worstStep((summary.steps || []).filter((st) => names.includes(st.name)));
  const pick = names.includes(asked) ? asked
    : (changed.find((c) => names.includes(c.step)) || {}).step || (worst && worst.step.name) || names[0];
  return {pick, steps: withReasons};
}

function reasonSection(name, series, buckets, summary, changed, query, path) {
  const {pick, steps} = reasonStep(series, summary, changed, query);
  const heading = h("h2", {id: "reasons-h"}, "Reason mix per bucket");
  if (!pick) return h("section", {"aria-labelledby": "reasons-h"}, heading,
    h("p", {class: "muted"}, "No step recorded rejection reasons in this window."));
  const step = steps.find((st) => st.name === pick);
  const stacks = (step.points || []).map((p) => (p && p.rejections && Object.keys(p.rejections).length ? p.rejections : null));
  const keys = topKeys(stacks);
  const select = h("select", {id: "reason-step"}, steps.map((st) => h("option", {value: st.name, selected: st.name === pick}, st.name)));
  const form = h("form", {class: "filters", onsubmit: (e) => {
    e.preventDefault();
    const next = new URLSearchParams(query);
    next.set("reasons", select.value);
    location.hash = `${path}?${next}`;
  }}, h("label", {class: "field", for: "reason-step"}, h("span", {}, "Step"), select),
  h("div", {class: "actions"}, h("button", {type: "submit"}, "Show its reasons")));
  return h("section", {"aria-labelledby": "reasons-h"}, heading, form,
    stackedBars({id: "reason-chart", buckets, stacks, keys,
                 title: `Share of each rejection reason of ${pick} per bucket; buckets without rejections are unknown.`}),
    reasonTable(buckets, stacks, keys));
}

/** The reasons with the most rejections over all buckets, biggest first. */
export function topKeys(stacks, n = TOP_REASONS) {
  const totals = new Map();
  for (const counts of stacks) {
    for (const [reason, count] of fmt.reasonsByCount(counts)) totals.set(reason, (totals.get(reason) || 0) + count);
  }
  return [...totals].sort((a, b) => b[1] - a[1]).slice(0, n).map(([reason]) => reason);
}

function reasonTable(buckets, stacks, keys) {
  return h("details", {class: "chart-table"}, h("summary", {}, "Reason counts as a table"),
    h("div", {class: "table-wrap"}, h("table", {class: "data", id: "reason-table"},
      h("thead", {}, h("tr", {}, h("th", {scope: "col"}, "Bucket"),
        [...keys, "other"].map((k) => h("th", {scope: "col", class: "num"}, k)))),
      h("tbody", {}, buckets.map((b, i) => h("tr", {},
        h("th", {scope: "row"}, h("a", {href: b.href}, b.label)),
        stacks[i] === null ? h("td", {class: "muted", colspan: keys.length + 1}, "unknown (no rejection recorded)")
          : [...keys.map((k) => h("td", {class: "num"}, fmt.count(stacks[i][k] || 0))),
             h("td", {class: "num"}, fmt.count(otherCount(stacks[i], keys)))]))))));
}

function otherCount(counts, keys) {
  return fmt.reasonsByCount(counts).filter(([reason]) => !keys.includes(reason)).reduce((sum, [, n]) => sum + n, 0);
}

function changeSection(changes) {
  const heading = h("h2", {id: "changes-h"}, "What changed");
  const section = (...parts) => h("section", {"aria-labelledby": "changes-h"}, heading, ...parts);
  if (changes === null) return section(h("p", {class: "muted"}, "Unknown: this server does not answer GET /pipelines/{name}/changes."));
  const all = changeList(changes);
  const sides = changes.window && changes.baseline
    ? h("p", {class: "muted"}, `The window from ${fmt.time(changes.window.since)} against the baseline from `
      + `${fmt.time(changes.baseline.since)} before it.`) : null;
  const significant = all.filter((c) => c.significant);
  const rest = all.filter((c) => !c.significant);
  return section(sides,
    significant.length ? changeItems(significant, "changes") : h("p", {}, "No significant change."),
    rest.length ? h("details", {}, h("summary", {}, `${fmt.count(rest.length)} comparisons not significant or with too little data`),
      changeItems(rest, "other-changes")) : null);
}

function changeItems(changes, id) {
  return h("ul", {class: "change-list", id}, changes.map((c) => h("li", {"data-step": c.step || "", "data-what": c.what},
    h("span", {class: `badge ${c.significant ? "dropped" : "unknown"}`},
      c.insufficient_data ? "too little data" : c.significant ? "significant" : "not significant"), " ",
    changeText(c), " ", figures(c),
    c.compare ? [" ", h("a", {href: compareHref(c.compare)}, "compare example runs")] : null)));
}

function figures(c) {
  const runs = c.runs ? ` over ${fmt.count(c.runs.baseline)} → ${fmt.count(c.runs.window)} runs` : "";
  const share = /_new|_gone/.test(c.what || "") ? " of runs" : "";
  return h("span", {class: "muted"}, `(baseline ${changeValue(c.what, c.baseline)} → window ${changeValue(c.what, c.window)}`
    + `${share}${runs}${Number.isFinite(c.p_adjusted) ? `, adjusted p ${c.p_adjusted}` : ""})`);
}

/** The API's compare link (/compare?base=…&other=…) as the UI's page for it. */
function compareHref(link) {
  const at = String(link).indexOf("?");
  return `#/compare${at >= 0 ? String(link).slice(at) : ""}`;
}
