// Runs: newest first, filtered by name, status, tag and time; paged by the API's cursor.

import {ApiError, get} from "./api.js";
import {h, notice} from "./dom.js";
import * as fmt from "./format.js";

const PAGE = 50;
const WINDOWS = [["", "any time"], ["1h", "last hour"], ["24h", "last 24 hours"], ["7d", "last 7 days"],
                 ["30d", "last 30 days"]];
const FILTERS = ["q", "name", "status", "tag", "since", "until"];

export async function showRuns(query) {
  const params = {limit: PAGE, cursor: query.get("cursor"), sort: query.get("sort")};
  for (const name of FILTERS) params[name] = name === "tag" ? tags(query.get("tag")) : query.get(name);
  let runs, next;
  try {
    ({data: runs, next} = await get("/runs", params));
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 400) throw err;
    return h("section", {class: "runs"}, h("h1", {}, "Runs"), filterForm(query),
      notice("error", "These filters cannot be used.", err.message));
  }
  const filtered = FILTERS.some((name) => query.get(name));
  return h("section", {class: "runs"},
    h("h1", {}, "Runs"),
    filterForm(query),
    runs.length ? runTable(runs, query) : empty(filtered, query.get("cursor")),
    pager(query, next));
}

// Cursors of the pages before this one, so "Newer" steps back without leaving the app.
const newer = [];

/** "env:prod team:search" → ["env:prod", "team:search"]. */
export function tags(text) {
  return (text || "").split(/[\s,]+/).filter(Boolean);
}

function filterForm(query) {
  const field = (name, label, input) => h("label", {class: "field"}, h("span", {}, label), input);
  const text = (name, placeholder) => h("input", {name, type: "search", value: query.get(name) || "", placeholder});
  const select = (name, options) => h("select", {name}, options.map(([value, label]) =>
    h("option", {value, selected: (query.get(name) || "") === value}, label)));
  const since = query.get("since") || "";
  const preset = WINDOWS.some(([value]) => value === since);
  const when = (name, value) => h("input", {name, type: "datetime-local", value: localInput(value)});
  return h("form", {class: "filters", role: "search", onsubmit: (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    const next = new URLSearchParams();
    for (const name of ["q", "name", "status", "tag"]) if (form.get(name).trim()) next.set(name, form.get(name).trim());
    if (query.get("sort")) next.set("sort", query.get("sort"));
    const start = form.get("from") ? isoOf(form.get("from")) : form.get("since");
    if (start) next.set("since", start);
    if (form.get("to")) next.set("until", isoOf(form.get("to")));
    go(`#/runs?${next}`);
  }},
    field("q", "Name contains", text("q", "e.g. competitor")),
    field("name", "Pipeline (exact name)", text("name", "")),
    field("status", "Status", select("status", [["", "any"], ["running", "running"], ["completed", "completed"],
                                                ["failed", "failed"]])),
    field("tag", "Tags (key:value)", text("tag", "e.g. env:prod")),
    field("since", "Started", select("since", WINDOWS)),
    field("from", "or from", when("from", preset ? "" : since)),
    field("to", "to", when("to", query.get("until"))),
    h("div", {class: "actions"},
      h("button", {type: "submit"}, "Apply"),
      h("a", {href: "#/runs", class: "button secondary"}, "Clear"),
      h("button", {type: "button", class: "secondary", onclick: () => go(location.hash)}, "Refresh")));
}

/** A datetime-local value (the browser's zone) as an ISO time the API takes. */
export function isoOf(local) {
  return new Date(local).toISOString();
}

