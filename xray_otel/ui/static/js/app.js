// The router: the hash names the page (#/runs, #/runs/ID, #/runs/ID/candidates/CID, #/compare),
// so every view has a link that can be shared, bookmarked and opened with Back.

import {ApiError, apiKey, setApiKey} from "./api.js";
import {h, notice, replace} from "./dom.js";
import {showCandidate} from "./candidate.js";
import {showCompare} from "./compare.js";
import {CROSSRUN_ROUTES} from "./crossrun.js";
import {HEALTH_ROUTES} from "./health.js";
import {showRun} from "./run.js";
import {showRuns} from "./runs.js";

const ROUTES = [
  [/^\/runs\/([^/]+)\/candidates\/(.+)$/, (m, q) => showCandidate(decodeURIComponent(m[1]), decodeURIComponent(m[2]))],
  [/^\/runs\/([^/]+)$/, (m, q) => showRun(decodeURIComponent(m[1]), q)],
  [/^\/runs$/, (m, q) => showRuns(q)],
  [/^\/compare$/, (m, q) => showCompare(q)],
  ...HEALTH_ROUTES,
  ...CROSSRUN_ROUTES,
];

const view = () => document.getElementById("view");
let current = 0; // a slower, older page must not overwrite a newer one

async function route() {
  const [path, search] = (location.hash.slice(1) || "/runs").split("?");
  const query = new URLSearchParams(search || "");
  const ticket = ++current;
  const found = ROUTES.find(([pattern]) => pattern.test(path));
  document.querySelectorAll("[data-nav]").forEach((a) => {
    a.toggleAttribute("aria-current", path.startsWith(`/${a.dataset.nav}`));
  });
  if (!found) {
    show(notice("error", "No such page.", h("a", {href: "#/runs"}, "Go to the runs")));
    return;
  }
  view().setAttribute("aria-busy", "true");
  let page;
  try {
    page = await found[1](path.match(found[0]), query);
  } catch (err) {
    page = errorView(err);
  }
  if (ticket === current) show(page);
}

/** Put a page in place: top of the window, focus on its heading (so Tab goes on from there). */
function show(page) {
  const target = view();
  replace(target, page);
  target.removeAttribute("aria-busy");
  window.scrollTo(0, 0);
  const heading = target.querySelector("h1") || target.querySelector("[role=alert]");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({preventScroll: true});
  }
}

function errorView(err) {
  if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return keyForm(err);
  if (err instanceof ApiError && err.status === 503) {
    return notice("error", "The database is unreachable.", err.message,
                  "The server keeps retrying; reload in a few seconds, or check its log.");
  }
  const title = err instanceof ApiError && err.status === 404 ? "Not found." : "Something went wrong.";
  return notice("error", title, err.message, h("a", {href: "#/runs"}, "Go to the runs list"));
}

function keyForm(err) {
  const input = h("input", {type: "password", id: "api-key", autocomplete: "off", required: true});
  const form = h("form", {class: "key-form", onsubmit: (e) => {
    e.preventDefault();
    setApiKey(input.value.trim());
    route();
  }},
    h("label", {for: "api-key"}, "API key (with read scope)"), input, h("button", {type: "submit"}, "Use this key"));
  const why = !err ? "Set the API key this tab sends."
    : err.status === 401 ? (apiKey() ? "The key given was not accepted." : "This server asks for an API key.")
    : err.message;
  return h("section", {}, notice(err ? "error" : "info", why,
    "Paste a key from XRAY_API_KEYS (or the server's keys file). It is kept for this browser tab only."), form);
}

document.getElementById("key-button").addEventListener("click", () => {
  current++;
  show(keyForm(null));
  document.getElementById("api-key").focus();
});

window.addEventListener("hashchange", route);
route();
