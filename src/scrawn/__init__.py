"""Scrawn for Python: the SDK.

    from scrawn import Scrawn, tag
    client = Scrawn()  # SCRAWN_API_KEY, SCRAWN_BASE_URL
    client.basic_usage_event_consumer(user_id="user_123", debit=tag("PREMIUM_CALL"))

Every name exported here is imported on first use, so ``import scrawn`` (and the ``scrawn`` command, whose
server lives in ``scrawn.server``) costs almost nothing. The client itself loads only httpx, protobuf
messages and the standard library (never the server's SQLAlchemy, grpcio, hypercorn, Typer or connectrpc,
nor starlette, flask, openai or anthropic).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type checkers see every name; at run time each is imported on first use
    from scrawn import errors
    from scrawn._ai_billing import anthropic_usage, bill_as, openai_usage
    from scrawn._ai_events import AiUsage
    from scrawn._async import AsyncScrawn
    from scrawn._core import EventResult
    from scrawn._payments import PortalLink
    from scrawn._retry import ErrorContext
    from scrawn._sync import Scrawn, scrawn
    from scrawn._usage_results import (
        CostBreakdown,
        ModelList,
        ModelPrice,
        UsageBucket,
        UsagePage,
        UsageRecord,
        UsageSeries,
        UsageSummary,
        UsageTotals,
    )
    from scrawn._version import __version__
    from scrawn._void import VoidedEvent
    from scrawn._wallet_client import (
        AsyncReservation,
        AsyncWallet,
        Confirmation,
        Reservation,
        ReservationPage,
        ReservationRequest,
        Wallet,
    )
    from scrawn._wallet_results import Balance, Transaction, TransactionPage, TransactionResult, UserSettings
    from scrawn.errors import (
        EventQuarantinedError,
        InsufficientCreditsError,
        ScrawnError,
        SpendCapExceededError,
        ValidationError,
    )
    from scrawn.middleware import (
        ScrawnASGIMiddleware,
        ScrawnMiddleware,
        ScrawnWSGIMiddleware,
        match_path,
    )
    from scrawn.pricing import (
        Expression,
        add,
        amount,
        div,
        expr,
        input_cache_tokens,
        input_tokens,
        mul,
        output_cache_tokens,
        output_tokens,
        quantity,
        sub,
        tag,
    )
    from scrawn.webhooks import WebhookEvent, WebhookVerificationError, verify_webhook

# Imported on first use (PEP 562), so that ``import scrawn`` (and the ``scrawn`` command) stays light.
_LAZY = {
    "errors": "scrawn.errors",
    "AsyncScrawn": "scrawn._async",
    "EventResult": "scrawn._core",
    "PortalLink": "scrawn._payments",
    "ErrorContext": "scrawn._retry",
    "Scrawn": "scrawn._sync",
    "scrawn": "scrawn._sync",
    "CostBreakdown": "scrawn._usage_results",
    "ModelList": "scrawn._usage_results",
    "ModelPrice": "scrawn._usage_results",
    "UsageBucket": "scrawn._usage_results",
    "UsagePage": "scrawn._usage_results",
    "UsageRecord": "scrawn._usage_results",
    "UsageSeries": "scrawn._usage_results",
    "UsageSummary": "scrawn._usage_results",
    "UsageTotals": "scrawn._usage_results",
    "__version__": "scrawn._version",
    "VoidedEvent": "scrawn._void",
    "AsyncReservation": "scrawn._wallet_client",
    "AsyncWallet": "scrawn._wallet_client",
    "Confirmation": "scrawn._wallet_client",
    "Reservation": "scrawn._wallet_client",
    "ReservationPage": "scrawn._wallet_client",
    "ReservationRequest": "scrawn._wallet_client",
    "Wallet": "scrawn._wallet_client",
    "Balance": "scrawn._wallet_results",
    "Transaction": "scrawn._wallet_results",
    "TransactionPage": "scrawn._wallet_results",
    "TransactionResult": "scrawn._wallet_results",
    "UserSettings": "scrawn._wallet_results",
    "EventQuarantinedError": "scrawn.errors",
    "InsufficientCreditsError": "scrawn.errors",
    "ScrawnError": "scrawn.errors",
    "SpendCapExceededError": "scrawn.errors",
    "ValidationError": "scrawn.errors",
    "Expression": "scrawn.pricing",
    "add": "scrawn.pricing",
    "amount": "scrawn.pricing",
    "div": "scrawn.pricing",
    "expr": "scrawn.pricing",
    "input_cache_tokens": "scrawn.pricing",
    "input_tokens": "scrawn.pricing",
    "mul": "scrawn.pricing",
    "output_cache_tokens": "scrawn.pricing",
    "output_tokens": "scrawn.pricing",
    "quantity": "scrawn.pricing",
    "sub": "scrawn.pricing",
    "tag": "scrawn.pricing",
    "WebhookEvent": "scrawn.webhooks",
    "WebhookVerificationError": "scrawn.webhooks",
    "verify_webhook": "scrawn.webhooks",
    "match_path": "scrawn.middleware",
    "ScrawnASGIMiddleware": "scrawn.middleware",
    "ScrawnWSGIMiddleware": "scrawn.middleware",
    "ScrawnMiddleware": "scrawn.middleware",
    "AiUsage": "scrawn.ai",
    "bill_as": "scrawn.ai",
    "openai_usage": "scrawn.ai",
    "anthropic_usage": "scrawn.ai",
}


if not TYPE_CHECKING:  # type checkers see the imports above, and a misspelt name stays an error

    def __getattr__(name: str) -> object:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'scrawn' has no attribute {name!r}")
        import importlib

        imported = importlib.import_module(module)
        value = imported if module == f"scrawn.{name}" else getattr(imported, name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AiUsage",
    "AsyncReservation",
    "AsyncScrawn",
    "AsyncWallet",
    "Balance",
    "Confirmation",
    "CostBreakdown",
    "ErrorContext",
    "EventQuarantinedError",
    "EventResult",
    "Expression",
    "InsufficientCreditsError",
    "ModelList",
    "ModelPrice",
    "PortalLink",
    "Reservation",
    "ReservationPage",
    "ReservationRequest",
    "Scrawn",
    "ScrawnASGIMiddleware",
    "ScrawnError",
    "ScrawnMiddleware",
    "ScrawnWSGIMiddleware",
    "SpendCapExceededError",
    "Transaction",
    "TransactionPage",
    "TransactionResult",
    "UsageBucket",
    "UsagePage",
    "UsageRecord",
    "UsageSeries",
    "UsageSummary",
    "UsageTotals",
    "UserSettings",
    "ValidationError",
    "VoidedEvent",
    "Wallet",
    "WebhookEvent",
    "WebhookVerificationError",
    "__version__",
    "add",
    "amount",
    "anthropic_usage",
    "bill_as",
    "div",
    "errors",
    "expr",
    "input_cache_tokens",
    "input_tokens",
    "match_path",
    "mul",
    "openai_usage",
    "output_cache_tokens",
    "output_tokens",
    "quantity",
    "scrawn",
    "sub",
    "tag",
    "verify_webhook",
]
