// The public REST API, as any script would call it: same endpoints, same key.

const KEY = "xray-otel.api-key";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

/** GET path?params → {data, next} (next: the cursor of the following page, or null). */
export async function get(path, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== "" && v !== null && v !== undefined) query.append(name, v);
    }
  }
  const url = query.toString() ? `${path}?${query}` : path;
  const headers = {Accept: "application/json"};
  if (apiKey()) headers.Authorization = `Bearer ${apiKey()}`;
  let response;
  try {
    response = await fetch(url, {headers});
  } catch (err) {
    throw new ApiError(0, "The X-Ray server does not answer. Is `xray-otel serve` still running?");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return {data: body, next: response.headers.get("X-Next-Cursor")};
}

/** Path segment, escaped (candidate ids and run names may hold anything). */
export function seg(value) {
  return encodeURIComponent(value);
}
