"""Server settings: command-line flag, then XRAY_* environment variable, then default."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field, fields
from datetime import timedelta
from functools import cached_property
from pathlib import Path

from .auth import KeyRing


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "xray-otel" / "pgdata"


@dataclass
class Settings:
    """Every server setting, with its environment variable and default (see README: Configuration)."""

    host: str = field(default="127.0.0.1", metadata={"env": "XRAY_HOST"})
    port: int = field(default=4318, metadata={"env": "XRAY_PORT"})
    grpc_port: int = field(default=4317, metadata={"env": "XRAY_GRPC_PORT"})  # 0: no gRPC listener
    database_url: str | None = field(default=None, metadata={"env": "XRAY_DATABASE_URL"})
    data_dir: Path = field(default_factory=_default_data_dir, metadata={"env": "XRAY_DATA_DIR"})
    max_body_bytes: int = field(default=20 * 1024 * 1024, metadata={"env": "XRAY_MAX_BODY_BYTES"})
    workers: int = field(default=1, metadata={"env": "XRAY_WORKERS"})
    max_inflight: int = field(default=8, metadata={"env": "XRAY_MAX_INFLIGHT"})
    max_spans_per_request: int = field(default=100_000, metadata={"env": "XRAY_MAX_SPANS_PER_REQUEST"})
    max_value_chars: int = field(default=1024 * 1024, metadata={"env": "XRAY_MAX_VALUE_CHARS"})
    request_timeout: float = field(default=60.0, metadata={"env": "XRAY_REQUEST_TIMEOUT"})
    pool_size: int = field(default=8, metadata={"env": "XRAY_DB_POOL_SIZE"})
    connect_timeout: float = field(default=30.0, metadata={"env": "XRAY_CONNECT_TIMEOUT"})
    log_level: str = field(default="INFO", metadata={"env": "XRAY_LOG_LEVEL"})
    api_keys: str = field(default="", repr=False, metadata={"env": "XRAY_API_KEYS"})
    api_keys_file: Path | None = field(default=None, metadata={"env": "XRAY_API_KEYS_FILE"})
    insecure: bool = field(default=False, metadata={"env": "XRAY_INSECURE"})
    cors_origins: str = field(default="", metadata={"env": "XRAY_CORS_ORIGINS"})
    retention: str | None = field(default=None, metadata={"env": "XRAY_RETENTION"})  # e.g. "30d"
    retention_interval: float = field(default=300.0, metadata={"env": "XRAY_RETENTION_INTERVAL"})
    alert_rules: Path | None = field(default=None, metadata={"env": "XRAY_ALERT_RULES"})  # JSON, loaded at start
    alert_interval: float = field(default=30.0, metadata={"env": "XRAY_ALERT_INTERVAL"})  # seconds per rule
    alert_secret: str = field(default="", repr=False, metadata={"env": "XRAY_ALERT_SECRET"})  # webhook HMAC key
    alert_retry: float = field(default=5.0, metadata={"env": "XRAY_ALERT_RETRY"})  # first retry; doubles to 1 h
    # Runs of a window a threshold evaluation reads at most; a uniform sample of that many beyond, said so.
    alert_sample_runs: int = field(default=1000, metadata={"env": "XRAY_ALERT_SAMPLE_RUNS"})
    # Webhooks at loopback, private or link-local addresses (refused by default: the server would POST inside its network)
    alert_allow_private_webhooks: bool = field(default=False, metadata={"env": "XRAY_ALERT_ALLOW_PRIVATE_WEBHOOKS"})
    public_url: str = field(default="", metadata={"env": "XRAY_PUBLIC_URL"})  # for links in webhook bodies

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``overrides`` (non-None flags), else the environment, else defaults.

        ``DATABASE_URL`` is read when ``XRAY_DATABASE_URL`` is not set, and a SQLAlchemy-style
        ``postgresql+asyncpg://`` URL (the original X-Ray backend's) is accepted as is.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            if overrides.get(f.name) is not None:
                values[f.name] = overrides[f.name]
            elif f.metadata["env"] in env:
                values[f.name] = _parse(f.name, f.metadata["env"], env[f.metadata["env"]], f.type)
        if "database_url" not in values and env.get("DATABASE_URL"):
            values["database_url"] = env["DATABASE_URL"]
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1-65535, got {self.port}")
        if not 0 <= self.grpc_port < 65536:
            raise ValueError(f"grpc_port must be 1-65535, or 0 to disable gRPC, got {self.grpc_port}")
        for name in ("workers", "max_body_bytes", "max_inflight", "pool_size", "max_spans_per_request",
                     "max_value_chars", "request_timeout"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.retention:
            parse_window(self.retention)
        if self.api_keys_file is not None:
            self.api_keys_file = Path(self.api_keys_file).expanduser()
        if self.alert_rules is not None:
            self.alert_rules = Path(self.alert_rules).expanduser()
        if self.alert_sample_runs < 100:
            raise ValueError(f"alert_sample_runs must be at least 100 (a smaller sample decides on noise), "
                             f"got {self.alert_sample_runs}")
        for name in ("alert_interval", "alert_retry"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {getattr(self, name)}")
        if not self.insecure and not self.keys.enabled and not _is_loopback(self.host):
            raise ValueError(
                f"refusing to listen on {self.host} without API keys: anyone who can reach it could read "
                "pipeline inputs. Set XRAY_API_KEYS (or --api-keys-file), or pass --insecure if that is intended"
            )
        if self.database_url:
            self.database_url = self.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.data_dir = Path(self.data_dir).expanduser()


    @cached_property
    def keys(self) -> KeyRing:
        """The configured API keys, read once (ValueError for a malformed entry or an unreadable file)."""
        try:
            return KeyRing.parse(self.api_keys, self.api_keys_file)
        except OSError as exc:
            raise ValueError(f"cannot read XRAY_API_KEYS_FILE {self.api_keys_file}: {exc.strerror}") from None

    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _parse(name: str, var: str, raw: str, kind: object) -> object:
    parsers = {"int": int, "float": float, "bool": _bool}
    if kind not in parsers:
        return raw
    try:
        return parsers[kind](raw)  # type: ignore[index]
    except ValueError:
        raise ValueError(f"{var} must be {_KIND_WORDS[kind]}, got {raw!r}") from None


_WINDOW = re.compile(r"^\s*(\d+)\s*([dhm])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_window(text: str) -> timedelta:
    """``30d``, ``12h`` or ``90m`` to a timedelta; ValueError says what is accepted."""
    match = _WINDOW.match(text)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"retention must look like 30d, 12h or 90m (a positive number), got {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


_KIND_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false"}


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(raw)