/** An ISO time as a datetime-local value in the browser's zone ("" when absent or not a time). */
export function localInput(iso) {
  const t = Date.parse(iso || "");
  if (Number.isNaN(t)) return "";
  return new Date(t - new Date(t).getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

/** Navigate, or reload the page when the address is already this one. */
export function go(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}

// Columns the API sorts by (GET /runs?sort=…): newest first unless the user picks another.
const SORTS = {Started: "started_at", Duration: "duration", Steps: "step_count", Cost: "cost"};

/** A column header that sorts by it: descending first, ascending on a second press. */
function sortHeader(label, query) {
  const key = SORTS[label];
  const current = query.get("sort") || "-started_at";
  const state = current === `-${key}` ? "descending" : current === key ? "ascending" : "none";
  const next = new URLSearchParams(query);
  next.delete("cursor");
  next.set("sort", state === "descending" ? key : `-${key}`);
  return h("th", {scope: "col", class: label === "Started" ? null : "num", "aria-sort": state},
    h("a", {href: `#/runs?${next}`, class: "sort", title: `Sort by ${label.toLowerCase()}`},
      label, state === "none" ? "" : state === "descending" ? " ▼" : " ▲"));
}

function runTable(runs, query) {
  const picked = new Set();
  const compare = h("button", {type: "button", disabled: true, onclick: () => {
    const [base, other] = picked;
    location.hash = `#/compare?base=${encodeURIComponent(base)}&other=${encodeURIComponent(other)}`;
  }}, "Compare 2 selected");
  const pick = (id) => (e) => {
    e.target.checked ? picked.add(id) : picked.delete(id);
    compare.disabled = picked.size !== 2;
  };
  return h("div", {},
    h("div", {class: "table-wrap"}, h("table", {class: "data", id: "runs-table"},
      h("thead", {}, h("tr", {},
        h("th", {scope: "col"}, h("span", {class: "sr-only"}, "Select")),
        ["Name", "Status", "Started", "Duration", "Steps", "Cost", "Tags"].map((t) => (t in SORTS
          ? sortHeader(t, query) : h("th", {scope: "col"}, t))))),
      h("tbody", {}, runs.map((run) => h("tr", {"data-run-id": run.id},
        h("td", {}, h("input", {type: "checkbox", "aria-label": `Select ${run.name || run.id} to compare`,
                                onchange: pick(run.id)})),
        h("td", {}, h("a", {href: `#/runs/${encodeURIComponent(run.id)}`}, run.name || run.id),
          run.error ? h("div", {class: "error-text"}, run.error) : null),
        h("td", {}, badge(run.status)),
        h("td", {title: run.started_at || ""}, fmt.time(run.started_at)),
        h("td", {class: "num"}, fmt.duration(run.duration_ms)),
        h("td", {class: "num"}, fmt.count(run.step_count)),
        h("td", {class: "num"}, fmt.cost(run.total_cost)),
        h("td", {}, tagChips(run.tags))))))),
    h("p", {class: "toolbar"}, compare, h("span", {class: "muted"}, " Tick two runs to compare their funnels.")));
}

export function badge(status) {
  return h("span", {class: `badge ${fmt.status(status)}`}, fmt.status(status));
}

function tagChips(tags) {
  const entries = Object.entries(tags || {});
  return entries.length ? h("ul", {class: "chips"}, entries.map(([k, v]) => h("li", {}, `${k}: ${v}`))) : "";
}

function empty(filtered, paged) {
  if (paged) return notice("info", "No more runs.", h("a", {href: "#/runs"}, "Back to the newest runs"));
  if (filtered) {
    return notice("info", "No run matches these filters.", h("a", {href: "#/runs"}, "Clear the filters"));
  }
  return notice("info", "No runs yet.",
    "Point your application's exporter here: OTEL_EXPORTER_OTLP_ENDPOINT=" + location.origin,
    "Or load an example pipeline now: run `xray-otel demo --url " + location.origin + "`, then refresh.");
}

function pager(query, next) {
  const at = (cursor) => {
    const q = new URLSearchParams(query);
    if (cursor) q.set("cursor", cursor);
    else q.delete("cursor");
    return `#/runs?${q}`;
  };
  const cursor = query.get("cursor") || "";
  while (newer.length && newer[newer.length - 1].after !== cursor) newer.pop(); // another filter or a shared link
  const links = [];
  if (cursor) {
    const before = newer.length ? newer[newer.length - 1].cursor : "";
    links.push(h("a", {href: at(before), class: "button secondary", onclick: () => newer.pop()}, "← Newer"));
    if (before) links.push(h("a", {href: at(""), class: "button secondary"}, "Newest"));
  }
  if (next) {
    links.push(h("a", {href: at(next), class: "button secondary", rel: "next",
                       onclick: () => newer.push({cursor, after: next})}, "Older →"));
  }
  return links.length ? h("nav", {class: "pager", "aria-label": "Pages"}, links) : null;
}
