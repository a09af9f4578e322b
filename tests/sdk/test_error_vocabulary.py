"""One error vocabulary (docs/wire-contract.md#errors): the code table, the per-class stream codes, and the
SDK reading an error's field, request id and amounts from the details (the message only for servers that
send none)."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest
from connectrpc.code import Code
from google.protobuf.message import Message
from google.rpc import error_details_pb2 as rpc_pb

from scrawn import _codes
from scrawn._connect import parse_unary
from scrawn._error_details import details_of
from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.wallet.v1 import wallet_pb2 as wallet_pb
from scrawn.errors import (
    STATUSES,
    AlreadyExistsError,
    EventQuarantinedError,
    InsufficientCreditsError,
    InternalError,
    InvalidArgumentError,
    ScrawnError,
    SpendCapExceededError,
    UnavailableError,
    ValidationError,
    from_code,
)

# Connect's code → HTTP mapping (https://connectrpc.com/docs/protocol#error-codes) and gRPC's numbers.
CONNECT_HTTP = {
    "canceled": 499,
    "unknown": 500,
    "invalid_argument": 400,
    "deadline_exceeded": 504,
    "not_found": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "resource_exhausted": 429,
    "failed_precondition": 400,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "data_loss": 500,
    "unauthenticated": 401,
}


def test_every_code_has_grpc_connect_and_http() -> None:
    assert set(STATUSES) == {c.value for c in Code} == set(CONNECT_HTTP)
    for name, status in STATUSES.items():
        assert status.code == name and Code(name).name.lower() == name
        assert status.http == CONNECT_HTTP[name]
        assert status.api_http in {400, 401, 403, 404, 409, 412, 429, 500, 503}
    assert [STATUSES[n].grpc for n in sorted(STATUSES, key=lambda n: STATUSES[n].grpc)] == list(range(1, 17))


def test_name_and_class_round_trip() -> None:
    for name in STATUSES:
        error = from_code(name, "m")
        assert error.code == name and error.status is STATUSES[name]
        assert from_code(error.code, "m").__class__ is error.__class__
    assert from_code("no_such_code", "m").status is STATUSES["unknown"]


def test_the_json_api_statuses_are_kept() -> None:
    from scrawn.server.pricing.references import ConfigurationConflict

    api = {
        "invalid_argument": 400,
        "unauthenticated": 401,
        "permission_denied": 403,
        "not_found": 404,
        "already_exists": 409,
        "failed_precondition": 412,
        "resource_exhausted": 429,
        "unavailable": 503,
        "internal": 500,
    }
    for name, status in STATUSES.items():
        assert status.api_http == api.get(name, 500)
    assert ConfigurationConflict("x").api_http_status == 409  # a per-class override
    assert from_code("failed_precondition", "x").api_http_status == 412


def test_stream_codes_are_declared_on_the_classes() -> None:
    assert set(_codes.STREAM_CODES) == {
        "VALIDATION_FAILED",
        "INVALID_DATA",
        "INVALID_TIMESTAMP",
        "PRICE_CALCULATION_FAILED",
        "UNSUPPORTED_EVENT_TYPE",
        "STORAGE_FAILURE",
        "INTERNAL_ERROR",
        "KEPT_FOR_REPRICING",
    }
    assert ScrawnError("x").stream_code == "INTERNAL_ERROR"
    assert InternalError("x").stream_code == "INTERNAL_ERROR"
    assert AlreadyExistsError("x").stream_code == "VALIDATION_FAILED"
    assert InvalidArgumentError("x").stream_code == "VALIDATION_FAILED"
    assert UnavailableError("x").stream_code == "STORAGE_FAILURE"
    assert EventQuarantinedError("x").stream_code == "KEPT_FOR_REPRICING"

    from scrawn.server.events.batch import BalanceOutOfRange
    from scrawn.server.events.intake import EventInvalid
    from scrawn.server.events.price import PriceFailed

    assert EventInvalid("f", "p", _codes.INVALID_TIMESTAMP).stream_code == "INVALID_TIMESTAMP"
    assert PriceFailed("x").stream_code == "PRICE_CALCULATION_FAILED"
    assert BalanceOutOfRange("x").stream_code == "INVALID_DATA"


# ------------------------------------------------------------------------------- the SDK reads details


def body(code: str, message: str, *details: Message) -> bytes:
    return json.dumps(
        {
            "code": code,
            "message": message,
            "details": [
                {"type": d.DESCRIPTOR.full_name, "value": base64.b64encode(d.SerializeToString()).decode()}
                for d in details
            ],
        }
    ).encode()


def raised(data: bytes) -> ScrawnError:
    with pytest.raises(ScrawnError) as info:
        parse_unary(400, {}, data, ev.RegisterEventResponse)
    return info.value


def bad_request(field: str) -> rpc_pb.BadRequest:
    return rpc_pb.BadRequest(
        field_violations=[rpc_pb.BadRequest.FieldViolation(field=field, description="d")]
    )


def test_field_and_request_id_come_from_the_details() -> None:
    message = "Event validation failed: amount: must be positive (request id aaaaaaaaaaaa)"
    error = raised(
        body(
            "invalid_argument", message, bad_request("userId"), rpc_pb.RequestInfo(request_id="bbbbbbbbbbbb")
        )
    )
    assert (error.field, error.request_id, error.message) == ("userId", "bbbbbbbbbbbb", message)
    # an older server (no details): read from the message
    error = raised(body("invalid_argument", message))
    assert (error.field, error.request_id) == ("amount", "aaaaaaaaaaaa")


def test_funds_amounts_come_from_the_details() -> None:
    message = "Insufficient funds: amount: requested 10.5 but available is 1 (balance 2)"
    funds = wallet_pb.InsufficientFunds(currentBalance="7", available="6.5", requestedAmount="9")
    error = raised(body("failed_precondition", message, funds, bad_request("reservation")))
    assert isinstance(error, InsufficientCreditsError)
    assert (error.current_balance, error.available, error.requested_amount) == (
        Decimal("7"),
        Decimal("6.5"),
        Decimal("9"),
    )
    assert error.field == "reservation"
    legacy = raised(body("failed_precondition", message))
    assert isinstance(legacy, InsufficientCreditsError) and legacy.field == "amount"
    assert (legacy.current_balance, legacy.available, legacy.requested_amount) == (
        Decimal("2"),
        Decimal("1"),
        Decimal("10.5"),
    )
    cap = wallet_pb.SpendCapExceeded(
        spendCap="100", spent="90", held="5", requestedAmount="10", period="2026-11"
    )
    over = raised(body("failed_precondition", "Spend cap exceeded: amount: whatever", cap))
    assert isinstance(over, SpendCapExceededError) and over.period == "2026-11"
    assert (over.spend_cap, over.spent, over.held, over.requested_amount) == tuple(
        Decimal(v) for v in ("100", "90", "5", "10")
    )


def test_the_quarantine_comes_from_the_details() -> None:
    kept = ev.EventQuarantined(
        eventId="e1", idempotencyKey="k1", field="basicUsage.tag", reason="Tag not found: X"
    )
    error = raised(
        body("failed_precondition", "something else: entirely", kept, bad_request("basicUsage.tag"))
    )
    assert isinstance(error, EventQuarantinedError)
    assert (error.event_id, error.idempotency_key, error.field, error.reason) == (
        "e1",
        "k1",
        "basicUsage.tag",
        "Tag not found: X",
    )


@pytest.mark.parametrize(
    "error",
    [
        ValidationError("userId", "must be a non-empty string", context="Event validation failed"),
        InternalError("Internal error (request id 0123456789ab)", request_id="0123456789ab"),
        InsufficientCreditsError(
            "Insufficient funds: amount: requested 5 but available is 0 (balance 0)",
            field="amount",
            current_balance=Decimal(0),
            available=Decimal(0),
            requested_amount=Decimal(5),
        ),
        SpendCapExceededError(
            "Spend cap exceeded: amount: …",
            field="amount",
            spend_cap=Decimal(10),
            spent=Decimal("9.5"),
            held=Decimal(0),
            requested_amount=Decimal(1),
            period="2026-12",
        ),
        EventQuarantinedError(
            "Event kept for repricing: basicUsage.tag: Tag not found: X",
            field="basicUsage.tag",
            event_id="e",
            idempotency_key="k",
            reason="Tag not found: X",
        ),
    ],
)
def test_what_the_server_attaches_the_sdk_reads_back(error: ScrawnError) -> None:
    back = raised(body(error.code, error.message, *details_of(error)))
    assert type(back) is (InvalidArgumentError if isinstance(error, ValidationError) else type(error))
    keep = ("message", "field", "request_id", "current_balance", "available", "requested_amount", "spend_cap")
    keep += ("spent", "held", "period", "event_id", "idempotency_key", "reason")
    for name in keep:
        assert getattr(back, name, None) == getattr(error, name, None), name
