// Small charts drawn by hand as SVG: a sparkline, lines over time buckets, stacked shares per bucket.
// Pure: data in, an element out. A value that is null (no runs, no counts, too little data) is a gap in
// a line and a dashed empty bar, never a zero. Each chart names itself for screen readers; the pages
// put a table with the same figures beside it.

import {h, s} from "./dom.js";
import * as fmt from "./format.js";

export const SERIES_STYLES = 8; // .series-0 … .series-7 in style.css: a colour and a dash pattern each

/** Values as an inline trend line; null values leave a gap. label says what it shows, for the title. */
export function sparkline(values, {label, width = 120, height = 28, top = null} = {}) {
  const known = values.filter((v) => Number.isFinite(v));
  const summary = known.length
    ? `${label}: ${known.length < values.length ? `${values.length - known.length} of ${values.length} unknown, ` : ""}`
      + `from ${trim(known[0])} to ${trim(known[known.length - 1])}, highest ${trim(Math.max(...known))}`
    : `${label}: unknown (no data)`;
  const max = top ?? Math.max(0, ...known);
  const x = (i) => (values.length < 2 ? width / 2 : 2 + (i / (values.length - 1)) * (width - 4));
  const y = (v) => height - 3 - (max > 0 ? (v / max) * (height - 6) : 0);
  const last = values.length - 1;
  return s("svg", {class: "sparkline", viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
                   "aria-label": summary},
    s("title", {}, summary),
    segments(values).map((run) => s("polyline", {points: run.map((i) => `${x(i)},${y(values[i])}`).join(" ")})),
    Number.isFinite(values[last]) ? s("circle", {cx: x(last), cy: y(values[last]), r: 2.5}) : null,
    known.length ? null : s("text", {x: width / 2, y: height / 2 + 4, "text-anchor": "middle"}, "unknown"));
}

function trim(v) {
  return Number.isInteger(v) ? fmt.count(v) : String(Math.round(v * 1000) / 1000);
}

/** Indices of the runs of consecutive finite values: [[0,1,2],[5,6]]. */
export function segments(values) {
  const out = [];
  let run = [];
  values.forEach((v, i) => {
    if (Number.isFinite(v)) run.push(i);
    else if (run.length) { out.push(run); run = []; }
  });
  if (run.length) out.push(run);
  return out;
}

const W = 760, H = 260, LEFT = 48, RIGHT = 12, TOP = 22, BOTTOM = 34;

/**
 * Lines over time buckets, y from 0 to 1 (shares: drop rates).
 * buckets: [{label, href, summary}] (href: where a click on the bucket goes; summary: its words);
 * lines: [{name, values: [0..1 | null], changed}] (changed: drawn heavier, flagged in the key); marks: [{index, label}] (a change, drawn at its bucket).
 */
export function lineChart({id, title, buckets, lines, marks = []}) {
  const n = buckets.length;
  const step = (W - LEFT - RIGHT) / Math.max(1, n);
  const x = (i) => LEFT + step * (i + 0.5);
  const y = (v) => TOP + (1 - Math.min(1, Math.max(0, v))) * (H - TOP - BOTTOM);
  return h("figure", {class: "chart-figure"},
    s("svg", {class: "chart lines", id, viewBox: `0 0 ${W} ${H}`, role: "group", "aria-labelledby": `${id}-title`},
      s("title", {id: `${id}-title`}, title),
      axes(y, n, x, buckets),
      marks.map((m) => s("g", {class: "mark", "data-index": m.index},
        s("line", {x1: x(m.index), x2: x(m.index), y1: TOP - 6, y2: H - BOTTOM}),
        s("text", {x: x(m.index), y: TOP - 9, "text-anchor": "middle"}, m.label))),
      lines.map((line, k) => s("g", {class: `series series-${k % SERIES_STYLES}${line.changed ? " changed" : ""}`,
                                     "data-name": line.name},
        segments(line.values).map((run) => run.length > 1
          ? s("polyline", {points: run.map((i) => `${x(i)},${y(line.values[i])}`).join(" ")}) : null),
        line.values.map((v, i) => (Number.isFinite(v) ? s("circle", {cx: x(i), cy: y(v), r: 3.5}) : null)))),
      buckets.map((b, i) => s("a", {href: b.href, class: "bucket", "data-index": i, "aria-label": b.summary,
                                    tabindex: i === n - 1 ? 0 : -1, onkeydown: roam},
        s("title", {}, b.summary),
        s("rect", {x: x(i) - step / 2, y: TOP, width: step, height: H - TOP - BOTTOM})))),
    legend(lines.map((line) => (line.changed ? `${line.name} ⚑ changed` : line.name))));
}

