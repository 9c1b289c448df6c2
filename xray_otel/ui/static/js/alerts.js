// Alerts: the rules with their state, and the recent firings and resolutions with their webhook
// delivery (GET /alerts). A rule that could not be decided says unknown, and why (its note).

import {ApiError, get, seg} from "./api.js";
import {h, notice} from "./dom.js";
import * as fmt from "./format.js";

export async function showAlerts() {
  let answer;
  try {
    ({data: answer} = await get("/alerts"));
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) throw err;
    return page(notice("info", "This server has no alerts.", "It does not answer GET /alerts; upgrade it to get them."));
  }
  const rules = answer.rules || [];
  const firings = answer.firings || [];
  return page(
    h("section", {"aria-labelledby": "rules-h"}, h("h2", {id: "rules-h"}, `Rules (${fmt.count(rules.length)})`),
      rules.length ? ruleTable(rules) : notice("info", "No alert rule yet.",
        "Add one with `xray-otel alerts add …`, POST /alerts/rules, or a rules file given to `xray-otel serve`.")),
    h("section", {"aria-labelledby": "firings-h"}, h("h2", {id: "firings-h"}, "Recent firings and resolutions"),
      firings.length ? firingTable(firings) : h("p", {class: "muted"}, "No rule has fired yet.")));
}

function page(...parts) {
  return h("section", {class: "alerts"}, h("h1", {}, "Alerts"), ...parts);
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
      h("td", {class: "num"}, r.value === null || r.value === undefined ? h("span", {class: "muted"}, "unknown")
        : r.kind === "threshold" ? metricValue(r.metric, r.value) : String(r.value)),
      h("td", {title: r.evaluated_at || ""}, r.evaluated_at ? fmt.time(r.evaluated_at) : h("span", {class: "muted"}, "not yet")))))));
}

const METRIC_WORDS = {drop_rate: "drop rate", reason_share: "share of reason", failure_rate: "failure rate",
                      cost: "mean cost", duration_p95: "p95 duration"};

/** A rule's condition in words: "drop rate above 90.0% over 15m", "any significant change in 24h against 7d". */
export function condition(rule) {
  if (rule.kind === "change") return `any significant change in ${rule.window} against the ${rule.baseline} before`;
  const what = `${METRIC_WORDS[rule.metric] || rule.metric}${rule.reason ? ` ${rule.reason}` : ""}`;
  return `${what} ${rule.comparison} ${metricValue(rule.metric, rule.threshold)} over ${rule.window}`
    + (rule.min_samples > 1 ? ` (at least ${fmt.count(rule.min_samples)} samples)` : "");
}

/** A rule's figure in its metric's unit. */
export function metricValue(metric, value) {
  if (value === null || value === undefined) return "unknown";
  if (/rate|share/.test(metric || "")) return fmt.percent(value);
  if (metric === "cost") return fmt.cost(value);
  if (/duration/.test(metric || "")) return fmt.duration(value);
  return String(Math.round(value * 10000) / 10000);
}

function firingTable(firings) {
  return h("div", {class: "table-wrap"}, h("table", {class: "data", id: "alert-firings"},
    h("thead", {}, h("tr", {}, ["When", "Rule", "Event", "Where", "Figure", "Webhook"].map((t) => h("th", {scope: "col"}, t)))),
    h("tbody", {}, firings.map((f) => h("tr", {"data-firing": f.id, "data-rule": f.rule || ""},
      h("td", {title: f.at || ""}, fmt.time(f.at)),
      h("td", {}, f.rule || h("span", {class: "muted"}, "unknown")),
      h("td", {}, stateBadge(f.state)),
      h("td", {}, f.pipeline ? h("a", {href: `#/pipelines/${seg(f.pipeline)}`}, f.pipeline) : "",
        f.step ? [" / ", f.step] : null, f.what ? h("div", {class: "muted"}, [f.what, f.reason].filter(Boolean).join(" ")) : null),
      h("td", {class: "num"}, f.value === null || f.value === undefined ? h("span", {class: "muted"}, "unknown") : String(Math.round(f.value * 10000) / 10000)),
      h("td", {}, delivery(f.delivery)))))));
}

function delivery(d) {
  if (!d) return h("span", {class: "muted"}, "none (no webhook)");
  if (d.delivered_at) return `delivered ${fmt.time(d.delivered_at)}`;
  return h("span", {class: "error-text"}, `not yet delivered (${fmt.count(d.attempts)} attempts)`);
}
