"""Legacy clients (DESIGN §3.4), spoken as raw protobuf bytes over Connect binary (httpx) and gRPC
(grpcio with a pass-through serializer), exactly as the old SDKs put them on the wire:

- TS SDK 0.0.6 sends BasicUsage.amount (2) and AITokenUsage.inputAmount/outputAmount (4/6) as float32
  (wire type 5), and no eventId / idempotencyKey / timestamp;
- the oldest layout sends ``SDKCall sdkCall = 3`` (wire type 2) in RegisterEventRequest and reads
  the response's field 1 as ``string random``.
"""

from __future__ import annotations

import math
import struct
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import grpc
import httpx
import pytest
from sqlalchemy import select

from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn.server.db.schema import events, ledger_entries
from tests.clients import RpcError
from tests.conftest import ServerHandle, drop_pg_database, make_server, new_pg_database, run_async

REGISTER = "/event.v1.EventService/RegisterEvent"
STREAM = "/event.v1.EventService/StreamEvents"
MAX_FLOAT32 = struct.unpack("<f", struct.pack("<I", 0x7F7FFFFF))[0]  # 3.4028234663852886e38


# ---------------------------------------------------------------------------- protobuf by hand


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def f_varint(field: int, value: int) -> bytes:
    return varint(field << 3) + varint(value)