/** One Tab stop for all the buckets (the newest); arrows, Home and End move between them. */
function roam(e) {
  const all = [...e.currentTarget.parentNode.querySelectorAll("a.bucket")];
  const at = all.indexOf(e.currentTarget);
  const to = {ArrowLeft: at - 1, ArrowRight: at + 1, Home: 0, End: all.length - 1}[e.key];
  if (to === undefined || !all[to]) return;
  e.preventDefault();
  all.forEach((a) => a.setAttribute("tabindex", "-1"));
  all[to].setAttribute("tabindex", "0");
  all[to].focus();
}

function axes(y, n, x, buckets) {
  const ticks = [0, 0.5, 1];
  const labelled = n <= 1 ? [0] : [0, Math.floor((n - 1) / 2), n - 1];
  return s("g", {class: "axes", "aria-hidden": "true"},
    ticks.map((t) => [s("line", {x1: LEFT, x2: W - RIGHT, y1: y(t), y2: y(t)}),
                      s("text", {x: LEFT - 6, y: y(t) + 4, "text-anchor": "end"}, `${t * 100}%`)]),
    [...new Set(labelled)].map((i, k, all) => s("text", {x: x(i), y: H - BOTTOM + 18,
      "text-anchor": all.length === 1 ? "middle" : k === 0 ? "start" : k === all.length - 1 ? "end" : "middle"},
      buckets[i] ? buckets[i].label : "")));
}

/** A key for lines or stacks: a sample of each style beside its name. */
export function legend(names, kind = "line") {
  return h("ul", {class: "legend", "aria-hidden": "true"}, names.map((name, k) => h("li", {},
    s("svg", {viewBox: "0 0 24 12", width: 24, height: 12, class: `series series-${k % SERIES_STYLES}`},
      kind === "line" ? s("line", {x1: 0, x2: 24, y1: 6, y2: 6}) : s("rect", {x: 2, y: 1, width: 20, height: 10})),
    " ", name)));
}

/**
 * Bars of shares per bucket, stacked: stacks[i] is {key: count} or null (unknown: a dashed outline).
 * keys: the stacked keys in order (the rest of each bucket's counts is drawn as "other").
 */
export function stackedBars({id, title, buckets, stacks, keys}) {
  const n = buckets.length;
  const step = (W - LEFT - RIGHT) / Math.max(1, n);
  const bar = Math.max(2, step * 0.7);
  const y = (v) => TOP + (1 - v) * (H - TOP - BOTTOM);
  const names = [...keys, "other"];
  return h("figure", {class: "chart-figure"},
    s("svg", {class: "chart bars", id, viewBox: `0 0 ${W} ${H}`, role: "group", "aria-labelledby": `${id}-title`},
      s("title", {id: `${id}-title`}, title),
      axes(y, n, (i) => LEFT + step * (i + 0.5), buckets),
      stacks.map((counts, i) => {
        const left = LEFT + step * i + (step - bar) / 2;
        const shares = sharesOf(counts, keys);
        if (!shares) {
          return s("g", {class: "bar unknown", "data-index": i}, s("title", {}, `${buckets[i].label}: unknown`),
            s("rect", {x: left, y: TOP, width: bar, height: H - TOP - BOTTOM}));
        }
        let at = 0;
        return s("g", {class: "bar", "data-index": i}, s("title", {}, `${buckets[i].label}: ${describe(shares, names)}`),
          shares.map((share, k) => {
            const part = share > 0 ? s("rect", {x: left, y: y(at + share), width: bar, height: y(at) - y(at + share),
                                                class: `series-${k % SERIES_STYLES}`}) : null;
            at += share;
            return part;
          }));
      })),
    legend(names, "bar"));
}

/** Each key's share of the bucket's counts, then "other"; null when the bucket counted nothing. */
export function sharesOf(counts, keys) {
  if (!counts) return null;
  const entries = Object.entries(counts).filter(([, v]) => Number.isFinite(v) && v > 0);
  const total = entries.reduce((sum, [, v]) => sum + v, 0);
  if (!total) return null;
  const shares = keys.map((k) => (Number.isFinite(counts[k]) && counts[k] > 0 ? counts[k] / total : 0));
  return [...shares, Math.max(0, 1 - shares.reduce((a, b) => a + b, 0))];
}

function describe(shares, names) {
  return shares.map((v, k) => [names[k], v]).filter(([, v]) => v > 0.0005)
    .map(([name, v]) => `${name} ${fmt.percent(v, 0)}`).join(", ");
}
