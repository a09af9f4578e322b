"""A project's checkout provider, per mode (docs/payments.md): validated on the way in, secrets sealed at
rest with a key derived from ``SCRAWN_SECRET`` and never returned in full."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import FailedPreconditionError, ValidationError
from scrawn.server.clock import now_ms
from scrawn.server.db.engine import dialect_insert
from scrawn.server.db.schema import payment_configs
from scrawn.server.pricing.currency import minor_per_major
from scrawn.server.projects import service as projects
from scrawn.server.secretbox import SecretBox

PROVIDERS = ("lemonsqueezy", "stripe")
DEFAULT_CHECKOUT_TTL = 24 * 3600
NOT_CONFIGURED = (
    "No payment provider is configured for this project and mode: set one with `scrawn payments "
    "configure` or PUT /api/v1/payments/config (provider lemonsqueezy or stripe, its API key, webhook "
    "secret and currency)"
)


@dataclass(frozen=True)
class PaymentConfig:
    project_id: str
    mode: str
    provider: str
    api_key: str
    api_key_hint: str
    store_id: str | None
    variant_id: str | None
    product_name: str | None
    currency: str
    return_url: str | None
    webhook_secret: str
    api_base: str | None
    checkout_ttl: int

    @property
    def minor_per_major(self) -> int:
        """Minor units in one unit of the currency: 100 for USD, 1 for JPY."""
        return minor_per_major(self.currency)

    def public(self) -> dict[str, Any]:
        """What may be shown: everything but the secrets."""
        return {
            "provider": self.provider,
            "mode": self.mode,
            "apiKey": f"…{self.api_key_hint}",
            "storeId": self.store_id,
            "variantId": self.variant_id,
            "productName": self.product_name,
            "currency": self.currency,
            "returnUrl": self.return_url,
            "webhookSecret": "set",
            "apiBase": self.api_base,
            "checkoutTtl": self.checkout_ttl,
        }


def _fail(field: str, problem: str) -> ValidationError:
    return ValidationError(field, problem, context="Payment configuration failed")


def _text(values: dict[str, Any], field: str, *, required: bool, limit: int = 255) -> str | None:
    value = values.get(field)
    if value is None or value == "":
        if required:
            raise _fail(field, "is required")
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise _fail(field, f"must be a non-empty string of at most {limit} characters")
    if any(ord(c) < 0x20 for c in value):
        raise _fail(field, "must not contain control characters")
    return value.strip()


def check_url(field: str, value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(value) > 2048:
        raise _fail(field, "must be an http(s) URL of at most 2048 characters")
    return value


def validate(values: dict[str, Any], project_currency: str = "USD") -> dict[str, Any]:
    """Check a configuration as sent by the API or the CLI (camelCase keys); returns the clean fields."""
    provider = _text(values, "provider", required=True)
    if provider not in PROVIDERS:
        raise _fail("provider", "must be lemonsqueezy or stripe")
    currency = (_text(values, "currency", required=False, limit=3) or project_currency).upper()
    if len(currency) != 3 or not currency.isalpha() or not currency.isascii():
        raise _fail("currency", "must be a three-letter ISO 4217 code such as USD")
    if currency != project_currency:  # the ledger's amounts are in the project's currency
        raise _fail(
            "currency",
            f"must be the project's currency, {project_currency} (its ledger is kept in it; change the "
            "project's currency first)",
        )
    ttl = values.get("checkoutTtl", DEFAULT_CHECKOUT_TTL)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 3600 <= ttl <= 86400:
        raise _fail("checkoutTtl", "must be whole seconds between 3600 and 86400")
    clean: dict[str, Any] = {
        "provider": provider,
        "api_key": _text(values, "apiKey", required=True, limit=512),
        "webhook_secret": _text(values, "webhookSecret", required=True, limit=512),
        "store_id": _text(values, "storeId", required=provider == "lemonsqueezy", limit=64),
        "variant_id": _text(values, "variantId", required=provider == "lemonsqueezy", limit=64),
        "product_name": _text(values, "productName", required=False) or "Usage",
        "currency": currency,
        "return_url": check_url("returnUrl", _text(values, "returnUrl", required=False, limit=2048)),
        "api_base": check_url("apiBase", _text(values, "apiBase", required=False)),
        "checkout_ttl": ttl,
    }
    if provider == "lemonsqueezy":
        for field in ("storeId", "variantId"):
            if not str(values[field]).isdigit():
                raise _fail(field, "must be the numeric id Lemon Squeezy shows")
    return clean


def _context(project_id: str, mode: str, column: str) -> str:
    return f"{project_id}:{mode}:payment_configs.{column}"


async def save(
    conn: AsyncConnection, box: SecretBox, project_id: str, mode: str, values: dict[str, Any]
) -> PaymentConfig:
    clean = validate(values, (await projects.load(conn, project_id)).currency)
    row = {
        **clean,
        "project_id": project_id,
        "mode": mode,
        "api_key": box.seal(clean["api_key"], _context(project_id, mode, "api_key")),
        "api_key_hint": clean["api_key"][-4:],
        "webhook_secret": box.seal(clean["webhook_secret"], _context(project_id, mode, "webhook_secret")),
        "updated_at": now_ms(),
    }
    insert = dialect_insert(conn, payment_configs).values(**row)
    update = {k: insert.excluded[k] for k in row if k not in ("project_id", "mode")}
    await conn.execute(insert.on_conflict_do_update(index_elements=["project_id", "mode"], set_=update))
    config = await load(conn, box, project_id, mode)
    assert config is not None
    return config


async def load(conn: AsyncConnection, box: SecretBox, project_id: str, mode: str) -> PaymentConfig | None:
    row = (
        await conn.execute(
            select(payment_configs).where(
                payment_configs.c.project_id == project_id, payment_configs.c.mode == mode
            )
        )
    ).first()
    if row is None:
        return None
    try:
        api_key = box.open(row.api_key, _context(project_id, mode, "api_key"))
        webhook_secret = box.open(row.webhook_secret, _context(project_id, mode, "webhook_secret"))
    except ValueError:
        raise FailedPreconditionError(
            "The payment configuration was sealed under another SCRAWN_SECRET and cannot be read: configure "
            "the provider again (`scrawn payments configure`)",
            field="provider",
        ) from None
    return PaymentConfig(
        project_id=project_id,
        mode=mode,
        provider=row.provider,
        api_key=api_key,
        api_key_hint=row.api_key_hint,
        store_id=row.store_id,
        variant_id=row.variant_id,
        product_name=row.product_name,
        currency=row.currency,
        return_url=row.return_url,
        webhook_secret=webhook_secret,
        api_base=row.api_base,
        checkout_ttl=row.checkout_ttl,
    )


async def require(conn: AsyncConnection, box: SecretBox, project_id: str, mode: str) -> PaymentConfig:
    config = await load(conn, box, project_id, mode)
    if config is None:
        raise FailedPreconditionError(NOT_CONFIGURED, field="provider")
    return config


async def remove(conn: AsyncConnection, project_id: str, mode: str) -> bool:
    result = await conn.execute(
        delete(payment_configs).where(
            payment_configs.c.project_id == project_id, payment_configs.c.mode == mode
        )
    )
    return bool(result.rowcount)
