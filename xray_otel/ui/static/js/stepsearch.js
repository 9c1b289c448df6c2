// Step search: one question across every pipeline, e.g. "every run where a filter step eliminated
// more than 90%", as a form over GET /steps. The form lives in the address (API units: drop rates as
// fractions), so a search can be shared and Back returns to the one before.

import {ApiError, get, seg} from "./api.js";
import {h, notice} from "./dom.js";
import * as fmt from "./format.js";
import {go, isoOf, localInput, tags} from "./runs.js";

const PAGE = 50;
const TYPES = ["", "filter", "llm", "retrieval", "rank", "logic"];
const WINDOWS = [["", "any time"], ["1h", "last hour"], ["24h", "last 24 hours"], ["7d", "last 7 days"],
                 ["30d", "last 30 days"]];
const SORTS = [["-started_at", "newest first"], ["-drop_rate", "highest drop rate"], ["-input_count", "most candidates"],
               ["-cost", "most expensive"], ["-duration", "slowest"]];
const TEXT = ["type", "name", "run_name", "reason"]; // passed to the API as typed
const RATES = ["min_drop_rate", "max_drop_rate"]; // fractions in the address, percentages in the form
const FILTERS = [...TEXT, ...RATES, "tag", "since", "until"];

export async function showStepSearch(query) {
  const form = searchForm(query);
  const asked = FILTERS.some((name) => query.get(name));
  if (!asked) {
    return page(form, notice("info", "Ask a question across every pipeline.",
      "For example: type “filter” and drop rate at least 90% lists every run where a filter step eliminated "
      + "more than 90% of its candidates.",
      h("a", {href: "#/steps?type=filter&min_drop_rate=0.9&sort=-drop_rate"}, "Show me that search")));
  }
  const params = {limit: PAGE, cursor: query.get("cursor"), sort: query.get("sort") || "-started_at"};
  for (const name of FILTERS) params[name] = name === "tag" ? tags(query.get("tag")) : query.get(name);
  let hits, next;
  try {
    ({data: hits, next} = await get("/steps", params));
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 400) throw err;
    return page(form, notice("error", "This search cannot be run.", err.message));
  }
  return page(form,
    hits.length ? results(hits, query) : notice("info", query.get("cursor") ? "No more steps." : "No step matches.",
      "Widen the drop rate or the time, or leave a field empty to ignore it."),
    nextLink(query, next));
}

function page(...parts) {
  return h("section", {class: "step-search"}, h("h1", {}, "Step search"), ...parts);
}

function searchForm(query) {
  const field = (name, label, input, hint) => h("label", {class: "field"}, h("span", {}, label), input,
    hint ? h("small", {}, hint) : null);
  const text = (name, attrs = {}) => h("input", {name, type: "search", value: query.get(name) || "", ...attrs});
  const rate = (name) => h("input", {name, type: "number", min: 0, max: 100, step: "any", inputmode: "decimal",
                                      value: percentOf(query.get(name)), placeholder: "%"});
  const since = query.get("since") || "";
  const preset = WINDOWS.some(([value]) => value === since);
  return h("form", {class: "filters", role: "search", "aria-label": "Step search", onsubmit: (e) => {
    e.preventDefault();
    go(`#/steps?${formQuery(new FormData(e.target))}`);
  }},
    field("type", "Step type", text("type", {list: "step-types", placeholder: "any"})),
    h("datalist", {id: "step-types"}, TYPES.filter(Boolean).map((t) => h("option", {value: t}))),
    field("min_drop_rate", "Drop rate at least (%)", rate("min_drop_rate")),
    field("max_drop_rate", "Drop rate at most (%)", rate("max_drop_rate")),
    field("reason", "Rejection reason", text("reason", {placeholder: "exact, e.g. price_too_high"})),
    field("name", "Step name", text("name", {placeholder: "exact"})),
    field("run_name", "Pipeline", text("run_name", {placeholder: "exact"})),
    field("tag", "Run tags (key:value)", text("tag", {placeholder: "e.g. env:prod"})),
    field("since", "Started", h("select", {name: "since"}, WINDOWS.map(([value, label]) =>
      h("option", {value, selected: (preset ? since : "") === value}, label)))),
    field("from", "or from", h("input", {name: "from", type: "datetime-local", value: preset ? "" : localInput(since)})),
    field("to", "to", h("input", {name: "to", type: "datetime-local", value: localInput(query.get("until"))})),
    field("sort", "Order", h("select", {name: "sort"}, SORTS.map(([value, label]) =>
      h("option", {value, selected: (query.get("sort") || "-started_at") === value}, label)))),
    h("div", {class: "actions"},
      h("button", {type: "submit"}, "Search"),
      h("a", {href: "#/steps", class: "button secondary"}, "Clear")));
}

