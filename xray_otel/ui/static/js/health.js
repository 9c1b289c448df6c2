// The pipeline-health pages' routes (issue 20): the router (app.js) takes them as they are, so its own
// list stays short and other pages' routes merge beside these without touching them.

import {showAlerts} from "./alerts.js";
import {showPipeline} from "./pipeline.js";
import {showPipelines} from "./pipelines.js";
import {showStepSearch} from "./stepsearch.js";

export const HEALTH_ROUTES = [
  [/^\/steps$/, (m, q) => showStepSearch(q)],
  [/^\/pipelines$/, (m, q) => showPipelines(q)],
  [/^\/pipelines\/([^/]+)$/, (m, q) => showPipeline(decodeURIComponent(m[1]), q)],
  [/^\/alerts$/, (m, q) => showAlerts(q)],
];
