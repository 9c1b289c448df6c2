"""Start and stop the receiver: database (embedded or given), schema, HTTP listener."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from aiohttp import web

from .app import build_app
from .config import Settings
from .receiver.grpc import start_grpc
from .receiver.ingest import Ingester
from .store.embedded import start_embedded
from .store.store import Store

log = logging.getLogger(__name__)
_GRACE_S = 30  # how long a stop waits for requests in flight


@asynccontextmanager
async def running(settings: Settings, dsn: str) -> AsyncIterator[web.AppRunner]:
    """The receiver listening on settings.host:port until the block exits, then a graceful stop.

    Stopping closes the listener first, then waits for requests in flight, so every
    span the receiver acknowledged is committed.
    """
    store = await Store.open(dsn, pool_size=settings.pool_size, connect_timeout=settings.connect_timeout)
    ingester = Ingester(store, max_inflight=settings.max_inflight)
    runner = web.AppRunner(build_app(store, ingester, settings), auto_decompress=False, access_log=None,
                           shutdown_timeout=_GRACE_S)
    grpc_server = None
    try:
        await runner.setup()
        await web.TCPSite(runner, settings.host, settings.port).start()
        if settings.grpc_port:
            grpc_server = await start_grpc(ingester, settings.host, settings.grpc_port, settings.max_body_bytes)
        log.info("receiver listening", extra={"host": settings.host, "http_port": settings.port,
                                              "grpc_port": settings.grpc_port or None})
        yield runner
    finally:
        if grpc_server is not None:
            await grpc_server.stop(_GRACE_S)
        await runner.cleanup()
        await store.close()


def database_dsn(settings: Settings) -> tuple[str, Any]:
    """The configured database URL, or an embedded server's (with a handle to keep it alive)."""
    if settings.database_url:
        return settings.database_url, None
    return start_embedded(settings.data_dir)


def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM."""
    dsn, embedded = database_dsn(settings)
    try:
        asyncio.run(_serve(settings, dsn))
    finally:
        if embedded is not None:
            embedded.cleanup()


async def _serve(settings: Settings, dsn: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running(settings, dsn):
        grpc_note = f", OTLP/gRPC on {settings.host}:{settings.grpc_port}" if settings.grpc_port else ""
        print(f"xray-otel: OTLP/HTTP and REST on http://{settings.host}:{settings.port}{grpc_note}"
              "  (Ctrl+C to stop)", flush=True)
        await stop.wait()
    log.info("receiver stopped")
