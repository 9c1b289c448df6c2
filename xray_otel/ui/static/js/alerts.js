// Alerts: the rules (GET /alerts/rules) with their state, and the recent firings and resolutions
// (GET /alerts). A rule that could not be decided says unknown, and why.

import {ApiError, get, seg} from "./api.js";
import {h, notice} from "./dom.js";
import * as fmt from "./format.js";

export async function showAlerts() {
  let rules, firings;
  try {
    [rules, firings] = await Promise.all([get("/alerts/rules").then((r) => listOf(r.data, "rules")),
                                          get("/alerts").then((r) => listOf(r.data, "firings"))]);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) throw err;
    return page(notice("info", "This server has no alerts.", "It does not answer GET /alerts/rules; upgrade it to get them."));
  }
  return page(
    h("section", {"aria-labelledby": "rules-h"}, h("h2", {id: "rules-h"}, `Rules (${fmt.count(rules.length)})`),
      rules.length ? ruleTable(rules) : notice("info", "No alert rule yet.",
        "Add one with `xray-otel alerts add …`, POST /alerts/rules, or a rules file given to `xray-otel serve`.")),
    h("section", {"aria-labelledby": "firings-h"}, h("h2", {id: "firings-h"}, "Recent firings"),
      firings.length ? firingTable(firings, rules) : h("p", {class: "muted"}, "No rule has fired yet.")));
}

function page(...parts) {
  return h("section", {class: "alerts"}, h("h1", {}, "Alerts"), ...parts);
}

/** A list answer, bare or wrapped as {key: [...]}. */
function listOf(data, key) {
  return Array.isArray(data) ? data : (data && data[key]) || [];
}

export function stateBadge(state) {
  const value = state || "unknown";
  const kind = value === "firing" ? "failed" : ["ok", "resolved"].includes(value) ? "completed" : "unknown";
  return h("span", {class: `badge ${kind}`}, value);
}

function ruleTable(rules) {
  return h("div", {class: "table-wrap"}, h("table", {class: "data", id: "alert-rules"},
    h("thead", {}, h("tr", {}, ["Rule", "State", "Watches", "Condition", "Last figure", "Evaluated"].map((t) =>
      h("th", {scope: "col"}, t)))),
    h("tbody", {}, rules.map((r) => h("tr", {"data-rule": r.name, class: r.state === "firing" ? "changed" : null},
      h("th", {scope: "row"}, r.name, r.enabled === false ? h("span", {class: "muted"}, " (disabled)") : null),
      h("td", {}, stateBadge(r.state), r.note ? h("div", {class: "muted"}, r.note) : null),
      h("td", {}, r.pipeline ? h("a", {href: `#/pipelines/${seg(r.pipeline)}`}, r.pipeline) : "any pipeline",
        r.step ? [" / ", r.step] : null),
      h("td", {}, condition(r)),
      h("td", {class: "num"}, r.value === null || r.value === undefined ? h("span", {class: "muted"}, "unknown") : figure(r.value)),
      h("td", {title: r.evaluated_at || ""}, r.evaluated_at ? fmt.time(r.evaluated_at) : h("span", {class: "muted"}, "not yet")))))));
}

/** A rule's condition in words; its spec as given when the kind is not one this page knows. */
export function condition(rule) {
  const spec = rule.spec || rule;
  if (rule.kind === "change") return "any significant change";
  if (rule.kind === "threshold" && spec.metric) {
    const limit = /rate|share/.test(spec.metric) && Number.isFinite(spec.value) ? fmt.percent(spec.value) : spec.value;
    const over = spec.window || spec.for || spec.over;
    return `${spec.metric.replace(/_/g, " ")} ${spec.op || spec.operator || (spec.above === false ? "below" : "above")} ${limit}`
      + (over ? ` over ${over}` : "");
  }
  return h("code", {}, JSON.stringify(spec));
}

function figure(value) {
  return typeof value === "number" ? String(Math.round(value * 10000) / 10000) : String(value);
}

function firingTable(firings, rules) {
  const names = new Map(rules.map((r) => [r.id, r.name]));
  return h("div", {class: "table-wrap"}, h("table", {class: "data", id: "alert-firings"},
    h("thead", {}, h("tr", {}, ["When", "Rule", "Event", "Figure", "Id"].map((t) => h("th", {scope: "col"}, t)))),
    h("tbody", {}, firings.map((f) => h("tr", {"data-firing": f.id},
      h("td", {title: f.at || ""}, fmt.time(f.at)),
      h("td", {}, f.rule || f.rule_name || names.get(f.rule_id) || h("span", {class: "muted"}, "unknown")),
      h("td", {}, stateBadge(f.state)),
      h("td", {class: "num"}, f.value === null || f.value === undefined ? h("span", {class: "muted"}, "unknown") : figure(f.value)),
      h("td", {}, h("code", {}, f.id || "")))))));
}
