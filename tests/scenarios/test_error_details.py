"""Errors carry structured details on the wire (docs/wire-contract.md#errors): the field at fault
(``google.rpc.BadRequest``), the request id (``google.rpc.RequestInfo``) and a funds error's amounts
(``wallet.v1.InsufficientFunds``), over Connect (JSON ``details``) and gRPC (``grpc-status-details-bin``),
with the messages unchanged."""

from __future__ import annotations

import asyncio
import base64
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2 as rpc_pb
from google.rpc import status_pb2
from sqlalchemy.exc import OperationalError

from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.event.v1.event_connect import EventServiceASGIApplication
from scrawn._proto.usage.v1 import usage_pb2 as usage
from scrawn._proto.wallet.v1 import wallet_pb2 as wallet
from scrawn.server import access
from scrawn.server.rpc import handler
from tests.clients import REGISTER, STREAM, TRACK, GrpcClient, bearer
from tests.conftest import ServerHandle, free_port

WALLET = "/wallet.v1.WalletService/"
DEBIT = WALLET + "Debit"


def connect_details(res: httpx.Response) -> dict[str, bytes]:
    """The details of a Connect error answer, by message name."""
    return {
        d["type"]: base64.b64decode(d["value"] + "=" * (-len(d["value"]) % 4)) for d in res.json()["details"]
    }


def grpc_details(
    path: str, request: Message, target: str, key: str | None
) -> tuple[str, str, dict[str, bytes]]:
    """Code, message and details of a gRPC error answer (its ``grpc-status-details-bin`` trailer)."""
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(path, request_serializer=type(request).SerializeToString)
        with pytest.raises(grpc.RpcError) as info:
            call(request, metadata=bearer(key), timeout=30)
    error: Any = info.value
    [raw] = [v for k, v in error.trailing_metadata() if k == "grpc-status-details-bin"]
    status = status_pb2.Status.FromString(raw)
    assert (status.code, status.message) == (error.code().value[0], error.details())
    found = {d.type_url.rsplit("/", 1)[-1]: d.value for d in status.details}
    return error.code().name.lower(), error.details(), found


def field_of(found: dict[str, bytes]) -> str:
    [violation] = rpc_pb.BadRequest.FromString(found["google.rpc.BadRequest"]).field_violations
    return violation.field


def test_a_validation_error_names_its_field(module_server: ServerHandle) -> None:
    request = wallet.DebitRequest(userId="", amount="5", idempotencyKey="k")
    with httpx.Client(base_url=module_server.base_url) as http:
        res = http.post(
            DEBIT,
            content=request.SerializeToString(),
            headers={
                "authorization": f"Bearer {module_server.live_key}",
                "content-type": "application/proto",
            },
        )
    message = res.json()["message"]
    assert (res.status_code, res.json()["code"]) == (400, "invalid_argument")
    assert message == "Wallet validation failed: userId: must be a non-empty string"
    found = connect_details(res)
    assert field_of(found) == "userId"
    [violation] = rpc_pb.BadRequest.FromString(found["google.rpc.BadRequest"]).field_violations
    assert violation.description == "must be a non-empty string"
    code, grpc_message, found = grpc_details(
        DEBIT, request, module_server.grpc_target, module_server.live_key
    )
    assert (code, grpc_message, field_of(found)) == ("invalid_argument", message, "userId")


def test_a_funds_error_carries_its_amounts_and_field(module_server: ServerHandle) -> None:
    request = wallet.DebitRequest(userId="nobody", amount="5", idempotencyKey=uuid.uuid4().hex)
    with httpx.Client(base_url=module_server.base_url) as http:
        res = http.post(
            DEBIT,
            json={"userId": "nobody", "amount": "5", "idempotencyKey": uuid.uuid4().hex},
            headers={"authorization": f"Bearer {module_server.live_key}"},
        )
    message = "Insufficient funds: amount: requested 5 but available is 0 (balance 0)"
    assert (res.status_code, res.json()["code"], res.json()["message"]) == (
        400,
        "failed_precondition",
        message,
    )
    for found in (
        connect_details(res),
        grpc_details(DEBIT, request, module_server.grpc_target, module_server.live_key)[2],
    ):
        funds = wallet.InsufficientFunds.FromString(found["wallet.v1.InsufficientFunds"])
        assert (funds.currentBalance, funds.available, funds.requestedAmount) == ("0", "0", "5")
        assert field_of(found) == "amount" and "google.rpc.RequestInfo" not in found


def test_a_failed_batch_item_carries_its_field(module_server: ServerHandle) -> None:
    """StreamEvents failures and TrackEvents results name the field at fault on the wire, as a unary
    call's ``google.rpc.BadRequest`` does; an error that names none leaves it empty."""
    auth = bearer(module_server.live_key)
    bad_user = ev.StreamEventRequest(type=ev.BASIC_USAGE, userId="", basicUsage=ev.BasicUsage(amount=1))
    with GrpcClient(module_server.grpc_target) as client:
        streamed = client.stream(STREAM, [bad_user], auth)
        tracked = client.unary(
            TRACK,
            usage.TrackEventsRequest(events=[usage.TrackedEvent(type="document.processed", userId="")]),
            auth,
        )
    [failure] = streamed.failures
    assert (failure.errorCode, failure.field) == ("VALIDATION_FAILED", "userId")
    assert failure.message == "Event validation failed: userId: must be a non-empty string"
    [result] = tracked.results
    assert (result.status, result.errorCode, result.field) == ("failed", "VALIDATION_FAILED", "userId")


