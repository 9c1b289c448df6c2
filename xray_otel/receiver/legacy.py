"""POST /ingest: the original X-Ray SDK's events, into the same tables with the same guarantees.

``{"events": [{"type": "run_complete"|"run_failed"|"step_complete"|"step_failed", "data": {...}}]}``
answers ``{"status": "ok", "processed": N}``. The whole request is validated before
anything is written, and written in one transaction: a bad event is a 400 naming
it, and nothing of that request is applied. The events are mapped by mapping/legacy.py.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..mapping.legacy import LegacyEventError, map_events_in_parts
from ..mapping.rows import Batch
from ..metrics import outcome_of
from ..web import PROJECT, json_error, json_ok
from .codec import parse_json
from .errors import PermissionDenied, ReceiverError
from .http import INGESTER, received_body


async def handle_legacy_ingest(request: web.Request) -> web.Response:
    ingester = request.app[INGESTER]
    with ingester.metrics.request("legacy") as set_outcome:
        try:
            if request.get(PROJECT) is not None:
                raise PermissionDenied("/ingest events carry no service.name, so a project-bound API key "
                                       "cannot write them; use a key that is not bound to a project")
            async with received_body(request) as body, ingester.slot():
                document, batch = _parse(body), Batch()
                refused, message = await ingester.store_mapped(batch, map_events_in_parts(document, batch))
                processed = len(document["events"])
        except LegacyEventError as exc:
            set_outcome("client_error")
            return json_error(400, str(exc))
        except ReceiverError as exc:
            set_outcome(outcome_of(exc))
            headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
            return json_error(exc.http_status, exc.message, headers=headers)
        if refused:  # validated, yet PostgreSQL refused rows: say so, never a bare "ok"
            set_outcome("partial")
            return json_ok({"status": "partial", "processed": processed, "refused": refused, "message": message})
    return json_ok({"status": "ok", "processed": processed})


def _parse(body: bytes) -> Any:
    try:
        return parse_json(body)
    except (ValueError, RecursionError) as exc:
        raise LegacyEventError(f"body is not valid JSON: {exc}") from None
