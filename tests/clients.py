"""Real clients for tests: grpcio over HTTP/2 (h2c), and httpx speaking Connect (JSON and binary) and
gRPC-web over HTTP/1.1. Each returns what the wire said: a response message or an error code+message."""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import httpx
from google.protobuf import json_format
from google.protobuf.message import Message

from scrawn._proto.auth.v1 import auth_pb2 as auth
from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.payment.v1 import payment_pb2 as payment
from scrawn._proto.query.v1 import query_pb2 as query
from scrawn._proto.usage.v1 import usage_pb2 as usage
from scrawn._proto.wallet.v1 import wallet_pb2 as wallet

M = TypeVar("M", bound=Message)

METHODS: dict[str, tuple[type[Message], type[Message]]] = {
    "/event.v1.EventService/RegisterEvent": (ev.RegisterEventRequest, ev.RegisterEventResponse),
    "/event.v1.EventService/StreamEvents": (ev.StreamEventRequest, ev.StreamEventResponse),
    "/event.v1.EventService/VoidEvent": (ev.VoidEventRequest, ev.VoidEventResponse),
    "/auth.v1.AuthService/CreateAPIKey": (auth.CreateAPIKeyRequest, auth.CreateAPIKeyResponse),
    "/query.v1.QueryService/QueryEvents": (query.QueryEventsRequest, query.QueryEventsResponse),
    "/usage.v1.UsageService/TrackEvents": (usage.TrackEventsRequest, usage.TrackEventsResponse),
    "/payment.v1.PaymentService/CreateCheckoutLink": (
        payment.CreateCheckoutLinkRequest,
        payment.CreateCheckoutLinkResponse,
    ),
    **{
        f"/usage.v1.UsageService/{name}": (getattr(usage, req), getattr(usage, res))
        for name, req, res in (
            ("ListModels", "ListModelsRequest", "ListModelsResponse"),
            ("CalculateCost", "CalculateCostRequest", "CalculateCostResponse"),
            ("RecordUsage", "RecordUsageRequest", "RecordUsageResponse"),
            ("GetUsage", "GetUsageRequest", "GetUsageResponse"),
            ("GetUsageSummary", "GetUsageSummaryRequest", "UsageSummary"),
            ("GetUsageSeries", "GetUsageSeriesRequest", "GetUsageSeriesResponse"),
        )
    },
    **{
        f"/wallet.v1.WalletService/{name}": (getattr(wallet, req), getattr(wallet, res))
        for name, req, res in (
            ("GetBalance", "GetBalanceRequest", "Balance"),
            ("Credit", "CreditRequest", "TransactionResponse"),
            ("Debit", "DebitRequest", "TransactionResponse"),
            ("CreateReservation", "CreateReservationRequest", "Reservation"),
            ("ConfirmReservation", "ConfirmReservationRequest", "ConfirmReservationResponse"),
            ("CancelReservation", "ReservationIdRequest", "Reservation"),
            ("ExtendReservation", "ExtendReservationRequest", "Reservation"),
            ("ListReservations", "ListReservationsRequest", "ListReservationsResponse"),
            ("ListTransactions", "ListTransactionsRequest", "ListTransactionsResponse"),
            ("GetUserSettings", "GetUserSettingsRequest", "UserSettings"),
            ("UpdateUserSettings", "UpdateUserSettingsRequest", "UserSettings"),
        )
    },
}
REGISTER = "/event.v1.EventService/RegisterEvent"
STREAM = "/event.v1.EventService/StreamEvents"
VOID = "/event.v1.EventService/VoidEvent"
CREATE_KEY = "/auth.v1.AuthService/CreateAPIKey"
QUERY = "/query.v1.QueryService/QueryEvents"
TRACK = "/usage.v1.UsageService/TrackEvents"
WALLET = "/wallet.v1.WalletService/"
USAGE = "/usage.v1.UsageService/"


@dataclass
class RpcError(Exception):
    code: str  # Connect code name, lower case: "invalid_argument", "unauthenticated", ...
    message: str


def bearer(key: str | None) -> list[tuple[str, str]]:
    return [] if key is None else [("authorization", f"Bearer {key}")]


