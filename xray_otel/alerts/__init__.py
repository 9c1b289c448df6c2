"""Alerts: rules over pipelines, evaluated in the background, delivered to webhooks (issue 20)."""
