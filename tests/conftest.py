"""Shared fixtures: real databases (SQLite files, fresh PostgreSQL databases) and real ``scrawn serve``
subprocesses on free loopback ports."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from scrawn.server.config import Settings
from scrawn.server.db.engine import Database

PG_URL = os.environ.get("SCRAWN_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("SCRAWN_REQUIRE_POSTGRES") == "1"
SECRET = "test-secret-" + "x" * 20
TS_DIR = Path(__file__).resolve().parent / "ts"  # the TypeScript client scripts and their npm packages


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """For ``--dist loadgroup`` (scripts/test): the tests of a module that share a module- or class-scoped
    fixture (a ``module_server``) stay on one worker, which starts it once; every other test is handed out on
    its own, so a module of slow tests with servers of their own is spread over every worker."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        scopes = {d.scope for defs in info.name2fixturedefs.values() for d in defs} if info else set()
        if scopes & {"module", "class", "package"}:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__ if item.module else item.nodeid))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_admin(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_URL, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def _pg_available() -> bool:
    try:
        _pg_admin("SELECT 1")
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def postgres_ok() -> bool:
    ok = _pg_available()
    if not ok and REQUIRE_PG:
        pytest.fail(f"PostgreSQL is required (SCRAWN_REQUIRE_POSTGRES=1) but {PG_URL} is unreachable")
    return ok


def new_pg_database() -> tuple[str, str]:
    """Create a fresh database; returns (url, name)."""
    name = f"scrawn_test_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    base = PG_URL.rsplit("/", 1)[0]
    return f"{base}/{name}", name


def drop_pg_database(name: str) -> None:
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# This worker's migrated templates, made once each: the SQLite file, the PostgreSQL database name.
_templates: dict[str, str] = {}


def _template(kind: str) -> str:
    from scrawn.server.db.migrate import migrate

    if kind not in _templates:
        if kind == "sqlite":
            name = str(Path(tempfile.mkdtemp(prefix="scrawn-template-")) / "template.db")
            url = f"sqlite:///{name}"
        else:
            url, name = new_pg_database()

        async def run() -> None:
            db = Database(url)
            try:
                await migrate(db)
            finally:
                await db.dispose()

        run_async(run())
        _templates[kind] = name
    return _templates[kind]


@pytest.fixture(scope="session", autouse=True)
def _drop_templates() -> Iterator[None]:
    yield
    if "postgres" in _templates:
        drop_pg_database(_templates.pop("postgres"))
    if "sqlite" in _templates:
        shutil.rmtree(Path(_templates.pop("sqlite")).parent, ignore_errors=True)


def clone_migrated(database_url: str) -> bool:
    """Bring an empty database to the latest schema by copying a template this worker migrated once, as
    ``scrawn migrate`` would have left it (a server start then skips replaying every migration; ``migrate``
    itself is tested on empty databases). A database that has tables is left alone; False then."""
    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        if path.exists() and path.stat().st_size:
            return False
        source, target = sqlite3.connect(_template("sqlite")), sqlite3.connect(path)
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
        return True
    name = database_url.rsplit("/", 1)[1]

    async def tables() -> int:
        import asyncpg

        conn = await asyncpg.connect(database_url, timeout=5)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"))
        finally:
            await conn.close()

    if run_async(tables()):
        return False
    template = _template("postgres")
    drop_pg_database(name)
    _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return True


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, postgres_ok: bool) -> Iterator[str]:
    """A fresh, empty database of each kind: SQLite in tmp_path, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'scrawn.db'}"
        return
    if not postgres_ok:
        pytest.skip("PostgreSQL unavailable")
    url, name = new_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(name)


@dataclass
class ServerHandle:
    """A running ``scrawn serve`` subprocess and the keys made for it."""

    base_url: str
    port: int
    database_url: str
    data_dir: Path
    project_id: str
    dash_key: str
    live_key: str
    test_key: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.log_path or os.devnull, "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "scrawn.server.cli", "serve"], env=self.env, stdout=log, stderr=log
        )
        wait_ready(self.base_url, self.process)

    def stop(self, sig: int | None = None) -> None:
        if self.process is None:
            return
        if sig is None:
            self.process.terminate()
        else:
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        # Every server of the whole run: whatever it logged, no API key (docs/configuration.md#logs).
        leaked = [line for line in self.log().splitlines() if "scrn_" in line]
        assert not leaked, f"an API key in the server's log: {leaked[:3]}"

    def db(self) -> Database:
        return Database(self.database_url)

    def create_key(self, role: str, name: str = "test", expires_in: int | None = None) -> str:
        return run_async(_create_key(self, role, name, expires_in))

    def set_late_window(self, days: int) -> None:
        """The project's late-event window (docs/events.md#late-events): tests replaying fixed past dates
        widen it (up to 3650 days)."""
        run_async(_update_project(self, late_window=days))

    def set_time_zone(self, name: str) -> None:
        """The project's time zone (docs/dashboard.md#time-zone): the days of its charts."""
        run_async(_update_project(self, time_zone=name))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)


