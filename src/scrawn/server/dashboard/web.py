"""The dashboard's frame: templates, the signed-in check on every request, CSRF on every form, sign-in and
sign-out, and the security headers. Pages live in ``pages_*.py`` and receive a ``View``."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from scrawn.errors import ScrawnError, UnauthenticatedError
from scrawn.server.clock import time_zone
from scrawn.server.dashboard import format as fmt
from scrawn.server.dashboard.sessions import COOKIE as SESSION_COOKIE
from scrawn.server.dashboard.sessions import PRE_COOKIE, Session, Sessions, SignInLimiter
from scrawn.server.db.engine import Database
from scrawn.server.keys.service import KeyService, parse_bearer
from scrawn.server.keys.types import Caller
from scrawn.server.projects import service as projects
from scrawn.server.secretbox import SecretBox

log = logging.getLogger("scrawn.dashboard")
HERE = Path(__file__).parent
MODES = ("live", "test")
MAX_FORM = 64 * 1024
HEADERS = {
    # Everything is served from here; nothing inline runs, nothing frames us.
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
    "x-frame-options": "DENY",
}


NAV = (
    ("overview", "Overview"),
    ("events", "Events"),
    ("customers", "Customers"),
    ("pricing", "Pricing"),
    ("keys", "Keys"),
    ("payments", "Payments"),
    ("webhooks", "Webhooks"),
    ("quarantine", "Quarantine"),
)
SECTIONS = {"customer": "customers"}  # a detail page's section in the navigation


@dataclass
class View:
    """What a page handler gets: the caller (project, mode), how to show money, and the form token."""

    request: Request
    caller: Caller
    money: fmt.Money
    project_name: str
    csrf: str
    form: dict[str, str]
    zone: ZoneInfo  # the project's time zone: charts bucket by it

    @property
    def mode(self) -> str:
        return self.caller.mode

    def url(self, page: str, **query: object) -> str:
        """``/dashboard/{mode}/{page}`` with the non-empty ``query`` parameters."""
        params = {k: str(v) for k, v in query.items() if v not in (None, "")}
        return f"/dashboard/{self.mode}/{page}" + (f"?{urlencode(params)}" if params else "")


Handler = Callable[[View], Awaitable[Response]]


class Dashboard:
    def __init__(self, db: Database, keys: KeyService, box: SecretBox, secret: str, public_url: str) -> None:
        self.db = db
        self.keys = keys
        self.box = box
        self.public_url = public_url
        self.sessions = Sessions(secret)
        self.limiter = SignInLimiter()
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["when"] = fmt.when

    # Rendering -----------------------------------------------------------------------------------------

    def html(self, template: str, status: int = 200, /, **context: Any) -> HTMLResponse:
        body = self.templates.get_template(template).render(**context)
        return HTMLResponse(body, status_code=status, headers=HEADERS)

    def render(self, view: View, template: str, status: int = 200, /, **context: Any) -> HTMLResponse:
        parts = view.request.url.path.split("/")  # "", "dashboard", mode, section, …
        section = SECTIONS.get(parts[3], parts[3]) if len(parts) > 3 else "overview"
        other = "test" if view.mode == "live" else "live"
        return self.html(
            template,
            status,
            v=view,
            money=view.money,
            here=section,
            nav=NAV,
            switch_url=f"/dashboard/{other}/{section}",
            **context,
        )

    # Pages ----------------------------------------------------------------------------------------------

    def page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a page: a valid session whose key is still a live dash key, the mode from the URL, CSRF on
        POST, and errors shown on the page (the service's message names the field)."""

        async def run(request: Request) -> Response:
            mode = request.path_params.get("mode")
            if mode not in MODES:
                return self.html("error.html", 404, message="No such page.")
            session = self.sessions.decode(request.cookies.get(SESSION_COOKIE))
            caller = await self._caller(session, mode)
            if session is None or caller is None:
                return _to_sign_in(request)
            form: dict[str, str] = {}
            if request.method == "POST":
                form = await read_form(request)
                if not self.sessions.csrf_ok(session.nonce, form.get("csrf")):
                    return self.html(
                        "error.html", 403, message="This form expired. Reload the page and try again."
                    )
            async with self.db.read() as conn:
                project = await projects.load(conn, caller.project_id)
            view = View(
                request,
                caller,
                fmt.Money.of(project),
                project.name,
                self.sessions.csrf_token(session.nonce),
                form,
                time_zone(project.time_zone),
            )
            try:
                response = await handler(view)
            except ScrawnError as e:
                response = self.render(view, "error.html", e.api_http_status, message=e.message)
            except Exception:
                request_id = uuid.uuid4().hex
                log.exception("dashboard error (request id %s)", request_id)
                response = self.render(
                    view, "error.html", 500, message=f"Internal error (request id {request_id})"
                )
            if session.needs_refresh(int(time.time())):
                self._set_cookie(request, response, self.sessions.touched(session))
            return response

        return run

    async def _caller(self, session: Session | None, mode: str) -> Caller | None:
        if session is None:
            return None
        try:
            caller = await self.keys.authenticate_digest(session.digest, mode)
        except UnauthenticatedError:
            return None
        return caller if caller.role == "dash" else None

    # Sign-in and sign-out -------------------------------------------------------------------------------

    async def sign_in_form(self, request: Request) -> Response:
        return self._sign_in_page(request, None, 200)

    def _sign_in_page(self, request: Request, error: str | None, status: int) -> Response:
        nonce = request.cookies.get(PRE_COOKIE) or uuid.uuid4().hex
        response = self.html(
            "signin.html",
            status,
            csrf=self.sessions.csrf_token(nonce),
            error=error,
            next=_safe_next(request.query_params.get("next")),
        )
        response.set_cookie(
            PRE_COOKIE, nonce, httponly=True, samesite="strict", secure=_https(request), path="/dashboard"
        )
        return response

    async def sign_in(self, request: Request) -> Response:
        client = request.client.host if request.client else "?"
        form = await read_form(request)
        nonce = request.cookies.get(PRE_COOKIE)
        if nonce is None or not self.sessions.csrf_ok(nonce, form.get("csrf")):
            return self._sign_in_page(request, "This form expired. Try again.", 403)
        if not self.limiter.allowed(client):
            return self._sign_in_page(request, "Too many attempts. Wait a few minutes and try again.", 429)
        key = form.get("key", "").strip()
        try:
            digest = self.keys.digest(parse_bearer(f"Bearer {key}"))
            caller = await self.keys.authenticate_digest(digest)
        except UnauthenticatedError as e:
            self.limiter.failed(client)
            return self._sign_in_page(request, e.message, 401)
        if caller.role != "dash":
            self.limiter.failed(client)
            return self._sign_in_page(
                request, "Only a dashboard key (scrn_dash_…) can sign in; live and test keys cannot.", 403
            )
        response = RedirectResponse(_safe_next(form.get("next")) or "/dashboard/live/overview", 303)
        self._set_cookie(request, response, self.sessions.new(digest))
        response.delete_cookie(PRE_COOKIE, path="/dashboard", httponly=True, samesite="strict")
        return response

    async def sign_out(self, request: Request) -> Response:
        form = await read_form(request)
        session = self.sessions.decode(request.cookies.get(SESSION_COOKIE))
        if session is not None and not self.sessions.csrf_ok(session.nonce, form.get("csrf")):
            return self.html("error.html", 403, message="This form expired. Reload the page and try again.")
        response = RedirectResponse("/dashboard/sign-in", 303)
        response.delete_cookie(SESSION_COOKIE, path="/dashboard", httponly=True, samesite="strict")
        return response

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/dashboard/live/overview", 303)

    def _set_cookie(self, request: Request, response: Response, session: Session) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            self.sessions.encode(session),
            httponly=True,
            samesite="strict",
            secure=_https(request),
            path="/dashboard",
        )


def _https(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def _safe_next(target: str | None) -> str | None:
    """Only our own dashboard paths: never an open redirect."""
    if target and target.startswith("/dashboard/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def _to_sign_in(request: Request) -> Response:
    if request.method != "GET":
        return RedirectResponse("/dashboard/sign-in", 303)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/dashboard/sign-in?{urlencode({'next': target})}", 303)


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form (the only kind our pages send), first value of each field."""
    raw = await request.body()
    if len(raw) > MAX_FORM:
        return {}  # no CSRF token in it either: refused
    parsed = parse_qs(raw.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}
