"""Versioned schema migrations: numbered .sql files applied in order, recorded in a table.

Applying is idempotent (already-applied versions are skipped) and safe when several
receivers start at once (an advisory lock serialises them). A database whose schema
is newer than this code knows is refused with a clear error rather than misread.
"""

from __future__ import annotations

import logging
import re
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

_LOCK_ID = 0x7872_6179  # "xray": one advisory lock for all xray-otel migrations
_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer xray-otel."""


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every shipped migration, in order."""
    found = []
    for entry in resources.files("xray_otel.store").joinpath("migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text()))
    return sorted(found)


async def migrate(conn: asyncpg.Connection) -> int:
    """Bring the schema up to date; returns the version now in force."""
    known = migrations()
    latest = known[-1][0] if known else 0
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS xray_schema_version ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM xray_schema_version")
        if current > latest:
            raise SchemaTooNew(
                f"database schema is version {current}, but this xray-otel knows up to {latest}: "
                "upgrade xray-otel, or point it at another database"
            )
        for version, name, sql in known:
            if version > current:
                log.info("applying migration", extra={"version": version, "migration": name})
                await conn.execute(sql)
                await conn.execute("INSERT INTO xray_schema_version (version, name) VALUES ($1, $2)", version, name)
    return latest