async def _create_key(server: ServerHandle, role: str, name: str, expires_in: int | None) -> str:
    from scrawn.server.keys.service import KeyService

    db = server.db()
    try:
        async with db.write() as conn:
            _, key = await KeyService(db, SECRET).create_key(conn, server.project_id, role, name, expires_in)  # type: ignore[arg-type]
        return key
    finally:
        await db.dispose()


async def _update_project(server: ServerHandle, **changes: Any) -> None:
    from scrawn.server.projects import service as projects

    db = server.db()
    try:
        async with db.write() as conn:
            await projects.update_project(conn, server.project_id, **changes)
    finally:
        await db.dispose()


def wait_ready(base_url: str, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"scrawn serve exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError("scrawn serve did not become ready")


def make_server(database_url: str, data_dir: Path) -> ServerHandle:
    """Migrate, create a project with dash/live/test keys, and start a server (not yet started)."""
    from scrawn.server.projects.service import bootstrap

    settings = Settings(data_dir=data_dir, database_url=database_url, secret=SECRET)

    async def setup() -> tuple[str, str]:
        db = Database(settings.resolved_database_url)
        try:
            created = await bootstrap(db, settings, "test", only_if_empty=False)
            assert created is not None
            return created
        finally:
            await db.dispose()

    clone_migrated(database_url)
    project_id, dash = run_async(setup())
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRAWN_")}
    env |= {
        "SCRAWN_PORT": str(port),
        "SCRAWN_DATA_DIR": str(data_dir),
        "SCRAWN_DATABASE_URL": database_url,
        "SCRAWN_SECRET": SECRET,
        "SCRAWN_LOG_LEVEL": "warning",
        "SCRAWN_WORKERS": "1",  # one process whatever the CPUs (the default); test_workers.py runs 2
        # SCRAWN_TEST_SERVER=pyvoy runs every test's server on pyvoy (docs/configuration.md).
        "SCRAWN_SERVER": os.environ.get("SCRAWN_TEST_SERVER", "hypercorn"),
    }
    handle = ServerHandle(
        base_url=f"http://127.0.0.1:{port}",
        port=port,
        database_url=database_url,
        data_dir=data_dir,
        project_id=project_id,
        dash_key=dash,
        live_key="",
        test_key="",
        log_path=data_dir / "server.log",
        env=env,
    )
    handle.live_key = handle.create_key("live", "live")
    handle.test_key = handle.create_key("test", "test")
    return handle


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServerHandle]:
    """A real ``scrawn serve`` on a free port, on SQLite and on PostgreSQL."""
    handle = make_server(database_url, tmp_path)
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def module_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, postgres_ok: bool
) -> Iterator[ServerHandle]:
    """One real server per test module and database, for tests that do not interfere with each other."""
    data_dir = tmp_path_factory.mktemp("server")
    pg_name = None
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'scrawn.db'}"
    elif not postgres_ok:
        pytest.skip("PostgreSQL unavailable")
    else:
        url, pg_name = new_pg_database()
    handle = make_server(url, data_dir)
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()
        if pg_name:
            drop_pg_database(pg_name)


@pytest.fixture(scope="session")
def node() -> str:
    """The node binary, with tests/ts's npm dependencies installed."""
    node = shutil.which("node")
    problem = None
    if node is None:
        problem = "node (Node.js >= 20) is not on PATH"
    elif (
        not (TS_DIR / "node_modules" / "@connectrpc" / "connect-node").is_dir()
        or not (TS_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir()
    ):
        problem = "tests/ts/node_modules is missing: run `npm ci --prefix tests/ts`"
    if problem is not None:
        if REQUIRE_PG:
            pytest.fail(f"TypeScript client tests are required in CI (SCRAWN_REQUIRE_POSTGRES=1): {problem}")
        pytest.skip(problem)
    assert node is not None
    return node