def test_an_error_without_field_or_request_id_has_no_details(module_server: ServerHandle) -> None:
    with httpx.Client(base_url=module_server.base_url) as http:
        res = http.post(WALLET + "GetBalance", json={"userId": "u"})
    assert res.json() == {"code": "unauthenticated", "message": "Missing Authorization header"}


# ---------------------------------------------- INTERNAL and UNAVAILABLE: a stub service over the real wire


class Failing:
    """``RegisterEvent`` failing as ``userId`` says, through the server's own ``handler``."""

    @handler
    async def register_event(self, request: ev.RegisterEventRequest, ctx: Any) -> ev.RegisterEventResponse:
        if request.userId == "unavailable":
            raise OperationalError("SELECT 1", {}, Exception("database is locked"))
        raise RuntimeError("boom")

    stream_events = void_event = register_event  # the service's other methods (never called)


@pytest.fixture(scope="module")
def failing_server() -> Iterator[str]:
    """The stub on hypercorn (HTTP/1.1 + h2c, as ``scrawn serve``), in a thread of this process."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    port = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.loglevel = "ERROR"
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    # Inside the access wrapper, as the server's app is: it takes or makes the request id.
    app = access.wrap(EventServiceASGIApplication(Failing()), [REGISTER])  # type: ignore[arg-type]
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(serve(app, config, shutdown_trigger=stop.wait)),  # type: ignore[arg-type]
        daemon=True,
    )
    thread.start()
    wait_until_listening(port)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def wait_until_listening(port: int) -> None:
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except httpx.HTTPError:
            threading.Event().wait(0.05)
    raise AssertionError("the stub server did not start")


@pytest.mark.parametrize(
    ("user", "code", "prefix"),
    [
        ("internal", "internal", "Internal error"),
        ("unavailable", "unavailable", "Database unavailable; retry"),
    ],
)
def test_internal_and_unavailable_carry_the_request_id(
    failing_server: str, user: str, code: str, prefix: str
) -> None:
    request = ev.RegisterEventRequest(userId=user)
    res = httpx.post(
        f"http://{failing_server}{REGISTER}",
        content=request.SerializeToString(),
        headers={"content-type": "application/proto"},
    )
    body = res.json()
    assert (res.status_code, body["code"]) == ({"internal": 500, "unavailable": 503}[code], code)
    request_id = rpc_pb.RequestInfo.FromString(connect_details(res)["google.rpc.RequestInfo"]).request_id
    assert body["message"] == f"{prefix} (request id {request_id})" and len(request_id) == 32
    grpc_code, message, found = grpc_details(REGISTER, request, failing_server, None)
    request_id = rpc_pb.RequestInfo.FromString(found["google.rpc.RequestInfo"]).request_id
    assert (grpc_code, message) == (code, f"{prefix} (request id {request_id})")
    assert "google.rpc.BadRequest" not in found


def test_the_request_id_a_client_sent_is_the_one_in_the_error(failing_server: str) -> None:
    """An operator handed a user's error finds its log lines: the id the client sent in ``x-request-id``
    comes back in the header, the message and the ``RequestInfo`` detail (gRPC: the trailers too)."""
    request = ev.RegisterEventRequest(userId="internal")
    res = httpx.post(
        f"http://{failing_server}{REGISTER}",
        content=request.SerializeToString(),
        headers={"content-type": "application/proto", "x-request-id": "report-0001"},
    )
    detail = rpc_pb.RequestInfo.FromString(connect_details(res)["google.rpc.RequestInfo"])
    assert (res.status_code, res.headers["x-request-id"], detail.request_id) == (
        500,
        "report-0001",
        "report-0001",
    )
    assert res.json()["message"] == "Internal error (request id report-0001)"
    with grpc.insecure_channel(failing_server) as channel:
        call = channel.unary_unary(REGISTER, request_serializer=ev.RegisterEventRequest.SerializeToString)
        with pytest.raises(grpc.RpcError) as info:
            call(request, metadata=[("x-request-id", "report-0002")], timeout=30)
    error: Any = info.value
    trailers = dict(error.trailing_metadata())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    [found] = [d.value for d in status.details if d.type_url.endswith("google.rpc.RequestInfo")]
    assert rpc_pb.RequestInfo.FromString(found).request_id == trailers["x-request-id"] == "report-0002"
    assert error.details() == "Internal error (request id report-0002)"


def test_the_sdk_reads_the_request_id_from_the_detail(failing_server: str) -> None:
    from scrawn._connect import Transport
    from scrawn.errors import InternalError

    transport = Transport(f"http://{failing_server}")
    try:
        with pytest.raises(InternalError) as info:
            transport.unary(REGISTER, ev.RegisterEventRequest(userId="x"), ev.RegisterEventResponse, {}, 30)
    finally:
        transport.close()
    assert info.value.request_id and info.value.message.endswith(f"(request id {info.value.request_id})")
