"""The payments domain's values, as the repository returns them and the service uses them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from scrawn.server.pricing.currency import minor_per_major


@dataclass(frozen=True)
class PaymentConfig:
    """A project's checkout provider in one mode. ``api_key`` and ``webhook_secret`` are sealed as the
    repository stores and returns them, and open once ``payments/config.py`` has opened them."""

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


@dataclass(frozen=True)
class CheckoutRecord:
    """A checkout link: one provider session for one user and amount."""

    project_id: str
    mode: str
    id: str
    user_id: str
    purpose: str  # outstanding | top_up
    amount: Decimal  # in the project's amount unit: what paying it all credits
    charge: int  # what the provider charges, in the currency's minor unit
    currency: str
    provider: str
    provider_session_id: str | None
    provider_url: str | None
    provider_payment_id: str | None
    status: str  # creating | open | paid | refunded | failed | expired | replaced | error
    paid_charge: int | None
    refunded_charge: int
    return_url: str | None
    expires_at: int
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class InboundWebhookEvent:
    """A provider's webhook event, stored once so that a replay changes nothing."""

    project_id: str
    provider: str
    event_id: str
    mode: str
    checkout_id: str | None
    type: str
    outcome: str  # paid | refunded | failed | expired | ignored
