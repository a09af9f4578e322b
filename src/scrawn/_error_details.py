"""Error details on the wire, both ways: what the server attaches to an error answer (``details_of``) and
how the SDK turns an answer back into the typed error (``read_details`` + ``typed_error``).

- ``google.rpc.BadRequest`` (one field violation): the field at fault;
- ``google.rpc.RequestInfo``: the request id, the one in the server's log line;
- ``wallet.v1.InsufficientFunds`` / ``wallet.v1.SpendCapExceeded``: the amounts of a funds error (decimal
  strings in minor units, as every amount on the wire);
- ``event.v1.EventQuarantined``: the event the server kept for repricing.

Servers older than these details (or a proxy that drops them) send only the message: for them alone the
field, the request id and the amounts are read from the message text (the ``*_from_message`` helpers; also
the field of a batch call's failed item when the server sends no ``field`` with it, and its request id).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final, TypeVar

from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2 as rpc_pb

from scrawn._proto.event.v1 import event_pb2 as event_pb
from scrawn._proto.wallet.v1 import wallet_pb2 as wallet_pb
from scrawn.errors import (
    EventQuarantinedError,
    InsufficientCreditsError,
    ScrawnError,
    SpendCapExceededError,
    ValidationError,
    from_code,
)
from scrawn.money import format_amount

M = TypeVar("M", bound=Message)
QUARANTINE_PREFIX: Final = "Event kept for repricing"


# ------------------------------------------------------------------------------------ the server's side


# The amounts of a funds error and the fields of its detail that carry them (decimal strings, minor units).
_INSUFFICIENT_AMOUNTS: Final = {
    "current_balance": "currentBalance",
    "available": "available",
    "requested_amount": "requestedAmount",
}
_CAP_AMOUNTS: Final = {
    "spend_cap": "spendCap",
    "spent": "spent",
    "held": "held",
    "requested_amount": "requestedAmount",
}


def _amount(value: Decimal | None) -> str:
    return "" if value is None else format_amount(value)


def _wire_amounts(error: ScrawnError, fields: Mapping[str, str]) -> dict[str, str]:
    """A funds error's amounts as its detail's fields (empty where the error has none)."""
    return {wire: _amount(getattr(error, name)) for name, wire in fields.items()}


def details_of(error: ScrawnError) -> list[Message]:
    """The details an error answer carries: its own (funds, quarantine) first, then the field, then the
    request id. Empty for an error that has none of them."""
    found: list[Message] = []
    if isinstance(error, InsufficientCreditsError):
        found.append(wallet_pb.InsufficientFunds(**_wire_amounts(error, _INSUFFICIENT_AMOUNTS)))
    elif isinstance(error, SpendCapExceededError):
        found.append(
            wallet_pb.SpendCapExceeded(period=error.period or "", **_wire_amounts(error, _CAP_AMOUNTS))
        )
    elif isinstance(error, EventQuarantinedError):
        found.append(
            event_pb.EventQuarantined(
                eventId=error.event_id or "",
                idempotencyKey=error.idempotency_key or "",
                field=error.field or "",
                reason=error.reason or "",
            )
        )
    if error.field:
        problem = error.problem if isinstance(error, ValidationError) else error.message
        violation = rpc_pb.BadRequest.FieldViolation(field=error.field, description=problem)
        found.append(rpc_pb.BadRequest(field_violations=[violation]))
    if error.request_id:
        found.append(rpc_pb.RequestInfo(request_id=error.request_id))
    return found


# ---------------------------------------------------------------------------------------- the SDK's side


@dataclass(frozen=True)
class ErrorDetails:
    """What an error answer's details say (``None``: that detail was absent or malformed)."""

    field: str | None = None
    request_id: str | None = None
    funds: wallet_pb.InsufficientFunds | None = None
    cap: wallet_pb.SpendCapExceeded | None = None
    kept: event_pb.EventQuarantined | None = None


def _decode(details: object) -> dict[str, bytes]:
    """Connect error details (``[{"type": "wallet.v1.InsufficientFunds", "value": "<base64>"}]``) by
    message name; entries that are not well-formed are skipped."""
    found: dict[str, bytes] = {}
    if not isinstance(details, list):
        return found
    for item in details:
        if not isinstance(item, dict):
            continue
        name, value = item.get("type"), item.get("value")
        if not isinstance(name, str) or not isinstance(value, str):
            continue
        name = name.rsplit("/", 1)[-1]  # a type URL is accepted too
        padded = value + "=" * (-len(value) % 4)
        try:
            found[name] = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            continue
    return found


def _parse(raw: Mapping[str, bytes], kind: type[M]) -> M | None:
    data = raw.get(kind.DESCRIPTOR.full_name)
    if data is None:
        return None
    try:
        return kind.FromString(data)
    except DecodeError:
        return None


