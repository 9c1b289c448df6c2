// One candidate across a pipeline's runs (GET /pipelines/{name}/candidates/{id}): in how many of the runs
// read it appeared, its fate in each (newest first, each linking to that run's candidate page), and where
// the fate changed. The API answers a page of runs at a time, so the page says which runs it covers and
// reads older ones on "More runs"; its figures always cover exactly the runs shown.

import {ApiError, get, seg} from "./api.js";
import {h, notice, replace} from "./dom.js";
import * as fmt from "./format.js";
import {WINDOWS, windowForm} from "./pipelines.js";

const DEFAULT_SINCE = "7d"; // the API's default window
const PAGE = 50; // runs with the candidate per page, unless the address says `limit`

/** The window the address names (one of the presets), else the API's 7 days: [since, label]. */
export function windowOfHistory(query) {
  return WINDOWS.find(([value]) => value === query.get("since")) || WINDOWS.find(([value]) => value === DEFAULT_SINCE);
}

/** The address with its window made explicit, so the window picker shows the window read. */
export function withWindow(query) {
  const next = new URLSearchParams(query);
  next.set("since", windowOfHistory(query)[0]);
  return next;
}

export function historyHref(name, candidateId, since) {
  return `#/pipelines/${seg(name)}/candidates/${seg(candidateId)}${since ? `?since=${seg(since)}` : ""}`;
}

/** "Find a candidate": an id opens its history in this pipeline. */
export function candidateFinder(name, {since = "", value = ""} = {}) {
  const input = h("input", {type: "search", id: "find-candidate", value, required: true, placeholder: "candidate id",
                            autocomplete: "off"});
  return h("form", {class: "inline finder", role: "search", onsubmit: (e) => {
    e.preventDefault();
    location.hash = historyHref(name, input.value.trim(), since);
  }}, h("label", {for: "find-candidate"}, "Find a candidate"), input, h("button", {type: "submit"}, "Show its history"));
}

export async function showHistory(name, candidateId, query) {
  const [since, label] = windowOfHistory(query);
  const url = `/pipelines/${seg(name)}/candidates/${seg(candidateId)}`;
  const params = {since, limit: query.get("limit") || PAGE};
  const head = [
    h("p", {class: "crumbs"}, h("a", {href: `#/pipelines?since=${seg(since)}`}, "Pipelines"), " / ",
      h("a", {href: `#/pipelines/${seg(name)}?since=${seg(since)}`}, name), " / "),
    h("h1", {}, "Candidate ", h("code", {}, candidateId), " across runs"),
    h("div", {class: "toolbar history-tools"}, windowForm(withWindow(query), `#/pipelines/${seg(name)}/candidates/${seg(candidateId)}`),
      candidateFinder(name, {since, value: candidateId})),
  ];
  let first;
  try {
    first = await get(url, params);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 400) throw err;
    return h("section", {class: "history"}, head, notice("error", "This history cannot be read.", err.message));
  }
  const history = new History(name, candidateId, since, label);
  history.add(first.data);
  const pager = h("div", {class: "pager"});
  const more = h("button", {type: "button", class: "secondary", id: "more-runs", onclick: async () => {
    more.disabled = true;
    pager.querySelector(".pager-error")?.remove();
    try {
      const older = history.add((await get(url, {...params, cursor: history.next})).data);
      history.render();
      const firstNew = history.list.querySelector(`li[data-index="${older}"]`);
      if (firstNew) firstNew.focus();
    } catch (err) {
      pager.append(h("p", {class: "pager-error error-text", role: "alert"}, "The older runs could not be read: ", err.message));
    }
    more.disabled = false;
  }}, "More runs (older)");
  pager.append(more);
  history.more = more;
  history.render();
  return h("section", {class: "history"}, head, history.coverage, history.summary,
    h("h2", {id: "timeline-h"}, "Run by run, newest first"), history.list, history.empty, pager);
}

/** The pages read so far, and what they say together. */
class History {
  constructor(name, candidateId, since, label) {
    Object.assign(this, {name, candidateId, since, label});
    this.runs = [];
    this.pages = [];
    this.changes = new Map(); // run id → the fate it changed from
    this.next = null;
    this.coverage = h("p", {class: "notice coverage", id: "history-coverage", role: "status"});
    this.summary = h("dl", {class: "facts", id: "history-summary"});
    this.list = h("ol", {class: "timeline", id: "history-runs", "aria-labelledby": "timeline-h"});
    this.empty = h("p", {class: "muted", id: "history-empty"});
  }

  /** Take one page of the answer; returns the index of its first run among all. */
  add(answer) {
    const runs = Array.isArray(answer && answer.runs) ? answer.runs.filter(Boolean) : [];
    const summary = (answer && answer.summary) || {};
    const at = this.runs.length;
    const before = this.runs[at - 1];
    if (before && runs.length && !sameFate(fateOf(before), fateOf(runs[0]))) {
      this.changes.set(runId(before), fateOf(runs[0])); // across the pages' seam
    }
    for (const change of Array.isArray(summary.changes) ? summary.changes : []) {
      if (change && change.run_id) this.changes.set(String(change.run_id), change.from || {});
    }
    this.runs.push(...runs);
    this.pages.push(summary);
    this.next = (answer && answer.next_cursor) || null;
    return at;
  }

  render() {
    replace(this.coverage, coverageText(this));
    replace(this.summary, summaryFacts(this));
    replace(this.list, this.runs.map((entry, i) => runItem(this, entry, i)));
    this.list.hidden = !this.runs.length;
    replace(this.empty, this.runs.length ? "" : `${this.candidateId} appears in none of the runs read.`);
    this.empty.hidden = !!this.runs.length;
    if (this.more) this.more.hidden = !this.next;
  }