class GrpcClient:
    """grpcio over h2c, one channel (HTTP/2 connection) for all calls."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> GrpcClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def unary(self, path: str, request: Message, metadata: Sequence[tuple[str, str]] = ()) -> Any:
        req_t, res_t = METHODS[path]
        call = self.channel.unary_unary(
            path, request_serializer=req_t.SerializeToString, response_deserializer=res_t.FromString
        )
        try:
            return call(request, metadata=list(metadata), timeout=30)
        except grpc.RpcError as e:
            raise RpcError(e.code().name.lower(), e.details() or "") from None

    def stream(self, path: str, requests: Iterable[Message], metadata: Sequence[tuple[str, str]] = ()) -> Any:
        req_t, res_t = METHODS[path]
        call = self.channel.stream_unary(
            path, request_serializer=req_t.SerializeToString, response_deserializer=res_t.FromString
        )
        try:
            return call(iter(requests), metadata=list(metadata), timeout=60)
        except grpc.RpcError as e:
            raise RpcError(e.code().name.lower(), e.details() or "") from None


class SharedHttp2:
    """One cleartext HTTP/2 connection that many threads post through: an ``httpx.AsyncClient`` on an
    event loop of its own (httpx's blocking client, shared by threads, sends a connection's frames out of
    order)."""

    def __init__(self, base_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = httpx.AsyncClient(base_url=base_url, timeout=30, http1=False, http2=True)

    def post(self, path: str, *, content: bytes | str, headers: dict[str, str]) -> httpx.Response:
        posted = self.client.post(path, content=content, headers=headers)
        return asyncio.run_coroutine_threadsafe(posted, self.loop).result()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.client.aclose(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


class ConnectClient:
    """httpx speaking the Connect protocol over HTTP/1.1 (or, with ``http2``, over one cleartext HTTP/2
    connection that concurrent threads share): unary as JSON or binary, streams enveloped."""

    def __init__(self, base_url: str, *, binary: bool = False, http2: bool = False) -> None:
        self.http: Any = SharedHttp2(base_url) if http2 else httpx.Client(base_url=base_url, timeout=30)
        self.binary = binary

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ConnectClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def unary(self, path: str, request: Message, metadata: Sequence[tuple[str, str]] = ()) -> Any:
        _, res_t = METHODS[path]
        headers = dict(metadata)
        if self.binary:
            headers["content-type"] = "application/proto"
            res = self.http.post(path, content=request.SerializeToString(), headers=headers)
        else:
            headers["content-type"] = "application/json"
            res = self.http.post(path, content=json_format.MessageToJson(request), headers=headers)
        if res.status_code != 200:
            body = res.json()
            raise RpcError(body["code"], body.get("message", ""))
        if self.binary:
            return res_t.FromString(res.content)
        return json_format.Parse(res.content, res_t(), ignore_unknown_fields=True)

    def stream(self, path: str, requests: Iterable[Message], metadata: Sequence[tuple[str, str]] = ()) -> Any:
        _, res_t = METHODS[path]
        codec = "proto" if self.binary else "json"
        body = b"".join(_envelope(0, self._encode(r)) for r in requests)
        headers = dict(metadata) | {"content-type": f"application/connect+{codec}"}
        res = self.http.post(path, content=body, headers=headers)
        message: Any = None
        for flags, payload in _unenvelope(res.content):
            if flags & 0x02:  # end of stream: {"error": {...}} or {}
                import json

                end = json.loads(payload or b"{}")
                if "error" in end:
                    raise RpcError(end["error"]["code"], end["error"].get("message", ""))
            else:
                message = (
                    res_t.FromString(payload)
                    if self.binary
                    else json_format.Parse(payload, res_t(), ignore_unknown_fields=True)
                )
        return message

    def _encode(self, message: Message) -> bytes:
        return message.SerializeToString() if self.binary else json_format.MessageToJson(message).encode()


class GrpcWebClient:
    """httpx speaking gRPC-web (binary) over HTTP/1.1; the status arrives in a trailer frame."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> GrpcWebClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def unary(self, path: str, request: Message, metadata: Sequence[tuple[str, str]] = ()) -> Any:
        return self.stream(path, [request], metadata)

    def stream(self, path: str, requests: Iterable[Message], metadata: Sequence[tuple[str, str]] = ()) -> Any:
        _, res_t = METHODS[path]
        body = b"".join(_envelope(0, r.SerializeToString()) for r in requests)
        headers = dict(metadata) | {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"}
        res = self.http.post(path, content=body, headers=headers)
        status, message_text, message = (
            res.headers.get("grpc-status"),
            res.headers.get("grpc-message", ""),
            None,
        )
        for flags, payload in _unenvelope(res.content):
            if flags & 0x80:
                for line in payload.decode().split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "grpc-status":
                        status = value.strip()
                    elif name.strip().lower() == "grpc-message":
                        message_text = value.strip()
            else:
                message = res_t.FromString(payload)
        if status not in (None, "0"):
            from urllib.parse import unquote

            raise RpcError(grpc.StatusCode(_grpc_code(int(status))).name.lower(), unquote(message_text))
        return message


def _grpc_code(number: int) -> tuple[int, str]:
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code.value  # type: ignore[no-any-return]
    raise ValueError(number)


def _envelope(flags: int, payload: bytes) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


def _unenvelope(data: bytes) -> Iterable[tuple[int, bytes]]:
    i = 0
    while i + 5 <= len(data):
        flags, size = struct.unpack(">BI", data[i : i + 5])
        yield flags, data[i + 5 : i + 5 + size]
        i += 5 + size


def all_clients(server: Any) -> list[Any]:
    """One client of each protocol, for tests that must hold on every one."""
    return [
        GrpcClient(server.grpc_target),
        ConnectClient(server.base_url),
        ConnectClient(server.base_url, binary=True),
        GrpcWebClient(server.base_url),
    ]
