"""An operator's mistakes, found before anything starts and said in one or two lines (docs/cli.md): what is
wrong, and what to do. ``scrawn serve`` runs these before "serving on", ``scrawn doctor`` runs them all,
and every command turns a database it cannot open or use into the same sentences."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

from sqlalchemy.engine import make_url

from scrawn.server.config import MissingSecret, Settings
from scrawn.server.entry import OperatorError as OperatorError

CONNECT_TIMEOUT = 10.0  # seconds: an unreachable host must not hang a command for the driver's minute


def shown_url(settings: Settings) -> str:
    """The database URL without its password."""
    url = settings.database_url or f"sqlite:///{settings.data_dir / 'scrawn.db'}"
    return make_url(url).render_as_string(hide_password=True)


def sqlite_file(settings: Settings) -> Path | None:
    """The SQLite database file, or None on PostgreSQL (or an in-memory SQLite)."""
    if not settings.is_sqlite:
        return None
    name = make_url(settings.resolved_database_url).database
    return Path(name) if name and name != ":memory:" else None


def require_database_file(settings: Settings, hint: str = "") -> None:
    """Commands that read or change data never create a database: a missing file is a wrong directory."""
    path = sqlite_file(settings)
    if path is not None and not path.is_file():
        where = "" if path.is_absolute() else f" (looked in {Path.cwd()})"
        raise OperatorError(
            f"no Scrawn database at {path}{where}",
            hint
            or "run this where you ran `scrawn init`/`scrawn serve`, or pass --data-dir or --database-url "
            "(SCRAWN_DATA_DIR, SCRAWN_DATABASE_URL); `scrawn init` creates a new one",
        )


def require_sqlite_directory(settings: Settings) -> None:
    """An explicit SQLite URL must point into a directory that exists (the data directory is made)."""
    path = sqlite_file(settings)
    if path is not None and settings.database_url is not None and not path.parent.is_dir():
        raise OperatorError(
            f"cannot create the SQLite database {path}: the directory {path.parent} does not exist",
            "create the directory or fix SCRAWN_DATABASE_URL/--database-url",
        )


MISSING_SECRET = OperatorError(
    "SCRAWN_SECRET is not set, and PostgreSQL needs it (the same value on every server)",
    "set SCRAWN_SECRET to the secret this database was set up with "
    "(a new one: `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)",
)


def require_secret(settings: Settings) -> str:
    try:
        return settings.resolved_secret()
    except MissingSecret:
        raise MISSING_SECRET from None
    except OSError as e:
        raise OperatorError(
            f"cannot read or create the secret file in {settings.data_dir}: {e.strerror}",
            "check the data directory's permissions, or set SCRAWN_SECRET",
        ) from None


def check_port(host: str, port: int) -> None:
    """The address is free to listen on (the server binds it a moment later)."""
    if not 0 < port < 65536:
        raise OperatorError(f"port {port} is not a TCP port", "pass --port (SCRAWN_PORT) from 1 to 65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise OperatorError(f"cannot listen on {host}: {e.strerror}", "pass --host (SCRAWN_HOST)") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server itself binds
        try:
            s.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise OperatorError(
                    f"port {port} on {host} is already in use",
                    "stop the process using it, or pass another --port (SCRAWN_PORT)",
                ) from None
            raise OperatorError(
                f"cannot listen on {host}:{port}: {e.strerror}", "pass another --host or --port"
            ) from None


def _chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in found:
        found.append(seen)
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    return found


def database_error(exc: BaseException, settings: Settings) -> OperatorError | None:
    """What an operator should read for a database that could not be opened or used, else None."""
    if isinstance(exc, MissingSecret):
        return MISSING_SECRET
    url = shown_url(settings)
    names = {type(e).__name__ for e in _chain(exc)}
    text = " ".join(str(e) for e in _chain(exc)).lower()
    fix_url = "check SCRAWN_DATABASE_URL/--database-url"
    if "unable to open database file" in text:
        return OperatorError(f"cannot open the SQLite database {url}", "check the path and its permissions")
    if "no such table" in text or "UndefinedTableError" in names:
        return OperatorError(f"the database {url} has no Scrawn schema", "run `scrawn migrate` first")
    if "InvalidCatalogNameError" in names:
        return OperatorError(f"the PostgreSQL database in {url} does not exist", f"create it, or {fix_url}")
    if names & {"InvalidPasswordError", "InvalidAuthorizationSpecificationError"}:
        return OperatorError(f"PostgreSQL refused the credentials in {url}", fix_url)
    if isinstance(exc, TimeoutError) or "TimeoutError" in names:
        return OperatorError(f"PostgreSQL at {url} did not answer in {CONNECT_TIMEOUT:g} s", fix_url)
    if names & {"ConnectionRefusedError", "gaierror", "ConnectionError", "OSError", "CannotConnectNowError"}:
        return OperatorError(f"cannot reach the database at {url}", f"is PostgreSQL running? {fix_url}")
    return None
