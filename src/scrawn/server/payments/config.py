"""A project's checkout provider, per mode (docs/payments.md): validated on the way in, secrets sealed at
rest with a key derived from ``SCRAWN_SECRET`` and never returned in full."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import FailedPreconditionError, ValidationError
from scrawn.server.payments import repository
from scrawn.server.payments.types import PaymentConfig
from scrawn.server.projects import service as projects
from scrawn.server.secretbox import SecretBox

PROVIDERS = ("lemonsqueezy", "stripe")
DEFAULT_CHECKOUT_TTL = 24 * 3600
NOT_CONFIGURED = (
    "No payment provider is configured for this project and mode: set one with `scrawn payments "
    "configure` or PUT /api/v1/payments/config (provider lemonsqueezy or stripe, its API key, webhook "
    "secret and currency)"
)


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
    config = PaymentConfig(project_id=project_id, mode=mode, api_key_hint=clean["api_key"][-4:], **clean)
    sealed = replace(
        config,
        api_key=box.seal(config.api_key, _context(project_id, mode, "api_key")),
        webhook_secret=box.seal(config.webhook_secret, _context(project_id, mode, "webhook_secret")),
    )
    await repository.save_config(conn, sealed)
    return config


async def load(conn: AsyncConnection, box: SecretBox, project_id: str, mode: str) -> PaymentConfig | None:
    sealed = await repository.load_config(conn, project_id, mode)
    if sealed is None:
        return None
    try:
        return replace(
            sealed,
            api_key=box.open(sealed.api_key, _context(project_id, mode, "api_key")),
            webhook_secret=box.open(sealed.webhook_secret, _context(project_id, mode, "webhook_secret")),
        )
    except ValueError:
        raise FailedPreconditionError(
            "The payment configuration was sealed under another SCRAWN_SECRET and cannot be read: configure "
            "the provider again (`scrawn payments configure`)",
            field="provider",
        ) from None


async def require(conn: AsyncConnection, box: SecretBox, project_id: str, mode: str) -> PaymentConfig:
    config = await load(conn, box, project_id, mode)
    if config is None:
        raise FailedPreconditionError(NOT_CONFIGURED, field="provider")
    return config


async def remove(conn: AsyncConnection, project_id: str, mode: str) -> bool:
    return await repository.delete_config(conn, project_id, mode)