def read_details(details: object) -> ErrorDetails:
    """The details of a Connect error (its JSON ``details`` list)."""
    raw = _decode(details)
    bad = _parse(raw, rpc_pb.BadRequest)
    info = _parse(raw, rpc_pb.RequestInfo)
    kept = _parse(raw, event_pb.EventQuarantined)
    field = bad.field_violations[0].field if bad is not None and bad.field_violations else None
    return ErrorDetails(
        field=field or (kept.field if kept is not None else None) or None,
        request_id=(info.request_id if info is not None else None) or None,
        funds=_parse(raw, wallet_pb.InsufficientFunds),
        cap=_parse(raw, wallet_pb.SpendCapExceeded),
        kept=kept,
    )


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def _amounts(detail: Message, fields: Mapping[str, str]) -> dict[str, Decimal | None]:
    """A funds detail's amounts as the error's (``None`` where one is absent or not a number)."""
    return {name: _decimal(getattr(detail, wire)) for name, wire in fields.items()}


def typed_error(
    code: str, message: str, found: ErrorDetails, header_request_id: str | None = None
) -> ScrawnError:
    """The typed error for a code, a message and its details; what the details leave out is read from
    the message (servers that predate the details)."""
    field = found.field if found.field is not None else field_from_message(message)
    request_id = found.request_id or header_request_id or request_id_from(message)
    if code == "failed_precondition":
        if found.kept is not None or message.startswith(QUARANTINE_PREFIX):
            kept = found.kept
            return EventQuarantinedError(
                message,
                field=field,
                request_id=request_id,
                event_id=(kept.eventId if kept else None) or None,
                idempotency_key=(kept.idempotencyKey if kept else None) or None,
                reason=(kept.reason if kept else None) or None,
            )
        funds, cap = found.funds, found.cap
        if funds is None and cap is None:
            funds, cap = _funds_from_message(message)
        if funds is not None:
            amounts = _amounts(funds, _INSUFFICIENT_AMOUNTS)
            return InsufficientCreditsError(message, field=field, request_id=request_id, **amounts)
        if cap is not None:
            amounts, period = _amounts(cap, _CAP_AMOUNTS), cap.period or None
            return SpendCapExceededError(
                message, field=field, request_id=request_id, period=period, **amounts
            )
    return from_code(code, message, field=field, request_id=request_id)


# ------------------------------------------------------- the message fallback (older servers, batch items)

_FIELD_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z_][A-Za-z0-9_\-]*)*(?:\[\d+\])?")
_REQUEST_ID = re.compile(r"request[ _-]id[ :=]+([A-Za-z0-9_\-]{6,128})", re.IGNORECASE)
_REQUEST_ID_HEADERS: Final = ("x-request-id", "request-id", "x-scrawn-request-id")
# "Insufficient funds: amount: requested 10.5 but available is 10.499999 (balance 10.499999)"
_INSUFFICIENT = re.compile(r"requested (-?[0-9.]+) but available is (-?[0-9.]+) \(balance (-?[0-9.]+)\)")


def field_from_message(message: str) -> str | None:
    """The field a server message names: ``Event validation failed: userId: must be …`` → ``userId``;
    ``idempotencyKey: already used …`` → ``idempotencyKey``. ``None`` when none is named."""
    parts = message.split(": ")
    for part in parts[:-1]:
        if _FIELD_PART.fullmatch(part):
            return part
    return None


def request_id_header(headers: Mapping[str, str] | None) -> str | None:
    """The request id a proxy or gateway put in the answer's headers."""
    if headers is not None:
        for name in _REQUEST_ID_HEADERS:
            value = headers.get(name)
            if value:
                return value
    return None


def request_id_from(message: str, headers: Mapping[str, str] | None = None) -> str | None:
    """The request id of the answer's headers, else of the message (``… (request id 9f8e…)``)."""
    header = request_id_header(headers)
    if header is not None:
        return header
    found = _REQUEST_ID.search(message)
    return found.group(1) if found else None


def _funds_from_message(
    message: str,
) -> tuple[wallet_pb.InsufficientFunds | None, wallet_pb.SpendCapExceeded | None]:
    """The funds detail an older server's message stands for: the amounts it names (the message of a
    spend cap names none), as the detail would carry them."""
    if message.startswith("Insufficient funds"):
        match = _INSUFFICIENT.search(message)
        requested, available, balance = match.groups() if match else ("", "", "")
        funds = wallet_pb.InsufficientFunds(
            currentBalance=balance, available=available, requestedAmount=requested
        )
        return funds, None
    if message.startswith("Spend cap exceeded"):
        return None, wallet_pb.SpendCapExceeded()
    return None, None