/** The form's fields as the address's query: API names and units, empty fields left out. */
export function formQuery(form) {
  const next = new URLSearchParams();
  for (const name of [...TEXT, "tag"]) {
    const value = (form.get(name) || "").trim();
    if (value) next.set(name, value);
  }
  for (const name of RATES) {
    const value = (form.get(name) || "").trim();
    if (value) next.set(name, String(Number(value) / 100));
  }
  const start = form.get("from") ? isoOf(form.get("from")) : form.get("since");
  if (start) next.set("since", start);
  if (form.get("to")) next.set("until", isoOf(form.get("to")));
  if (form.get("sort") && form.get("sort") !== "-started_at") next.set("sort", form.get("sort"));
  return next;
}

/** "0.9" → "90" for the form; what is not a number is shown as given, for the API to refuse by name. */
function percentOf(fraction) {
  if (!fraction) return "";
  const n = Number(fraction);
  return Number.isFinite(n) ? String(Math.round(n * 1e6) / 1e4) : fraction;
}

function results(hits, query) {
  return h("div", {class: "table-wrap"}, h("table", {class: "data", id: "step-hits"},
    h("caption", {class: "sr-only"}, "Steps that match, each linking to its run at that step"),
    h("thead", {}, h("tr", {}, ["Pipeline", "Step", "Candidates", "Drop rate", "Top reasons", "Started"].map((t) =>
      h("th", {scope: "col", class: ["Candidates", "Drop rate"].includes(t) ? "num" : null}, t)))),
    h("tbody", {}, hits.map((hit) => h("tr", {"data-run-id": hit.run_id, "data-step": hit.name},
      h("td", {}, hit.run_name === null || hit.run_name === undefined
        ? h("span", {class: "muted"}, "unknown") : h("a", {href: `#/pipelines/${seg(hit.run_name)}`}, hit.run_name)),
      h("td", {}, h("a", {href: `#/runs/${seg(hit.run_id)}?step=${seg(hit.id)}`,
                          "aria-label": `${hit.name} in run ${hit.run_name || hit.run_id}: open the run at this step`},
        hit.name), " ", h("span", {class: "type"}, hit.type || "")),
      h("td", {class: "num"}, counts(hit)),
      h("td", {class: "num"}, hit.drop_rate === null || hit.drop_rate === undefined
        ? h("span", {class: "muted", title: "the step did not record both counts"}, "unknown") : fmt.percent(hit.drop_rate)),
      h("td", {}, topReasons(hit.rejections, query.get("reason"))),
      h("td", {title: hit.started_at || ""}, fmt.time(hit.started_at)))))));
}

function counts(hit) {
  if (hit.input_count === null && hit.output_count === null) return h("span", {class: "muted"}, "unknown");
  return `${fmt.count(hit.input_count)} → ${fmt.count(hit.output_count)}`;
}

/** The three biggest reasons, the one searched for always among them. */
function topReasons(rejections, wanted) {
  const all = fmt.reasonsByCount(rejections);
  const shown = all.slice(0, 3);
  const hit = all.find(([reason]) => reason === wanted);
  if (hit && !shown.includes(hit)) shown.push(hit);
  if (!shown.length) return "";
  return h("ul", {class: "chips"}, shown.map(([reason, n]) => h("li", {}, `${reason} ${fmt.count(n)}`)),
    all.length > shown.length ? h("li", {class: "muted"}, `+${all.length - shown.length} more`) : null);
}

function nextLink(query, next) {
  const links = [];
  const at = (cursor) => {
    const q = new URLSearchParams(query);
    if (cursor) q.set("cursor", cursor);
    else q.delete("cursor");
    return `#/steps?${q}`;
  };
  if (query.get("cursor")) links.push(h("a", {href: at(""), class: "button secondary"}, "First page"));
  if (next) links.push(h("a", {href: at(next), class: "button secondary", rel: "next"}, "More →"));
  return links.length ? h("nav", {class: "pager", "aria-label": "Pages"}, links) : null;
}
