// Numbers, times and money as people read them.

const INT = new Intl.NumberFormat("en-US");

export function count(n) {
  return n === null || n === undefined ? "—" : INT.format(n);
}

export function percent(rate, digits = 1) {
  return rate === null || rate === undefined ? "—" : `${(rate * 100).toFixed(digits)}%`;
}

export function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

export function cost(usd) {
  if (usd === null || usd === undefined) return "—";
  if (usd === 0) return "$0";
  return usd < 0.01 ? `$${usd.toLocaleString("en-US", {maximumSignificantDigits: 3})}` : `$${usd.toFixed(2)}`;
}

/** Local date and time, to the second; the full ISO time is in the title. */
export function time(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(undefined, {year: "numeric", month: "short", day: "numeric",
                                      hour: "2-digit", minute: "2-digit", second: "2-digit"});
}

export function status(value) {
  return (value || "unknown").toLowerCase();
}

/** Text cut to n characters, with an ellipsis when cut. */
export function clip(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

/** A rejections object as [reason, count] pairs, biggest first; counts that are not numbers are left out. */
export function reasonsByCount(counts) {
  return Object.entries(counts || {}).filter(([, n]) => Number.isFinite(n)).sort((a, b) => b[1] - a[1]);
}
