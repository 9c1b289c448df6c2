"""Every query route, registered: the one place that says which module answers which path."""

from __future__ import annotations

from aiohttp import web

from . import alerts, changes, compare, docs, funnel, lineage, pipelines, run_steps, runs, series, steps


def add_routes(app: web.Application) -> None:
    app.router.add_get("/runs", runs.list_runs)
    app.router.add_get("/runs/{run_id}", runs.get_run)
    app.router.add_get("/runs/{run_id}/steps", run_steps.get_steps)
    app.router.add_get("/runs/{run_id}/candidates", lineage.list_decisions)
    app.router.add_get("/runs/{run_id}/candidates/{candidate_id}", lineage.candidate_path)
    app.router.add_get("/analyze/{run_id}", funnel.get_analysis)
    app.router.add_get("/steps", steps.search_steps)
    app.router.add_get("/compare", compare.compare_runs)
    app.router.add_get("/pipelines", pipelines.list_pipelines)
    app.router.add_get("/pipelines/{name}", pipelines.get_pipeline)
    app.router.add_get("/pipelines/{name}/series", series.get_series)
    app.router.add_get("/pipelines/{name}/changes", changes.get_pipeline_changes)
    app.router.add_get("/changes", changes.list_changes)
    app.router.add_get("/alerts", alerts.alerts_overview)
    app.router.add_get("/alerts/rules", alerts.list_rules)
    app.router.add_post("/alerts/rules", alerts.create_rule)
    app.router.add_get("/alerts/rules/{id}", alerts.get_rule)
    app.router.add_put("/alerts/rules/{id}", alerts.replace_rule)
    app.router.add_delete("/alerts/rules/{id}", alerts.delete_rule)
    app.router.add_get("/openapi.json", docs.openapi_json)
    app.router.add_get("/docs", docs.docs_page)
