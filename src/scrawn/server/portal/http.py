"""The portal over HTTP: ``POST /api/v1/payments/portal-links`` (dash keys) makes a link; ``GET
/portal/{token}`` is the customer's read-only page and ``POST /portal/{token}/pay`` its Pay / Top up button,
which opens a checkout through ``payments/`` and sends the browser there. Every dead link is a bare 404."""

from __future__ import annotations

from importlib import resources
from urllib.parse import parse_qs

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from scrawn.errors import ScrawnError
from scrawn.server.api_support import Wrap, json_object
from scrawn.server.clock import iso
from scrawn.server.db.engine import Database
from scrawn.server.keys.service import Caller
from scrawn.server.logs import note_caller
from scrawn.server.openapi import STRING, TIME, obj, operation
from scrawn.server.payments.service import open_checkout
from scrawn.server.portal import service
from scrawn.server.portal.token import PortalClaims
from scrawn.server.secretbox import SecretBox

MAX_FORM = 4096
LINK_IN = obj(
    {"userId": STRING},
    {
        "returnUrl": STRING,
        "expiresIn": {"type": "integer", "minimum": service.MIN_LIFETIME, "maximum": service.MAX_LIFETIME},
    },
)
# The token is in the URL: no Referer may carry it off (to the payment provider, say), no cache may keep it.
HEADERS = {
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
}
_templates = Environment(
    loader=PackageLoader("scrawn.server.portal"), autoescape=select_autoescape(default=True)
)
_CSS = (resources.files("scrawn.server.portal") / "static" / "portal.css").read_text()


def _not_found() -> Response:
    return PlainTextResponse("Not Found", status_code=404, headers=HEADERS)


class PortalHttp:
    def __init__(self, db: Database, box: SecretBox, public_url: str) -> None:
        self._db = db
        self._box = box
        self._public_url = public_url

    def routes(self, wrap: Wrap) -> list[Route]:
        return [
            Route(
                "/api/v1/payments/portal-links",
                wrap(self.create_link, "create portal links"),
                methods=["POST"],
            ),
            Route("/portal/assets/portal.css", self.css, methods=["GET"]),
            Route("/portal/{token}", self.page, methods=["GET"]),
            Route("/portal/{token}/pay", self.pay, methods=["POST"]),
        ]

    @operation(
        "A customer portal link for one user",
        "portal links",
        obj({"url": STRING, "expiresAt": TIME}),
        status=201,
        body=LINK_IN,
    )
    async def create_link(self, request: Request, caller: Caller) -> Response:
        body = await json_object(request)
        user, return_url, lifetime = service.check_request(
            body.get("userId"), body.get("returnUrl"), body.get("expiresIn")
        )
        url, expires_at = service.create_link(self._box, self._public_url, caller, user, return_url, lifetime)
        return JSONResponse({"url": url, "expiresAt": iso(expires_at)}, status_code=201)

    async def css(self, request: Request) -> Response:
        return Response(_CSS, media_type="text/css", headers={"cache-control": "public, max-age=3600"})

    async def _claims(self, request: Request) -> PortalClaims | None:
        async with self._db.read() as conn:
            claims = await service.open_link(conn, self._box, request.path_params["token"])
        if claims is not None:
            note_caller(claims.project_id, claims.key_id, claims.mode)
        return claims

    async def page(self, request: Request) -> Response:
        claims = await self._claims(request)
        if claims is None:
            return _not_found()
        return await self._render(request, claims)

    async def _render(
        self, request: Request, claims: PortalClaims, error: str = "", status: int = 200
    ) -> Response:
        async with self._db.read() as conn:
            view = await service.load_view(conn, claims)
        token = request.path_params["token"]
        text = _templates.get_template("portal.html").render(view=view, token=token, error=error)
        return HTMLResponse(text, status_code=status, headers=HEADERS)

    async def pay(self, request: Request) -> Response:
        claims = await self._claims(request)
        if claims is None:
            return _not_found()
        raw = await request.body()
        form = parse_qs(raw.decode("utf-8", "replace")) if len(raw) <= MAX_FORM else {}
        amount = (form.get("amount") or [""])[0].strip()
        token = request.path_params["token"]
        try:
            async with self._db.read() as conn:
                top_up = await service.top_up(conn, claims, amount)
            checkout_id = await open_checkout(
                self._db,
                self._box,
                claims.project_id,
                claims.mode,
                claims.user_id,
                top_up=top_up,
                return_url=claims.return_url or f"{self._public_url}/portal/{token}",
                public_url=self._public_url,
            )
        except ScrawnError as e:  # nothing to pay, no provider, a bad amount: told on the page itself
            message = "amount: " + e.message.rsplit(": ", 1)[-1] if e.field == "topUpAmount" else e.message
            return await self._render(
                request, claims, f"Could not start the payment: {message}", e.api_http_status
            )
        return RedirectResponse(
            f"{self._public_url}/checkout/{checkout_id}", status_code=303, headers=HEADERS
        )
