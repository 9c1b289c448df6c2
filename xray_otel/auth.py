"""API keys and scopes. Keys are held only as SHA-256 digests and compared in constant time.

A key entry is ``SCOPES:KEY`` where SCOPES is ``ingest``, ``read``, ``admin`` or several joined by ``+``
(``ingest+read``), optionally
bound to one project (a resource ``service.name``) as ``SCOPES@PROJECT:KEY``;
entries are comma-separated in ``XRAY_API_KEYS`` or one per line in ``XRAY_API_KEYS_FILE``
(``#`` comments allowed). ``ingest`` covers OTLP (HTTP and gRPC) and /ingest; ``read``
covers queries; ``admin`` covers changing alert rules (POST, PUT, DELETE under /alerts/rules).
With no keys configured, nothing is checked.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from .mapping.values import MAX_NAME

INGEST, READ, ADMIN = "ingest", "read", "admin"
SCOPES = (INGEST, READ, ADMIN)


class AuthError(Exception):
    """``status`` 401 (no or unknown key) or 403 (key lacks the scope)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class _Key:
    digest: bytes
    scopes: frozenset[str]
    project: str | None


class KeyRing:
    def __init__(self, keys: list[_Key]) -> None:
        self._keys = keys

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    @classmethod
    def parse(cls, entries: str = "", file: Path | None = None) -> KeyRing:
        """Keys from a comma-separated string and/or a file; ValueError names a bad entry (never the key)."""
        lines = [e.strip() for e in entries.split(",")]
        if file is not None:  # comments only in the file: a '#' inside a key set in the environment is the key
            lines += [line.split("#", 1)[0].strip() for line in Path(file).read_text().splitlines()]
        return cls([_parse_entry(line, number) for number, line in enumerate(lines, 1) if line])

    def check(self, presented: str | None, scope: str) -> str | None:
        """The key's project (None: all projects); AuthError unless ``presented`` is a key with ``scope``."""
        if not self._keys:
            return None
        if not presented:
            raise AuthError(401, "an API key is required: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'")
        digest = hashlib.sha256(presented.encode()).digest()
        match = None
        for key in self._keys:  # compare against every key, so timing says nothing about which matched
            if hmac.compare_digest(key.digest, digest):
                match = key
        if match is None:
            raise AuthError(401, "unknown API key")
        if scope not in match.scopes:
            raise AuthError(403, f"this API key lacks the '{scope}' scope")
        return match.project


def _parse_entry(entry: str, number: int) -> _Key:
    scopes, sep, key = entry.partition(":")
    scopes, at, project = scopes.partition("@")
    wanted = frozenset(s.strip() for s in scopes.split("+"))
    if not sep or not key.strip() or not wanted <= set(SCOPES) or (at and not project.strip()):
        raise ValueError(f"API key entry {number} must look like 'ingest:KEY', 'read:KEY', 'ingest+read:KEY', "
                         "'read+admin:KEY' or, bound to one project, 'ingest+read@SERVICE_NAME:KEY'")
    if len(project.strip()) > MAX_NAME:
        raise ValueError(f"API key entry {number}: a project name is a service.name of at most {MAX_NAME} characters")
    return _Key(hashlib.sha256(key.strip().encode()).digest(), wanted, project.strip() or None)


def presented_key(authorization: str | None, api_key: str | None) -> str | None:
    """The key from ``Authorization: Bearer <key>`` or ``x-api-key``."""
    if api_key:
        return api_key.strip()
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None