def f_bytes(field: int, value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return varint(field << 3 | 2) + varint(len(data)) + data


def f_float(field: int, value: float) -> bytes:
    """A float32 (wire type 5), as grpc-js / protobuf-ts encode a ``float`` field."""
    return varint(field << 3 | 5) + struct.pack("<f", value)


def parse_fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field, wire type, value) of every field of a message, without a schema."""
    out, i = [], 0

    def read_varint() -> int:
        nonlocal i
        shift = result = 0
        while True:
            b = data[i]
            i += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result

    while i < len(data):
        key = read_varint()
        number, wt = key >> 3, key & 7
        if wt == 0:
            value: Any = read_varint()
        elif wt == 2:
            size = read_varint()
            value, i = data[i : i + size], i + size
        elif wt == 5:
            value, i = data[i : i + 4], i + 4
        elif wt == 1:
            value, i = data[i : i + 8], i + 8
        else:
            raise AssertionError(f"unexpected wire type {wt}")
        out.append((number, wt, value))
    return out


def legacy_register(user: str, amount: float) -> bytes:
    """TS SDK 0.0.6: RegisterEventRequest{type=1, userId, basicUsage{basicUsageType=1, amount=float}}."""
    return f_varint(1, 1) + f_bytes(2, user) + f_bytes(4, f_varint(1, 1) + f_float(2, amount))


def sdk_call_register(user: str, sdk_call: bytes) -> bytes:
    """The oldest layout: RegisterEventRequest{type=1, userId, sdkCall=3 (a message)}."""
    return f_varint(1, 1) + f_bytes(2, user) + f_bytes(3, sdk_call)


def ai_item(user: str, inputs: float | None, outputs: float | None, model: str = "legacy-model") -> bytes:
    """StreamEventRequest{type=AI_TOKEN_USAGE, userId, aiTokenUsage{model, tokens, float amounts at 4/6}}."""
    usage = f_bytes(1, model) + f_varint(2, 1200) + f_varint(3, 340)
    if inputs is not None:
        usage += f_float(4, inputs)
    if outputs is not None:
        usage += f_float(6, outputs)
    return f_varint(1, 2) + f_bytes(2, user) + f_bytes(5, usage)


def basic_item(user: str, amount: float) -> bytes:
    return f_varint(1, 1) + f_bytes(2, user) + f_bytes(4, f_float(2, amount))


# ---------------------------------------------------------------------------- raw transports


class RawConnect:
    name = "connect"

    def __init__(self, server: ServerHandle) -> None:
        self.http = httpx.Client(base_url=server.base_url, timeout=30)
        self.headers = {"authorization": f"Bearer {server.live_key}"}

    def unary(self, path: str, body: bytes) -> bytes:
        res = self.http.post(path, content=body, headers=self.headers | {"content-type": "application/proto"})
        if res.status_code != 200:
            error = res.json()
            raise RpcError(error["code"], error.get("message", ""))
        assert res.headers["content-type"] == "application/proto"
        return res.content

    def stream(self, path: str, items: list[bytes]) -> bytes:
        body = b"".join(struct.pack(">BI", 0, len(i)) + i for i in items)
        res = self.http.post(
            path, content=body, headers=self.headers | {"content-type": "application/connect+proto"}
        )
        assert res.status_code == 200
        message, data, i = None, res.content, 0
        while i < len(data):
            flags, size = struct.unpack(">BI", data[i : i + 5])
            payload, i = data[i + 5 : i + 5 + size], i + 5 + size
            if flags & 0x02:
                assert b"error" not in payload, payload
            else:
                message = payload
        assert message is not None
        return message

    def close(self) -> None:
        self.http.close()


class RawGrpc:
    name = "grpc"

    def __init__(self, server: ServerHandle) -> None:
        self.channel = grpc.insecure_channel(server.grpc_target)
        self.metadata = [("authorization", f"Bearer {server.live_key}")]

    def unary(self, path: str, body: bytes) -> bytes:
        call = self.channel.unary_unary(
            path, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        try:
            return call(body, metadata=self.metadata, timeout=30)  # type: ignore[no-any-return]
        except grpc.RpcError as e:
            raise RpcError(e.code().name.lower(), e.details() or "") from None

    def stream(self, path: str, items: list[bytes]) -> bytes:
        call = self.channel.stream_unary(
            path, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        return call(iter(items), metadata=self.metadata, timeout=30)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.channel.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, postgres_ok: bool
) -> Iterator[ServerHandle]:
    """One server per database for the whole module (every test uses its own user ids): these tests
    are many small calls, and a server start per test would dominate their run time."""
    pg_name = None
    data_dir = tmp_path_factory.mktemp(f"legacy-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'scrawn.db'}"
    else:
        if not postgres_ok:
            pytest.skip("PostgreSQL unavailable")
        url, pg_name = new_pg_database()
    handle = make_server(url, data_dir)
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()
        if pg_name is not None:
            drop_pg_database(pg_name)


@pytest.fixture(params=["connect", "grpc"])
def raw(request: pytest.FixtureRequest, server: ServerHandle) -> Iterator[Any]:
    client = RawConnect(server) if request.param == "connect" else RawGrpc(server)
    yield client
    client.close()


# ---------------------------------------------------------------------------- database checks


def fetch(server: ServerHandle, stmt: Any) -> list[Any]:
    async def run() -> list[Any]:
        db = server.db()
        try:
            async with db.read() as conn:
                return list(await conn.execute(stmt))
        finally:
            await db.dispose()

    return run_async(run())  # type: ignore[no-any-return]


def event_id_of(response: bytes) -> str:
    """Field 1 of the response, read the way the oldest clients read ``string random = 1``."""
    fields = parse_fields(response)
    [(wt, value)] = [(wt, v) for n, wt, v in fields if n == 1]
    assert wt == 2
    text: str = value.decode("utf-8")
    assert str(uuid.UUID(text)) == text
    return text


def assert_billed(server: ServerHandle, response: bytes, user: str, expected: str) -> None:
    """The stored debit (a Decimal through the Micros type) is exactly ``expected``, once, on the ledger."""
    event_id = event_id_of(response)
    decoded = ev.RegisterEventResponse.FromString(response)
    assert (decoded.userId, decoded.message, decoded.duplicate) == (user, "Event stored successfully", False)
    [row] = fetch(
        server, select(events).where(events.c.project_id == server.project_id, events.c.id == event_id)
    )
    assert row.user_id == user
    assert isinstance(row.debit, Decimal)
    assert row.debit == Decimal(expected) and str(row.debit) == expected
    entries = fetch(
        server,
        select(ledger_entries.c.amount).where(
            ledger_entries.c.project_id == server.project_id, ledger_entries.c.event_id == event_id
        ),
    )
    assert [e.amount for e in entries] == [-Decimal(expected)]


def user_events(server: ServerHandle, user: str) -> list[Any]:
    return fetch(
        server, select(events).where(events.c.project_id == server.project_id, events.c.user_id == user)
    )


def create_tag(server: ServerHandle, key: str, price: str) -> None:
    res = httpx.post(
        f"{server.base_url}/api/v1/tags",
        json={"key": key, "price": price},
        headers={"authorization": f"Bearer {server.dash_key}"},
    )
    assert res.status_code in (200, 201), res.text


# ---------------------------------------------------------------------------- BasicUsage float32


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, "0.1"),
        (12.5, "12.5"),
        (0.3, "0.3"),
        (123456.7, "123456.7"),
        (1.0, "1"),
        (0.0, "0"),
        (2.675, "2.675"),
    ],
)
def test_float_amount_is_billed_as_shortest_decimal(
    server: ServerHandle, raw: Any, value: float, expected: str
) -> None:
    user = f"float-{raw.name}-{value}"
    response = raw.unary(REGISTER, legacy_register(user, value))
    assert_billed(server, response, user, expected)


def test_legacy_requests_without_keys_are_not_deduplicated(server: ServerHandle, raw: Any) -> None:
    """No idempotency key: the server makes one each, so two identical sends are two events."""
    user = f"nokey-{raw.name}"
    first = raw.unary(REGISTER, legacy_register(user, 0.1))
    second = raw.unary(REGISTER, legacy_register(user, 0.1))
    assert event_id_of(first) != event_id_of(second)
    rows = user_events(server, user)
    assert sorted(r.debit for r in rows) == [Decimal("0.1"), Decimal("0.1")]
    assert len({r.idempotency_key for r in rows}) == 2


@pytest.mark.parametrize(
    ("value", "problem"),
    [(math.nan, "finite"), (math.inf, "finite"), (-math.inf, ""), (-1.5, "negative"), (-0.1, "negative")],
)
def test_bad_float_amount_is_invalid_argument(
    server: ServerHandle, raw: Any, value: float, problem: str
) -> None:
    user = f"bad-{raw.name}-{value}"
    with pytest.raises(RpcError) as err:
        raw.unary(REGISTER, legacy_register(user, value))
    assert err.value.code == "invalid_argument"
    assert "basicUsage.amount" in err.value.message and problem in err.value.message
    assert user_events(server, user) == []


@pytest.mark.parametrize("value", [MAX_FLOAT32, -MAX_FLOAT32, 1e30, 3e20])
def test_huge_float_amount_is_refused_without_crashing(server: ServerHandle, raw: Any, value: float) -> None:
    """Far beyond what the ledger can hold (about 9.2e12 minor units): refused, naming the field."""
    user = f"huge-{raw.name}-{value}"
    with pytest.raises(RpcError) as err:
        raw.unary(REGISTER, legacy_register(user, value))
    assert err.value.code == "invalid_argument", err.value
    assert "basicUsage.amount" in err.value.message
    assert user_events(server, user) == []
    # ... and the server still bills the next legacy event.
    assert_billed(server, raw.unary(REGISTER, legacy_register(user, 0.5)), user, "0.5")


# ---------------------------------------------------------------------------- SDKCall at field 3


def test_sdk_call_with_float_amount(server: ServerHandle, raw: Any) -> None:
    user = f"sdkcall-{raw.name}"
    response = raw.unary(REGISTER, sdk_call_register(user, f_varint(1, 1) + f_float(2, 2.5)))
    assert_billed(server, response, user, "2.5")
    response = raw.unary(REGISTER, sdk_call_register(user, f_varint(1, 1) + f_float(2, 0.1)))
    assert_billed(server, response, user, "0.1")
    [(_, wt, _)] = [f for f in parse_fields(response) if f[0] == 1]
    assert wt == 2


def test_sdk_call_with_tag(server: ServerHandle, raw: Any) -> None:
    create_tag(server, "LEGACY_TAG", "4.333333")
    user = f"sdkcall-tag-{raw.name}"
    response = raw.unary(REGISTER, sdk_call_register(user, f_bytes(3, "LEGACY_TAG")))
    assert_billed(server, response, user, "4.333333")
    with pytest.raises(RpcError) as err:
        raw.unary(REGISTER, sdk_call_register(user, f_varint(1, 1) + f_bytes(3, "NO_SUCH_TAG")))
    assert err.value.code == "failed_precondition"  # kept for repricing (docs/pricing-safety.md)
    assert err.value.message == "Event kept for repricing: basicUsage.tag: Tag not found: NO_SUCH_TAG"


@pytest.mark.parametrize(
    "sdk_call",
    [
        f_varint(1, 1) + f_float(2, math.nan),
        f_varint(1, 1) + f_float(2, math.inf),
        f_float(2, -3.0),
        f_varint(1, 1),
        b"",
        b"\xff\xff\xff",
    ],
    ids=["nan", "inf", "negative", "no-debit", "empty", "malformed"],
)
def test_bad_sdk_call_is_invalid_argument(server: ServerHandle, raw: Any, sdk_call: bytes) -> None:
    """Never silently bill 0: a legacy call without a usable debit is refused."""
    user = f"sdkcall-bad-{raw.name}"
    with pytest.raises(RpcError) as err:
        raw.unary(REGISTER, sdk_call_register(user, sdk_call))
    assert err.value.code == "invalid_argument", err.value
    assert user_events(server, user) == []


# ---------------------------------------------------------------------------- AITokenUsage float32


def test_ai_float_amounts_in_a_stream(server: ServerHandle, raw: Any) -> None:
    user = f"ai-{raw.name}"
    items = [
        ai_item(user, 0.3, 1.7),  # 0: billed 0.3 + 1.7
        ai_item(user, math.nan, 1.0),  # 1: NaN input
        ai_item(user, 0.25, math.inf),  # 2: infinite output
        ai_item(user, -0.5, 1.0),  # 3: negative input
        basic_item(user, 0.1),  # 4: a float BasicUsage item in a stream
        ai_item(user, 12.5, 0.1),  # 5
        basic_item(user, math.nan),  # 6
        ai_item(user, MAX_FLOAT32, 1.0),  # 7: far too large
    ]
    summary = ev.StreamEventResponse.FromString(raw.stream(STREAM, items))
    assert (summary.eventsProcessed, summary.eventsFailed) == (8, 5)
    failures = {f.eventIndex: f for f in summary.failures}
    assert set(failures) == {1, 2, 3, 6, 7}
    assert "aiTokenUsage.inputAmount" in failures[1].message
    assert "aiTokenUsage.outputAmount" in failures[2].message
    assert "aiTokenUsage.inputAmount" in failures[3].message and "negative" in failures[3].message
    assert "basicUsage.amount" in failures[6].message
    assert "aiTokenUsage.inputAmount" in failures[7].message
    assert all(f.errorCode == "VALIDATION_FAILED" for f in summary.failures)

    rows = sorted(user_events(server, user), key=lambda r: r.debit)
    got = [
        (r.event_type, r.input_debit, r.output_debit, r.input_cache_debit, r.output_cache_debit, r.debit)
        for r in rows
    ]
    zero = Decimal(0)
    assert got == [
        ("BASIC_USAGE", None, None, None, None, Decimal("0.1")),
        ("AI_TOKEN_USAGE", Decimal("0.3"), Decimal("1.7"), zero, zero, Decimal("2")),
        ("AI_TOKEN_USAGE", Decimal("12.5"), Decimal("0.1"), zero, zero, Decimal("12.6")),
    ]
    ai = [r for r in rows if r.event_type == "AI_TOKEN_USAGE"]
    assert {(r.model, r.provider, r.input_tokens, r.output_tokens) for r in ai} == {
        ("legacy-model", "unknown", 1200, 340)
    }
    entries = fetch(
        server,
        select(ledger_entries.c.amount).where(
            ledger_entries.c.project_id == server.project_id, ledger_entries.c.user_id == user
        ),
    )
    assert sorted(e.amount for e in entries) == sorted(-r.debit for r in rows)
