"""Real PostgreSQL and a real receiver for the tests.

The database is ``XRAY_DATABASE_URL`` / ``DATABASE_URL`` when set (a fresh database is
created in it for the session and dropped after), else an embedded PostgreSQL in a
temporary directory. Never skipped: with neither, the embedded server starts.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import uuid
from contextlib import asynccontextmanager, contextmanager
from typing import Any, AsyncIterator, Iterator

import asyncpg
import pytest

from xray_otel.config import Settings
from xray_otel.server import running
from xray_otel.store.embedded import start_embedded


@pytest.fixture(scope="session")
def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("XRAY_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if not given:
        dsn, server = start_embedded(tmp_path_factory.mktemp("pgdata"))
        yield dsn
        server.cleanup()
        return
    name = f"xray_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(given, f'CREATE DATABASE "{name}"'))
    yield _with_database(given, name)
    asyncio.run(_admin(given, f'DROP DATABASE "{name}" WITH (FORCE)'))


async def _admin(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@asynccontextmanager
async def scratch_database(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a new, empty database beside ``dsn``'s, dropped afterwards: for tests that
    need a schema of their own or statistics no other test should see."""
    name = f"xray_scratch_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await asyncpg.connect(_with_database(dsn, name))
        try:
            yield conn
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def _with_database(dsn: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn.replace("postgresql+asyncpg://", "postgresql://", 1))
    return urlunsplit(parts._replace(path="/" + name))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """The receiver on its own event loop in a background thread, so sync tests and
    the OTel SDK's exporters can talk to it over a real socket."""

    def __init__(self, settings: Settings, dsn: str) -> None:
        self.settings, self.dsn = settings, dsn
        self.url = f"http://{settings.host}:{settings.port}"
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(60)
        if self._error:
            raise self._error
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with running(self.settings, self.dsn) as runner:
                self.runner = runner
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:  # surfaced to the test that started the server
            self._error = exc
            self._ready.set()


@contextmanager
def serve(dsn: str, **overrides: Any) -> Iterator[ServerThread]:
    overrides = {"port": free_port(), "grpc_port": free_port(), **overrides}
    settings = Settings.from_env({}, database_url=dsn, **overrides)
    server = ServerThread(settings, dsn).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def receiver(pg_dsn: str) -> Iterator[ServerThread]:
    with serve(pg_dsn) as server:
        yield server


@pytest.fixture(scope="session")
def receiver_url(receiver: ServerThread) -> str:
    return receiver.url
