"""Server settings from flags and ``SCRAWN_*`` environment variables."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8069
SERVERS = ("hypercorn", "pyvoy")


class MissingSecret(RuntimeError):
    """PostgreSQL without ``SCRAWN_SECRET``."""


@dataclass(frozen=True)
class Settings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: Path = Path("scrawn-data")
    database_url: str | None = None  # None: SQLite in data_dir
    secret: str | None = None  # None: read or create data_dir/secret (SQLite only)
    log_level: str = "info"
    log_format: str | None = None  # json | console; None: console on a terminal, JSON otherwise
    log_sql: bool = False  # SCRAWN_LOG_SQL=1: the database driver's and SQLAlchemy's lines too
    public_url: str | None = None  # None: http://{host}:{port}; checkout links are built on it
    # Outbound webhook retries: seconds after each failed attempt (docs/webhooks.md); ~27.6 h in all.
    webhook_retry_schedule: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    metrics: bool = True  # /metrics (Prometheus, docs/configuration.md); SCRAWN_METRICS=0 turns it off
    server: str = "hypercorn"  # SCRAWN_SERVER=pyvoy: Envoy's HTTP stack instead (docs/configuration.md)
    # Connections (docs/configuration.md#connections): seconds a connection may sit idle between calls, and
    # seconds any read may wait for the client's next bytes (a half-sent request, a bare HTTP/2 preface).
    # Idle outlasts the 60 s of common load balancers and proxy pools: a server that closes first races the
    # next call a client or proxy sends on the connection it still thinks open.
    idle_timeout: float = 75.0
    read_timeout: float = 90.0
    workers: int | None = None  # server processes on the one port; None: one per CPU (server/workers.py)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {
            "host": env.get("SCRAWN_HOST", DEFAULT_HOST),
            "port": _whole("SCRAWN_PORT", env.get("SCRAWN_PORT", str(DEFAULT_PORT))),
            "data_dir": Path(env.get("SCRAWN_DATA_DIR", "scrawn-data")),
            "database_url": env.get("SCRAWN_DATABASE_URL") or None,
            "secret": env.get("SCRAWN_SECRET") or None,
            "log_level": env.get("SCRAWN_LOG_LEVEL", "info"),
            "log_format": env.get("SCRAWN_LOG_FORMAT") or None,
            "log_sql": _flag(env.get("SCRAWN_LOG_SQL") or "0"),
            "public_url": env.get("SCRAWN_PUBLIC_URL") or None,
            "metrics": _flag(env.get("SCRAWN_METRICS", "1")),
            "server": _one_of("SCRAWN_SERVER", env.get("SCRAWN_SERVER") or "hypercorn", SERVERS),
        }
        if raw := env.get("SCRAWN_WORKERS"):
            values["workers"] = _whole("SCRAWN_WORKERS", raw)
        for name in ("idle_timeout", "read_timeout"):
            if raw := env.get(f"SCRAWN_{name.upper()}"):
                values[name] = positive_seconds(f"SCRAWN_{name.upper()}", raw)
        if schedule := env.get("SCRAWN_WEBHOOK_RETRY_SCHEDULE"):
            values["webhook_retry_schedule"] = parse_schedule(schedule)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def resolved_database_url(self) -> str:
        return normalise_database_url(self.database_url or f"sqlite:///{self.data_dir / 'scrawn.db'}")

    @property
    def resolved_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def environment(self) -> dict[str, str]:
        """These settings as ``SCRAWN_*`` variables, for a server process of our own (Envoy's embedded Python,
        a worker) that reads them from its environment: flags win over the environment it inherits."""
        return {
            "SCRAWN_HOST": self.host,
            "SCRAWN_PORT": str(self.port),
            "SCRAWN_DATA_DIR": str(self.data_dir.resolve()),
            "SCRAWN_DATABASE_URL": self.database_url or "",
            "SCRAWN_LOG_LEVEL": self.log_level,
            "SCRAWN_LOG_FORMAT": self.log_format or "",
            "SCRAWN_IDLE_TIMEOUT": str(self.idle_timeout),
            "SCRAWN_READ_TIMEOUT": str(self.read_timeout),
        }

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def resolved_secret(self) -> str:
        """The server secret: HMAC key for API keys. Required with PostgreSQL (same on every replica)."""
        if self.secret:
            return self.secret
        if not self.is_sqlite:
            raise MissingSecret("SCRAWN_SECRET must be set when using PostgreSQL (the same on every replica)")
        path = self.data_dir / "secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
        return path.read_text().strip()


def _flag(value: str) -> bool:
    return value.strip().lower() not in ("0", "false", "no", "off")


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value.strip().lower() not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value.strip().lower()


def _whole(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {value!r}") from None


def normalise_database_url(url: str) -> str:
    """Map plain URLs onto the async drivers: sqlite → aiosqlite, postgresql → asyncpg."""
    for plain, driver in (
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def parse_schedule(text: str) -> tuple[int, ...]:
    """``SCRAWN_WEBHOOK_RETRY_SCHEDULE``: comma-separated positive whole seconds, e.g. ``5,300,1800``."""
    try:
        delays = tuple(int(part) for part in text.split(","))
    except ValueError:
        delays = ()
    if not delays or any(d <= 0 for d in delays):
        raise ValueError(f"SCRAWN_WEBHOOK_RETRY_SCHEDULE must be positive seconds like 5,300,1800: {text!r}")
    return delays


def positive_seconds(name: str, text: str) -> float:
    """A timeout setting: positive seconds, e.g. ``30`` or ``2.5``."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{name} must be positive seconds like 30: {text!r}")
    return seconds
