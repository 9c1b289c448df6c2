// The funnel chart: one bar per step that counted candidates, the kept part solid over what came in,
// the drop on each transition written beside it, the biggest drop marked (in words too, not colour only).
// A run of several candidate streams (/analyze's funnels) gets one labelled chart per stream.

import {h, s} from "./dom.js";
import * as fmt from "./format.js";

const ROW = 34;
const WIDE = {label: 190, bar: 380, note: 380};
const COMPACT = {label: 140, bar: 220, note: 300}; // two charts side by side
const MAX_ROWS = 60; // a run with more counted steps lists the rest in the step table
const MAX_FUNNELS = 8; // a run with more streams draws these (and the biggest drop's) and names the rest

/** Steps with a count, in the order the analysis gives (tree order). */
export function funnelRows(funnel) {
  return funnel.filter((f) => f.input_count !== null || f.output_count !== null);
}

/** Largest count among the funnel's rows: the full bar width. */
export function funnelTop(funnel) {
  return Math.max(1, ...funnelRows(funnel).map((f) => Math.max(f.input_count || 0, f.output_count || 0)));
}

/**
 * An SVG funnel for /analyze's funnel and summary; onPick(stepId) when a bar is chosen.
 * Options: id (unique per page), top (the count a full bar stands for, to share a scale), compact.
 */
export function funnelChart(analysis, onPick, {id = "funnel", top = funnelTop(analysis.funnel), compact = false} = {}) {
  const rows = funnelRows(analysis.funnel);
  if (!rows.length) {
    return h("p", {class: "muted"}, "No step of this run recorded candidate counts, so there is no funnel. ",
             "Record them with process_candidates() or set_counts() in the SDK.");
  }
  const {label: LABEL, bar: BAR, note: NOTE} = compact ? COMPACT : WIDE;
  const biggest = analysis.summary.biggest_drop && analysis.summary.biggest_drop.step_id;
  const shown = rows.slice(0, MAX_ROWS);
  const big = rows.findIndex((f) => f.step_id === biggest);
  if (big >= MAX_ROWS) shown.push(rows[big]); // the biggest drop is always drawn
  const width = (n) => (n ? Math.max(2, (n / top) * BAR) : 0);
  const svg = s("svg", {class: `funnel${compact ? " compact" : ""}`, viewBox: `0 0 ${LABEL + BAR + NOTE} ${shown.length * ROW + 6}`,
                        role: "group", "aria-labelledby": `${id}-title`},
    s("title", {id: `${id}-title`}, funnelSummary(analysis, rows)),
    shown.map((f, i) => {
      const y = i * ROW + 4;
      const isBig = f.step_id === biggest;
      const kept = f.output_count ?? f.input_count;
      return s("g", {class: `funnel-row${isBig ? " biggest" : ""}`, "data-step": f.name, "data-step-id": f.step_id,
                     "data-in": f.input_count ?? "", "data-out": f.output_count ?? "", tabindex: 0, role: "button",
                     "aria-label": `${f.name}: ${label(f)}${isBig ? ", biggest drop" : ""}`,
                     onclick: () => onPick(f.step_id),
                     onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); onPick(f.step_id); } }},
        s("title", {}, `${f.name}: ${label(f)}`),
        s("text", {x: LABEL - 8, y: y + 19, class: "step-label", "text-anchor": "end"}, fmt.clip(f.name, compact ? 18 : 24)),
        s("rect", {x: LABEL, y, width: width(f.input_count ?? kept), height: ROW - 8, class: "came-in", rx: 3}),
        s("rect", {x: LABEL, y, width: width(kept), height: ROW - 8, class: "kept", rx: 3}),
        s("text", {x: LABEL + BAR + 8, y: y + 19, class: "figure"}, label(f) + (isBig ? "  ◀ biggest drop" : "")));
    }));
  return h("figure", {class: "funnel-figure"}, svg,
    rows.length > MAX_ROWS ? h("figcaption", {class: "muted"},
      `First ${MAX_ROWS} of ${rows.length} counted steps${big >= MAX_ROWS ? ", then the biggest drop" : ""}; `
      + "the step table lists them all.") : null);
}

/** One stream of /analyze as funnelChart takes a run: its steps and its own figures. */
export function streamAnalysis(analysis, stream) {
  return {funnel: analysis.funnel.filter((f) => f.funnel === stream.name),
          summary: {initial_candidates: stream.initial_candidates, final_count: stream.final_count,
                    biggest_drop: stream.biggest_drop}};
}

/** "titles: 6 → 1", and whether the SDK named the stream or it is named after its first step. */
export function streamTitle(stream) {
  return `${stream.name}: ${fmt.count(stream.initial_candidates)} → ${fmt.count(stream.final_count)}`
    + (stream.named ? "" : " (named after its first step)");
}

/** The run's funnels: one chart as ever when it holds one candidate stream, else one labelled chart per stream. */
export function funnelCharts(analysis, onPick) {
  const streams = analysis.funnels || [];
  if (streams.length <= 1) return funnelChart(analysis, onPick);
  const shown = streams.slice(0, MAX_FUNNELS);
  const big = analysis.summary.biggest_drop;
  const withBig = big ? streams.findIndex((st) => st.steps.includes(big.step_id)) : -1;
  if (withBig >= MAX_FUNNELS) shown.push(streams[withBig]);
  const rest = streams.length - shown.length;
  return h("div", {class: "funnels", id: "funnels"},
    h("p", {class: "muted"}, `This run holds ${fmt.count(streams.length)} candidate streams, each drawn as its own funnel`,
      rest > 0 ? `; ${fmt.count(rest)} more are not drawn (the step table lists every step).` : "."),
    shown.map((st) => {
      const at = streams.indexOf(st);
      return h("section", {class: "stream", "data-funnel": st.name, "aria-labelledby": `funnel-${at}-h`},
        h("h3", {id: `funnel-${at}-h`}, streamTitle(st)),
        funnelChart(streamAnalysis(analysis, st), onPick, {id: `funnel-${at}`}));
    }));
}

function label(f) {
  if (f.input_count === null) return `→ ${fmt.count(f.output_count)}`;
  if (f.output_count === null) return `${fmt.count(f.input_count)} in`;
  const drop = f.dropped > 0 ? `  −${fmt.count(f.dropped)} (${fmt.percent(f.drop_rate)})` : "";
  return `${fmt.count(f.input_count)} → ${fmt.count(f.output_count)}${drop}`;
}

function funnelSummary(analysis, rows) {
  const {initial_candidates: first, final_count: last, biggest_drop: big} = analysis.summary;
  const parts = [`Funnel of ${rows.length} steps: ${fmt.count(first)} candidates in, ${fmt.count(last)} out.`];
  if (big) parts.push(`Biggest drop at ${big.step}: −${fmt.count(big.dropped)} (${fmt.percent(big.drop_rate)}).`);
  return parts.join(" ");
}