  read() {
    const counted = this.pages.every((s) => Number.isFinite(s.runs_read));
    const dated = this.pages.filter((s) => s.read_until || s.read_from);
    return {runs: counted ? this.pages.reduce((total, s) => total + s.runs_read, 0) : null, from: dated.length ? dated[dated.length - 1].read_from : null,
            until: dated.length ? dated[0].read_until : null};
  }
}

function runId(entry) {
  return String((entry.run && entry.run.id) || "");
}

/** outcome kept | dropped | unknown (anything else is unknown), and where it left. */
function fateOf(entry) {
  const outcome = ["kept", "dropped"].includes(entry.outcome) ? entry.outcome : "unknown";
  const left = entry.left_at || {};
  return {outcome, step: left.step ?? null, reason: left.reason ?? null};
}

function sameFate(a, b) {
  return a.outcome === b.outcome && a.step === b.step && a.reason === b.reason;
}

function coverageText(history) {
  const read = history.read();
  if (read.runs === null) return "Which runs this page covers is unknown: the answer did not say how many it read.";
  const runs = `${fmt.count(read.runs)} run${read.runs === 1 ? "" : "s"}`;
  if (!read.runs) return `No run of ${history.name} started in the ${history.label}, so nothing is known about this candidate there.`;
  const span = read.from && read.until ? ` that started from ${fmt.time(read.from)} to ${fmt.time(read.until)}` : "";
  const rest = history.next
    ? ` Older runs of the ${history.label} are not read yet: “More runs” reads them, and these figures grow with them.`
    : ` That is every run of the ${history.label}.`;
  return [`This page covers the ${runs} of ${history.name}${span}, newest first.`, rest];
}

function summaryFacts(history) {
  const read = history.read();
  const count = (key) => history.runs.filter((e) => fateOf(e).outcome === key).length;
  const fact = (term, value, id) => h("div", {id}, h("dt", {}, term), h("dd", {}, value));
  const places = new Map();
  for (const entry of history.runs) {
    const fate = fateOf(entry);
    if (fate.outcome !== "dropped") continue;
    const key = JSON.stringify([fate.step, fate.reason]);
    places.set(key, (places.get(key) || 0) + 1);
  }
  const left = [...places].sort((a, b) => b[1] - a[1]).map(([key, n]) => {
    const [step, reason] = JSON.parse(key);
    return h("li", {}, h("strong", {}, step || "an unnamed step"), reason ? ` (${reason})` : " (no reason recorded)",
      `: ${fmt.count(n)} run${n === 1 ? "" : "s"}`);
  });
  return [
    fact("Appeared in", read.runs === null ? `${fmt.count(history.runs.length)} runs (how many were read is unknown)`
      : `${fmt.count(history.runs.length)} of ${fmt.count(read.runs)} runs read`, "fact-appeared"),
    fact("Kept / dropped / unknown", `${fmt.count(count("kept"))} / ${fmt.count(count("dropped"))} / ${fmt.count(count("unknown"))}`,
      "fact-outcomes"),
    fact("Fate changed", `${fmt.count(history.changes.size)} time${history.changes.size === 1 ? "" : "s"}`, "fact-changes"),
    h("div", {class: "wide", id: "fact-left"}, h("dt", {}, "Where it left"),
      h("dd", {}, left.length ? h("ul", {class: "left-list"}, left) : "Dropped in none of the runs read.")),
  ];
}

function runItem(history, entry, index) {
  const fate = fateOf(entry);
  const run = entry.run || {};
  const id = runId(entry);
  const changed = history.changes.get(id);
  return h("li", {class: `fate ${fate.outcome}${changed ? " changed" : ""}`, tabindex: "-1", "data-index": index,
                  "data-run-id": id, "data-outcome": fate.outcome},
    h("div", {class: "fate-head"},
      h("time", {datetime: run.started_at || "", title: run.started_at || ""}, fmt.time(run.started_at)), " ",
      h("span", {class: `badge ${fate.outcome}`}, fate.outcome), " ",
      run.status ? h("span", {class: "type"}, `run ${fmt.status(run.status)}`) : null),
    changed ? h("p", {class: "change-mark"}, h("strong", {}, "⚑ Fate changed"), ` from ${fateWords(changed)} in the run before.`) : null,
    h("p", {class: "fate-text"}, fateSentence(fate, entry.why)),
    id ? h("a", {href: `#/runs/${seg(id)}/candidates/${seg(history.candidateId)}`},
      "Its path through run ", h("code", {}, fmt.clip(id, 13))) : h("span", {class: "muted"}, "run id not recorded"));
}

function fateSentence(fate, why) {
  if (fate.outcome === "kept") return "Kept: no step dropped it.";
  if (fate.outcome === "dropped") {
    return ["Dropped at ", h("strong", {}, fate.step || "an unnamed step"),
      fate.reason ? [" because ", h("strong", {}, fate.reason)] : " (no reason recorded)", "."];
  }
  return ["Unknown: ", why || "the run's record of it is incomplete", "."];
}

/** A fate in a few words: "kept", "dropped at filter (price_too_high)", "unknown". */
function fateWords(fate) {
  if (!fate || fate.outcome !== "dropped") return (fate && fate.outcome) || "unknown";
  return `dropped at ${fate.step || "an unnamed step"}${fate.reason ? ` (${fate.reason})` : ""}`;
}
