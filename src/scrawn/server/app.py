"""The one ASGI application (DESIGN §1): Connect + gRPC + gRPC-web services, the JSON API, health."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from google.protobuf import descriptor_pool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from scrawn._proto.auth.v1.auth_connect import AuthServiceASGIApplication
from scrawn._proto.event.v1.event_connect import EventServiceASGIApplication
from scrawn._proto.payment.v1.payment_connect import PaymentServiceASGIApplication
from scrawn._proto.query.v1.query_connect import QueryServiceASGIApplication
from scrawn._proto.usage.v1.usage_connect import UsageServiceASGIApplication
from scrawn._proto.wallet.v1.wallet_connect import WalletServiceASGIApplication
from scrawn.server import access
from scrawn.server.api import JsonApi
from scrawn.server.config import Settings
from scrawn.server.dashboard.routes import routes as dashboard_routes
from scrawn.server.dashboard.web import Dashboard
from scrawn.server.db.engine import Database
from scrawn.server.db.migrate import migrate, pending
from scrawn.server.drain import read_body_before_answering
from scrawn.server.events.committer import GroupCommitter
from scrawn.server.events.rpc import EventRpc
from scrawn.server.events.service import EventService
from scrawn.server.keys.rpc import AuthRpc
from scrawn.server.keys.service import KeyService
from scrawn.server.metrics import Metrics
from scrawn.server.payments.rpc import PaymentRpc
from scrawn.server.query.rpc import QueryRpc
from scrawn.server.secretbox import SecretBox
from scrawn.server.usage.rpc import UsageServiceRpc
from scrawn.server.wallets.expiry import ReservationExpirer
from scrawn.server.wallets.rpc import WalletRpc
from scrawn.server.webhooks.deliverer import WebhookDeliverer

log = logging.getLogger("scrawn.server")
READ_MAX_BYTES = 8 * 1024 * 1024  # large enough that oversized fields reach validation and get named

Scope = dict[str, Any]
ASGIApp = Any


@dataclass
class Services:
    db: Database
    keys: KeyService
    committer: GroupCommitter
    events: EventService
    metrics: Metrics | None


def build_services(settings: Settings) -> Services:
    db = Database(settings.resolved_database_url)
    keys = KeyService(db, settings.resolved_secret())
    metrics = Metrics() if settings.metrics else None
    committer = GroupCommitter(db, observer=metrics)
    return Services(db, keys, committer, EventService(db, committer, metrics), metrics)


def rpc_method_paths(service_paths: list[str]) -> list[str]:
    """``/package.Service/Method`` for every method of the services at ``service_paths``."""
    pool = descriptor_pool.Default()  # the generated modules imported above registered every service
    return [
        f"{path}/{method.name}"
        for path in service_paths
        for method in pool.FindServiceByName(path.strip("/")).methods
    ]


async def ensure_schema(db: Database) -> None:
    """SQLite is migrated on start; PostgreSQL must have been migrated with ``scrawn migrate``."""
    if db.is_sqlite:
        await migrate(db)
        return
    if await pending(db):
        raise RuntimeError("The PostgreSQL database's Scrawn schema is missing or old: run `scrawn migrate`")


# grpc-message must be percent-encoded only outside printable ASCII (and '%') per the gRPC HTTP/2 spec.
# connectrpc quotes every reserved character ("Invalid API key%3A …"); grpc-js, which the TS SDK uses, reads
# it with decodeURI, which leaves %3A, %2F, %3D … encoded. Re-encode it the way the spec (and grpc-js) expect.
_GRPC_MESSAGE_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def _grpc_message_sender(send: Any) -> Any:
    def fix(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        return [
            (k, quote(unquote(v.decode("latin-1")), safe=_GRPC_MESSAGE_SAFE).encode("ascii"))
            if k.lower() == b"grpc-message"
            else (k, v)
            for k, v in headers
        ]

    async def wrapped(message: Any) -> None:
        if message["type"] in ("http.response.start", "http.response.trailers") and message.get("headers"):
            message = {**message, "headers": fix(list(message["headers"]))}
        await send(message)

    return wrapped


def create_app(settings: Settings) -> ASGIApp:
    services = build_services(settings)
    expirer = ReservationExpirer(services.db)
    box = SecretBox(settings.resolved_secret())
    deliverer = WebhookDeliverer(services.db, box, settings.webhook_retry_schedule)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if settings.is_sqlite:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        await ensure_schema(services.db)
        services.committer.start()
        # Everything alive now lives as long as the process: keep the cyclic GC from rescanning it.
        gc.collect()
        gc.freeze()
        expirer.start()
        deliverer.start()
        log.info("scrawn ready on %s", settings.resolved_database_url.split("@")[-1])
        yield
        await deliverer.close()
        await expirer.close()
        await services.committer.close()  # every accepted event is committed before we exit
        await services.db.dispose()

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        try:
            await services.db.ping()
        except Exception as e:  # readiness reports, never raises
            return JSONResponse({"status": "unavailable", "error": type(e).__name__}, status_code=503)
        return JSONResponse({"status": "ready"})

    api = JsonApi(services.db, services.keys, box, settings.resolved_public_url)
    dashboard = Dashboard(
        services.db, services.keys, box, settings.resolved_secret(), settings.resolved_public_url
    )
    metrics = services.metrics
    # No auth: the bind is loopback by default, and it exposes counts only, no tenant data.
    metrics_routes = [] if metrics is None else [Route("/metrics", metrics.endpoint(services.db))]
    http = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *metrics_routes,
            *api.routes(),
            *dashboard_routes(dashboard),
        ],
        lifespan=lifespan,
    )
    rpc_apps = [
        EventServiceASGIApplication(
            EventRpc(services.db, services.keys, services.events), read_max_bytes=READ_MAX_BYTES
        ),
        AuthServiceASGIApplication(AuthRpc(services.db, services.keys), read_max_bytes=READ_MAX_BYTES),
        QueryServiceASGIApplication(QueryRpc(services.db, services.keys), read_max_bytes=READ_MAX_BYTES),
        UsageServiceASGIApplication(
            UsageServiceRpc(services.db, services.keys, services.events), read_max_bytes=READ_MAX_BYTES
        ),
        WalletServiceASGIApplication(WalletRpc(services.db, services.keys), read_max_bytes=READ_MAX_BYTES),
        PaymentServiceASGIApplication(
            PaymentRpc(services.db, services.keys, box, settings.resolved_public_url),
            read_max_bytes=READ_MAX_BYTES,
        ),
    ]
    # An oversized message is refused alone: its call reads its body to the end (server/drain.py).
    routes = {app.path + "/": read_body_before_answering(app) for app in rpc_apps}

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            slash = path.find("/", 1)
            target = routes.get(path[: slash + 1]) if slash > 0 else None
            if target is not None:
                await target(scope, receive, _grpc_message_sender(send))
                return
        await http(scope, receive, send)

    # Outermost, so the time and status cover everything the client sees.
    methods = rpc_method_paths([a.path for a in rpc_apps])
    served: Any = access.wrap(app, methods, metrics)
    served.services = services
    served.routes = http.routes  # the HTTP route table: the OpenAPI tests check the document against it
    return served
