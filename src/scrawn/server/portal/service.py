"""The customer portal's rules (docs/portal.md): who may make a link and for how long, when a link is dead,
and what one user's page shows — balance, usage per day and per model, recent charges and why."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import ValidationError
from scrawn.server.clock import iso, now_ms, time_zone
from scrawn.server.events import service as event_service
from scrawn.server.events.service import UsageTotal
from scrawn.server.keys.service import Caller, KeyService
from scrawn.server.ledger import service as ledger
from scrawn.server.limits import MAX_USER_ID
from scrawn.server.payments import config as configs
from scrawn.server.payments.service import check_top_up
from scrawn.server.portal.money import display, from_major
from scrawn.server.portal.token import PortalClaims, sign, verify
from scrawn.server.projects import service as projects
from scrawn.server.secretbox import SecretBox
from scrawn.server.usage import series

CONTEXT = "Portal link validation failed"
DEFAULT_LIFETIME, MIN_LIFETIME, MAX_LIFETIME = 3600, 60, 7 * 86_400  # seconds
USAGE_DAYS = 30
RECENT_CHARGES = 20
KIND_NAMES = {
    "usage": "Usage",
    "payment": "Payment",
    "top_up": "Top-up",
    "grant": "Credit granted",
    "adjustment": "Adjustment",
    "refund": "Refund",
    "debit": "Charge",
    "capture": "Usage (reserved)",
    "expiry": "Credit expired",
    "void": "Usage voided",
}


def _fail(field: str, problem: str) -> ValidationError:
    return ValidationError(field, problem, context=CONTEXT)


def check_request(user_id: object, return_url: object, expires_in: object) -> tuple[str, str | None, int]:
    """(user id, return URL, lifetime in seconds) of a link request, or the error naming the bad field."""
    if not isinstance(user_id, str) or not user_id.strip() or len(user_id) > MAX_USER_ID:
        raise _fail("userId", f"must be a non-empty string of at most {MAX_USER_ID} characters")
    if return_url is not None and not isinstance(return_url, str):
        raise _fail("returnUrl", "must be an http(s) URL of at most 2048 characters")
    try:
        configs.check_url("returnUrl", return_url)
    except ValidationError as e:
        raise _fail("returnUrl", e.problem) from None
    lifetime = DEFAULT_LIFETIME if expires_in is None else expires_in
    if (
        not isinstance(lifetime, int)
        or isinstance(lifetime, bool)
        or not MIN_LIFETIME <= lifetime <= MAX_LIFETIME
    ):
        raise _fail("expiresIn", f"must be whole seconds from {MIN_LIFETIME} to {MAX_LIFETIME} (7 days)")
    return user_id, return_url, lifetime


def create_link(
    box: SecretBox, public_url: str, caller: Caller, user_id: str, return_url: str | None, lifetime: int
) -> tuple[str, int]:
    """(``{public_url}/portal/{token}``, expiry in Unix ms). Nothing is stored: the token is the link."""
    expires_at = now_ms() + lifetime * 1000
    claims = PortalClaims(caller.project_id, caller.mode, user_id, expires_at, caller.key_id, return_url)
    return f"{public_url}/portal/{sign(box, claims)}", expires_at


async def open_link(conn: AsyncConnection, box: SecretBox, token: str) -> PortalClaims | None:
    """The claims of a live link: genuine, unexpired, made by a key neither revoked nor expired."""
    claims = verify(box, token, now_ms())
    if claims is None or await KeyService.live_key(conn, claims.project_id, claims.key_id) is None:
        return None
    return claims


async def top_up(conn: AsyncConnection, claims: PortalClaims, text: str) -> Decimal | None:
    """The portal's top-up field (whole currency units, e.g. ``25`` or ``9.99``) in the project's amount
    unit; None when empty (pay what is owed)."""
    if not text:
        return None
    major = check_top_up(text)
    assert major is not None
    return from_major(major, await projects.load(conn, claims.project_id))


@dataclass(frozen=True)
class Row:
    label: str
    amount: str  # displayed, e.g. "USD 12.345"
    detail: str = ""


@dataclass(frozen=True)
class PortalView:
    user_id: str
    mode: str
    currency: str
    balance: str
    available: str
    held: str
    owed: Decimal  # what a "Pay" checkout would charge (0: nothing owed)
    owed_text: str
    days: list[Row]
    models: list[Row]
    charges: list[Row]
    time_zone: str = "UTC"  # the project's: the days above are its days
    usage_days: int = USAGE_DAYS


def _days(days: list[series.Bucket], spans: list[UsageTotal], tz: ZoneInfo) -> list[UsageTotal]:
    """The spans added up per local day (keyed by its date), days without usage left out, oldest first."""
    starts = [d.start_ms for d in days]
    totals: dict[int, UsageTotal] = {}
    for span in spans:
        i = bisect_right(starts, int(span.key)) - 1
        was = totals.get(i)
        if was is None:
            label = datetime.fromtimestamp(starts[i] / 1000, tz).date().isoformat()
            totals[i] = UsageTotal(label, span.amount, span.events)
        else:
            totals[i] = UsageTotal(was.key, was.amount + span.amount, was.events + span.events)
    return [totals[i] for i in sorted(totals)]


async def load_view(conn: AsyncConnection, claims: PortalClaims) -> PortalView:
    project = await projects.load(conn, claims.project_id)
    scope = (claims.project_id, claims.mode, claims.user_id)
    balance = await ledger.read(conn, *scope)
    tz = time_zone(project.time_zone)
    days = series.last(now_ms(), tz, "day", USAGE_DAYS)  # local days of the project's time zone
    since = days[0].start_ms
    by_day = _days(days, await event_service.usage_by_span(conn, *scope, since, series.width(days)), tz)
    by_model = await event_service.usage_by_model(conn, *scope, since)
    entries = await ledger.list_entries(conn, *scope, RECENT_CHARGES, None)
    owed = max(-balance.balance, Decimal(0))

    def events(n: int) -> str:
        return f"{n} event{'' if n == 1 else 's'}"

    return PortalView(
        user_id=claims.user_id,
        mode=claims.mode,
        currency=project.currency,
        balance=display(balance.balance, project),
        available=display(balance.available, project),
        held=display(balance.held, project),
        owed=owed,
        owed_text=display(owed, project),
        days=[Row(d.key, display(d.amount, project), events(d.events)) for d in by_day],
        models=[
            Row(m.key or "(no model)", display(m.amount, project), events(m.events))
            for m in sorted(by_model, key=lambda m: (m.amount, m.key), reverse=True)
        ],
        time_zone=project.time_zone,
        charges=[
            Row(
                iso(e.created_at)[:16].replace("T", " "),
                display(e.amount, project),
                " · ".join(p for p in (KIND_NAMES.get(e.kind, e.kind), e.description or "") if p),
            )
            for e in entries[:RECENT_CHARGES]
        ],
    )
