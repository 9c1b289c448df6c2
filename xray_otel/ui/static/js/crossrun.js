// The cross-run candidate pages' routes (issue 18): the router (app.js) takes them as they are, as it
// takes the health pages' (health.js), so its own list stays short.

import {showHistory} from "./history.js";
import {showNeverSurvives} from "./never.js";

const dec = decodeURIComponent;

export const CROSSRUN_ROUTES = [
  [/^\/pipelines\/([^/]+)\/never-survives$/, (m, q) => showNeverSurvives(dec(m[1]), q)],
  [/^\/pipelines\/([^/]+)\/candidates\/(.+)$/, (m, q) => showHistory(dec(m[1]), dec(m[2]), q)],
];
