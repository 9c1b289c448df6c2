"""Start and stop the receiver: database (embedded or given), schema, HTTP listener."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import multiprocessing
import multiprocessing.connection
import signal
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from aiohttp import web

from .alerts.service import Alerts
from .app import build_app
from .config import Settings, parse_window
from .logs import setup_logging
from .metrics import Metrics
from .receiver.grpc import start_grpc
from .receiver.ingest import Ingester
from .store.embedded import start_embedded
from .store.retention import run_retention
from .store.store import Store

log = logging.getLogger(__name__)
_GRACE_S = 30  # how long a stop waits for requests in flight
_GC_YOUNG = 10_000  # allocations between young collections (Python's default: 700)


@asynccontextmanager
async def running(settings: Settings, dsn: str, *, reuse_port: bool = False) -> AsyncIterator[web.AppRunner]:
    """The receiver listening on settings.host:port until the block exits, then a graceful stop.

    Stopping closes the listener first, then waits for requests in flight, so every
    span the receiver acknowledged is committed. ``reuse_port`` lets several worker
    processes share the ports (SO_REUSEPORT; the kernel spreads connections).
    """
    store = await Store.open(dsn, pool_size=settings.pool_size, connect_timeout=settings.connect_timeout)
    metrics = Metrics()
    metrics.watch_pool(store.pool)
    ingester = Ingester(store, metrics, max_inflight=settings.max_inflight,
                        max_spans=settings.max_spans_per_request, max_value_chars=settings.max_value_chars)
    alerts = Alerts(store, settings, metrics.registry)
    runner = web.AppRunner(build_app(store, ingester, settings), auto_decompress=False, access_log=None,
                           shutdown_timeout=_GRACE_S)
    grpc_server = retention = None
    try:
        await runner.setup()
        await alerts.start()  # a bad rules file stops the start here, before anything listens
        await _listen_http(runner, settings, reuse_port)
        if settings.grpc_port:
            grpc_server = await start_grpc(ingester, settings.keys, settings.host, settings.grpc_port,
                                           settings.max_body_bytes,
                                           reuse_port=reuse_port)
        if settings.retention:
            retention = asyncio.create_task(
                run_retention(store, parse_window(settings.retention), settings.retention_interval))
        log.info("receiver listening", extra={"host": settings.host, "http_port": settings.port,
                                              "grpc_port": settings.grpc_port or None})
        yield runner
    finally:
        if retention is not None:
            retention.cancel()
            await asyncio.gather(retention, return_exceptions=True)
        await alerts.stop()
        # Both listeners stop accepting at once and share one grace period for requests in flight.
        stopping = [runner.cleanup()] + ([grpc_server.stop(_GRACE_S)] if grpc_server is not None else [])
        await asyncio.gather(*stopping)
        await store.close()


async def _listen_http(runner: web.AppRunner, settings: Settings, reuse_port: bool) -> None:
    """Bind the OTLP/HTTP + REST port; a port already taken says which one and what to do."""
    try:
        await web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port or None).start()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise OSError(f"cannot listen for OTLP/HTTP and REST on {settings.host}:{settings.port}: port "
                      f"{settings.port} is already in use by another process. Choose another port with --port "
                      f"(or XRAY_PORT), or stop the process using it") from None


def database_dsn(settings: Settings) -> tuple[str, Any]:
    """The configured database URL, or an embedded server's (with a handle to keep it alive)."""
    if settings.database_url:
        return settings.database_url, None
    return start_embedded(settings.data_dir)


def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM: in this process, or in ``settings.workers`` processes sharing the ports."""
    dsn, embedded = database_dsn(settings)
    try:
        if settings.workers == 1:
            asyncio.run(_serve(settings, dsn))
        else:
            _run_workers(settings, dsn)
    finally:
        if embedded is not None:
            embedded.cleanup()


async def _serve(settings: Settings, dsn: str, reuse_port: bool = False) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running(settings, dsn, reuse_port=reuse_port):
        _tune_gc()
        if not reuse_port:
            _announce(settings)
        await stop.wait()
    log.info("receiver stopped")


def _tune_gc() -> None:
    """A decoded request body is tens of thousands of short-lived containers. At the default threshold
    they outlive young collections while the request is mapped, and older collections then walk them
    and the whole start-up heap again and again (bench/ingest.py measures what it costs). Start-up objects
    live as long as the process: freeze them out of collection; and collect the young less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_YOUNG, *gc.get_threshold()[1:])


def _announce(settings: Settings, workers: str = "") -> None:
    grpc_note = f", OTLP/gRPC on {settings.host}:{settings.grpc_port}" if settings.grpc_port else ""
    print(f"xray-otel: OTLP/HTTP and REST on http://{settings.host}:{settings.port}{grpc_note}{workers}"
          "  (Ctrl+C to stop)", flush=True)


def _worker(settings: Settings, dsn: str) -> None:
    setup_logging(settings.log_level)
    asyncio.run(_serve(settings, dsn, reuse_port=True))


def _run_workers(settings: Settings, dsn: str) -> None:
    """Start the workers, forward SIGINT/SIGTERM to them, and stop them all if one dies."""
    context = multiprocessing.get_context("spawn")  # no inherited event loop, pool or grpc state
    workers = [context.Process(target=_worker, args=(settings, dsn), name=f"xray-otel-worker-{i}")
               for i in range(settings.workers)]
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True
        for w in workers:
            if w.is_alive():
                w.terminate()  # SIGTERM: each worker stops gracefully

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for w in workers:
            w.start()
        _announce(settings, f", in {settings.workers} worker processes")
        while not stopping and all(w.is_alive() for w in workers):
            multiprocessing.connection.wait([w.sentinel for w in workers], timeout=1.0)
        failed = not stopping
        if failed:
            log.error("a worker exited; stopping the others", extra={"exit_codes": [w.exitcode for w in workers]})
            stop()
        for w in workers:
            w.join(_GRACE_S + 5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed:
        raise RuntimeError("a worker process exited unexpectedly; see its log above")
