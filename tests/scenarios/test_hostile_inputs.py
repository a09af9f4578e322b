"""Hostile inputs to RegisterEvent and StreamEvents (DESIGN §3.1, §3.4, §3.5): each is refused with the
right code and a message naming the field, on every protocol; inside a stream it fails alone with the
right errorCode while its valid neighbours are stored. The server survives all of it. Also: tenants and
modes never see each other's data."""

from __future__ import annotations

import json
import struct
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest

from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.query.v1 import query_pb2 as query
from tests.clients import (
    QUERY,
    REGISTER,
    STREAM,
    ConnectClient,
    RpcError,
    all_clients,
    bearer,
)
from tests.conftest import SECRET, ServerHandle, drop_pg_database, make_server, new_pg_database, run_async
from tests.scenarios.catalog_rows import store_unchecked_expressions

# --------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def srv(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, postgres_ok: bool
) -> Iterator[ServerHandle]:
    """One real server per database for this module, with the catalog the cases need."""
    data_dir = tmp_path_factory.mktemp(f"hostile_{request.param}")
    pg_name = None
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'scrawn.db'}"
    else:
        if not postgres_ok:
            pytest.skip("PostgreSQL unavailable")
        url, pg_name = new_pg_database()
    handle = make_server(url, data_dir)
    handle.start()
    try:
        headers = {"authorization": f"Bearer {handle.dash_key}"}
        body = {"key": "PRICE", "price": "3"}
        res = httpx.post(handle.base_url + "/api/v1/tags", json=body, headers=headers)
        assert res.status_code == 201, res.text
        # a cycle: CYC_A -> CYC_B -> CYC_A (each text parses; the cycle shows only when evaluated). The API
        # refuses to store one (docs/pricing-safety.md), so these are written as an older server could have.
        store_unchecked_expressions(
            handle,
            {"CYC_A": "add(1, expr(CYC_B))", "CYC_B": "expr(CYC_A)", "SELF": "mul(2, expr(SELF))"},
        )
        yield handle
    finally:
        handle.stop()
        if pg_name:
            drop_pg_database(pg_name)


@pytest.fixture(scope="module")
def clients(srv: ServerHandle) -> Iterator[list[Any]]:
    """One client per protocol, reused by every test of the module (making httpx clients is slow)."""
    made = all_clients(srv)
    _QUERY_CLIENT[srv.base_url] = made[2]
    yield made
    for c in made:
        c.close()
    _QUERY_CLIENT.pop(srv.base_url, None)


_QUERY_CLIENT: dict[str, ConnectClient] = {}


def _qc(server: ServerHandle) -> ConnectClient:
    return _QUERY_CLIENT[server.base_url]


def count_user(server: ServerHandle, user: str, key: str | None = None) -> int:
    where = query.FilterGroup(
        conditions=[query.FilterCondition(field="userId", operator=query.EQ, value=user)]
    )
    return int(
        _qc(server).unary(QUERY, query.QueryEventsRequest(where=where), bearer(key or server.live_key)).total
    )


# ----------------------------------------------------------------------------------------- the table


def legacy_usage(bits: int) -> ev.BasicUsage:
    """BasicUsage as TS SDK 0.0.6 sends it: field 2 as a float32 (wire type 5, fixed32)."""
    return ev.BasicUsage.FromString(bytes([(2 << 3) | 5]) + struct.pack("<I", bits))


def legacy_ai(bits: int, **kw: Any) -> ev.AITokenUsage:
    """AITokenUsage whose inputAmount (4) arrives as a float32."""
    msg = ev.AITokenUsage.FromString(bytes([(4 << 3) | 5]) + struct.pack("<I", bits))
    msg.MergeFrom(ev.AITokenUsage(**kw))
    return msg


def f32(value: float) -> int:
    return int(struct.unpack("<I", struct.pack("<f", value))[0])


def amount(value: int = 1, **kw: Any) -> ev.BasicUsage:
    return ev.BasicUsage(amount=value, **kw)


def ai(**kw: Any) -> ev.AITokenUsage:
    base: dict[str, Any] = {
        "model": "gpt-test",
        "inputTokens": 10,
        "outputTokens": 5,
        "inputAmount": 1,
        "outputAmount": 2,
    }
    return ev.AITokenUsage(**(base | kw))


NOW = int(time.time())


@dataclass(frozen=True)
class Case:
    id: str
    kw: dict[str, Any]  # fields of RegisterEventRequest / StreamEventRequest (same names in both)
    code: str | None  # unary RPC code; None = accepted
    stream_code: str | None  # EventFailure.errorCode; None = accepted
    field: str  # named in the message
    unary: bool = True  # False: only a stream can carry it (AI items)
    stream_kw: dict[str, Any] | None = None  # when the stream item differs from the unary request
    binary_only: bool = False  # unknown (legacy) fields do not survive protobuf JSON
    expected_debit: str | None = None  # for accepted cases: debit_amount_exact
    stream_field: str | None = None  # when the stream's message names another field

    @property
    def stream_names(self) -> str:
        return self.stream_field or self.field

    def register(self) -> ev.RegisterEventRequest:
        return ev.RegisterEventRequest(**({"type": ev.BASIC_USAGE, "userId": f"h-{self.id}"} | self.kw))

    def stream_item(self) -> ev.StreamEventRequest:
        kw = self.stream_kw if self.stream_kw is not None else self.kw
        return ev.StreamEventRequest(**({"type": ev.BASIC_USAGE, "userId": f"h-{self.id}"} | kw))

    @property
    def user(self) -> str:
        kw = self.stream_kw if self.stream_kw is not None else self.kw
        return str(kw.get("userId", f"h-{self.id}"))


IA, VF, ID, IT, PF, UT = (
    "invalid_argument",
    "VALIDATION_FAILED",
    "INVALID_DATA",
    "INVALID_TIMESTAMP",
    "PRICE_CALCULATION_FAILED",
    "UNSUPPORTED_EVENT_TYPE",
)
# Well-formed but not priceable by the configuration: kept for repricing (docs/pricing-safety.md#quarantine).
FP, KEPT = "failed_precondition", "KEPT_FOR_REPRICING"

CASES: list[Case] = [
    # userId
    Case("empty-user", {"userId": "", "basicUsage": amount()}, IA, VF, "userId"),
    Case("blank-user", {"userId": " \t\n ", "basicUsage": amount()}, IA, VF, "userId"),
    Case("user-257", {"userId": "u" * 257, "basicUsage": amount()}, IA, VF, "userId"),
    Case("user-nul", {"userId": "alice\x00admin", "basicUsage": amount()}, IA, VF, "userId"),
    Case(
        "user-256-ok",
        {"userId": "user-256-ok-" + "u" * 244, "basicUsage": amount()},
        None,
        None,
        "",
        expected_debit="1",
    ),
    Case(
        "user-emoji-ok",
        {"userId": "用户-😀-" + "🦄" * 250, "basicUsage": amount(2)},
        None,
        None,
        "",
        expected_debit="2",
    ),
    Case(
        "user-rtl-ok",
        {"userId": "\u202eadmin\u200b' OR 1=1 --", "basicUsage": amount()},
        None,
        None,
        "",
        expected_debit="1",
    ),
    # amounts and debits
    Case("negative-amount", {"basicUsage": amount(-1)}, IA, VF, "basicUsage.amount"),
    Case("int32-min-amount", {"basicUsage": amount(-(2**31))}, IA, VF, "basicUsage.amount"),
    Case(
        "int32-max-amount-ok",
        {"basicUsage": amount(2**31 - 1)},
        None,
        None,
        "",
        expected_debit=str(2**31 - 1),
    ),
    Case("missing-debit", {"basicUsage": ev.BasicUsage(basicUsageType=ev.RAW)}, IA, VF, "basicUsage.debit"),
    Case("missing-basic-usage", {}, IA, ID, "basicUsage"),
    Case("bad-usage-type", {"basicUsage": amount(1, basicUsageType=7)}, IA, VF, "basicUsage.basicUsageType"),
    # event type
    Case("type-99", {"type": 99, "basicUsage": amount()}, IA, UT, "type"),
    Case("type-unspecified", {"type": ev.EVENT_TYPE_UNSPECIFIED, "basicUsage": amount()}, IA, UT, "type"),
    Case(
        "ai-type-on-register",
        {"type": ev.AI_TOKEN_USAGE, "basicUsage": amount()},
        IA,
        ID,
        "type",
        stream_field="aiTokenUsage",
    ),
    # metadata
    Case(
        "metadata-1mb",
        {"basicUsage": amount(1, metadata=json.dumps({"x": "y" * (1 << 20)}))},
        IA,
        ID,
        "basicUsage.metadata",
    ),
    Case(
        "metadata-16k-ok",
        {"basicUsage": amount(1, metadata=json.dumps({"x": "y" * (16 * 1024 - 9)}))},
        None,
        None,
        "",
        expected_debit="1",
    ),
    Case(
        "metadata-not-json", {"basicUsage": amount(1, metadata="not json {")}, IA, ID, "basicUsage.metadata"
    ),
    Case("metadata-array", {"basicUsage": amount(1, metadata="[1, 2, 3]")}, IA, ID, "basicUsage.metadata"),
    Case("metadata-string", {"basicUsage": amount(1, metadata='"text"')}, IA, ID, "basicUsage.metadata"),
    Case("metadata-nan", {"basicUsage": amount(1, metadata='{"a": NaN}')}, IA, ID, "basicUsage.metadata"),
    Case(
        "metadata-infinity",
        {"basicUsage": amount(1, metadata='{"a": -Infinity}')},
        IA,
        ID,
        "basicUsage.metadata",
    ),
    Case("metadata-nul", {"basicUsage": amount(1, metadata='{"a": "\x00"}')}, IA, ID, "basicUsage.metadata"),
    Case(
        "metadata-escaped-nul-ok",
        {"basicUsage": amount(1, metadata='{"a": "\\u0000"}')},
        None,
        None,
        "",
        expected_debit="1",
    ),
    Case(
        "metadata-deep",
        {"basicUsage": amount(1, metadata="[" * 8000 + "]" * 8000)},
        IA,
        ID,
        "basicUsage.metadata",
    ),
    Case("metadata-empty", {"basicUsage": amount(1, metadata="")}, IA, ID, "basicUsage.metadata"),
    # ids and keys
    Case("bad-event-id", {"eventId": "not-a-uuid", "basicUsage": amount()}, IA, VF, "eventId"),
    Case("event-id-sql", {"eventId": "'; DROP TABLE events; --", "basicUsage": amount()}, IA, VF, "eventId"),
    Case("idem-256", {"idempotencyKey": "k" * 256, "basicUsage": amount()}, IA, VF, "idempotencyKey"),
    Case("idem-blank", {"idempotencyKey": "   ", "basicUsage": amount()}, IA, VF, "idempotencyKey"),
    Case("idem-nul", {"idempotencyKey": "k\x00k", "basicUsage": amount()}, IA, VF, "idempotencyKey"),
    # tags
    Case("unknown-tag", {"basicUsage": ev.BasicUsage(tag="NOPE")}, FP, KEPT, "Tag not found: NOPE"),
    Case("bad-tag-name", {"basicUsage": ev.BasicUsage(tag="lower-case")}, IA, VF, "basicUsage.tag"),
    Case("empty-tag", {"basicUsage": ev.BasicUsage(tag="")}, IA, VF, "basicUsage.tag"),
    Case("tag-129", {"basicUsage": ev.BasicUsage(tag="T" * 129)}, IA, VF, "basicUsage.tag"),
    Case("tag-ok", {"basicUsage": ev.BasicUsage(tag="PRICE")}, None, None, "", expected_debit="3"),
    # expressions
    Case("expr-syntax", {"basicUsage": ev.BasicUsage(expr="add(1,")}, IA, PF, "basicUsage.expr"),
    Case("expr-infix", {"basicUsage": ev.BasicUsage(expr="1 + 1")}, IA, PF, "basicUsage.expr"),
    Case(
        "expr-python",
        {"basicUsage": ev.BasicUsage(expr="__import__('os').system('id')")},
        IA,
        PF,
        "basicUsage.expr",
    ),
    Case("expr-blank", {"basicUsage": ev.BasicUsage(expr="  ")}, IA, VF, "basicUsage.expr"),
    Case("expr-cycle", {"basicUsage": ev.BasicUsage(expr="expr(CYC_A)")}, IA, PF, "cycle"),
    Case("expr-self-cycle", {"basicUsage": ev.BasicUsage(expr="expr(SELF)")}, IA, PF, "cycle"),
    Case(
        "expr-unknown",
        {"basicUsage": ev.BasicUsage(expr="expr(MISSING)")},
        FP,
        KEPT,
        "Expression not found: MISSING",
    ),
    Case(
        "expr-unknown-tag",
        {"basicUsage": ev.BasicUsage(expr="mul(tag(NOPE), 2)")},
        FP,
        KEPT,
        "Tag not found: NOPE",
    ),
    Case("div-by-zero", {"basicUsage": ev.BasicUsage(expr="div(1, sub(2, 2))")}, IA, PF, "Division by zero"),
    Case("expr-negative", {"basicUsage": ev.BasicUsage(expr="sub(1, 2)")}, IA, PF, "negative"),
    Case(
        "expr-overflow",
        {"basicUsage": ev.BasicUsage(expr="mul(" + ", ".join(["99999999999999"] * 3) + ")")},
        IA,
        PF,
        "basicUsage",
    ),
    Case(
        "expr-tokens-on-basic",
        {"basicUsage": ev.BasicUsage(expr="mul(inputTokens(), 2)")},
        IA,
        PF,
        "inputTokens()",
    ),
    Case(
        "expr-depth-40",
        {"basicUsage": ev.BasicUsage(expr="add(1, " * 40 + "1" + ")" * 40)},
        IA,
        PF,
        "nested too deeply",
    ),
    Case(
        "expr-depth-10000",
        {"basicUsage": ev.BasicUsage(expr="add(1, " * 10_000 + "1" + ")" * 10_000)},
        IA,
        VF,
        "basicUsage.expr",
    ),
    Case(
        "expr-too-long",
        {"basicUsage": ev.BasicUsage(expr="add(" + "1, " * 1100 + "1)")},
        IA,
        VF,
        "basicUsage.expr",
    ),
    Case(
        "expr-fraction-ok",
        {"basicUsage": ev.BasicUsage(expr="div(1, 3)")},
        None,
        None,
        "",
        expected_debit="0.333333",
    ),
    # legacy float amounts (TS SDK 0.0.6)
    Case(
        "legacy-nan", {"basicUsage": legacy_usage(0x7FC00000)}, IA, VF, "basicUsage.amount", binary_only=True
    ),
    Case(
        "legacy-infinity",
        {"basicUsage": legacy_usage(0x7F800000)},
        IA,
        VF,
        "basicUsage.amount",
        binary_only=True,
    ),
    Case(
        "legacy-minus-infinity",
        {"basicUsage": legacy_usage(0xFF800000)},
        IA,
        VF,
        "basicUsage.amount",
        binary_only=True,
    ),
    Case(
        "legacy-negative",
        {"basicUsage": legacy_usage(f32(-1.5))},
        IA,
        VF,
        "basicUsage.amount",
        binary_only=True,
    ),
    Case(
        "legacy-0.1-ok",
        {"basicUsage": legacy_usage(f32(0.1))},
        None,
        None,
        "",
        binary_only=True,
        expected_debit="0.1",
    ),
    # timestamps
    Case(
        "negative-timestamp", {"reportedTimestamp": -1, "basicUsage": amount()}, IA, IT, "reportedTimestamp"
    ),
    Case(
        "int32-min-timestamp",
        {"reportedTimestamp": -(2**31), "basicUsage": amount()},
        IA,
        IT,
        "reportedTimestamp",
    ),
    Case(
        "future-timestamp",
        {"reportedTimestamp": NOW + 2 * 86400, "basicUsage": amount()},
        IA,
        IT,
        "reportedTimestamp",
    ),
    Case(
        "int32-max-timestamp",
        {"reportedTimestamp": 2**31 - 1, "basicUsage": amount()},
        IA,
        IT,
        "reportedTimestamp",
    ),
    # Older than the project's late-event window (35 days by default; docs/events.md#late-events).
    Case("epoch-1-too-late", {"reportedTimestamp": 1, "basicUsage": amount()}, IA, IT, "reportedTimestamp"),
    Case(
        "34-days-ago-ok",
        {"reportedTimestamp": NOW - 34 * 86400, "basicUsage": amount()},
        None,
        None,
        "",
        expected_debit="1",
    ),
    # AI items (streams only)
    Case(
        "ai-negative-input-tokens",
        {"type": ev.AI_TOKEN_USAGE, "aiTokenUsage": ai(inputTokens=-5)},
        None,
        VF,
        "aiTokenUsage.inputTokens",
        unary=False,
    ),
    Case(
        "ai-negative-output-tokens",
        {"type": ev.AI_TOKEN_USAGE, "aiTokenUsage": ai(outputTokens=-1)},
        None,
        VF,
        "aiTokenUsage.outputTokens",
        unary=False,
    ),
    Case(
        "ai-negative-cache-tokens",
        {"type": ev.AI_TOKEN_USAGE, "aiTokenUsage": ai(inputCacheTokens=-1)},
        None,
        VF,
        "aiTokenUsage.inputCacheTokens",
        unary=False,
    ),
    Case(
        "ai-empty-model",
        {"type": ev.AI_TOKEN_USAGE, "aiTokenUsage": ai(model="")},
        None,
        VF,
        "aiTokenUsage.model",
        unary=False,
    ),
    Case(
        "ai-blank-model",
        {"type": ev.AI_TOKEN_USAGE, "aiTokenUsage": ai(model="   ")},
        None,
        VF,
        "aiTokenUsage.model",
        unary=False,
    ),
    Case(
        "ai-long-model",
        {"type": ev.AI_TOKEN_USAGE, "aiTokenUsage": ai(model="m" * 256)},
        None,
        VF,
        "aiTokenUsage.model",
        unary=False,
    ),
    Case(
        "ai-negative-amount",
        {"type": ev.AI_TOKEN_USAGE, "aiTokenUsage": ai(inputAmount=-3)},
        None,
        VF,
        "aiTokenUsage.inputAmount",
        unary=False,
    ),
    Case(
        "ai-unknown-tag",
        {"type": ev.AI_TOKEN_USAGE, "aiTokenUsage": ai(outputTag="NOPE")},
        None,
        KEPT,
        "Tag not found: NOPE",
        unary=False,
    ),
    Case(
        "ai-div-zero",
        {"type": ev.AI_TOKEN_USAGE, "aiTokenUsage": ai(outputExpr="div(outputTokens(), 0)")},
        None,
        PF,
        "Division by zero",
        unary=False,
    ),
    Case(
        "ai-metadata-array",
        {"type": ev.AI_TOKEN_USAGE, "aiTokenUsage": ai(metadata="[]")},
        None,
        ID,
        "aiTokenUsage.metadata",
        unary=False,
    ),
    Case("ai-missing-usage", {"type": ev.AI_TOKEN_USAGE}, None, ID, "aiTokenUsage", unary=False),
    Case(
        "ai-legacy-nan",
        {"type": ev.AI_TOKEN_USAGE, "aiTokenUsage": legacy_ai(0x7FC00000, model="m", outputAmount=1)},
        None,
        VF,
        "aiTokenUsage.inputAmount",
        unary=False,
        binary_only=True,
    ),
    Case(
        "ai-tokens-ok",
        {"type": ev.AI_TOKEN_USAGE, "aiTokenUsage": ai(inputExpr="mul(inputTokens(), 0.5)", outputAmount=2)},
        None,
        None,
        "",
        unary=False,
        expected_debit="7",
    ),
]


def _clients_for(clients: list[Any], case: Case) -> list[Any]:
    if case.binary_only:  # protobuf JSON cannot carry unknown (legacy float) fields
        return [c for c in clients if not (isinstance(c, ConnectClient) and not c.binary)]
    return clients


def _exact_debits(server: ServerHandle, user: str) -> list[str]:
    where = query.FilterGroup(
        conditions=[query.FilterCondition(field="userId", operator=query.EQ, value=user)]
    )
    res = _qc(server).unary(QUERY, query.QueryEventsRequest(where=where, limit=1000), bearer(server.live_key))
    return [r.debit_amount_exact for r in res.rows]


UNARY_CASES = [c for c in CASES if c.unary]


@pytest.mark.parametrize("case", UNARY_CASES, ids=[c.id for c in UNARY_CASES])
def test_hostile_register_event(srv: ServerHandle, clients: list[Any], case: Case) -> None:
    chosen = _clients_for(clients, case)
    before = count_user(srv, case.user) if case.code is None else 0
    seen: set[tuple[str, str]] = set()
    for client in chosen:
        if case.code is None:
            res = client.unary(REGISTER, case.register(), bearer(srv.live_key))
            assert res.message == "Event stored successfully"
            assert res.userId == case.register().userId
            continue
        with pytest.raises(RpcError) as err:
            client.unary(REGISTER, case.register(), bearer(srv.live_key))
        assert err.value.code == case.code, (type(client).__name__, err.value)
        assert case.field in err.value.message, (type(client).__name__, err.value.message)
        assert "Traceback" not in err.value.message and "request id" not in err.value.message
        seen.add((err.value.code, err.value.message))
    if case.code is None:
        # stored exactly as sent: the user id round-trips, the price is what was asked
        assert count_user(srv, case.user) == before + len(chosen)
        assert _exact_debits(srv, case.user)[: len(chosen)] == [case.expected_debit] * len(chosen)
    else:
        assert len(seen) == 1, f"protocols disagree: {seen}"
        if "userId" not in case.kw:
            assert count_user(srv, case.user) == 0, "a refused event was stored"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_stream_item_fails_alone(srv: ServerHandle, clients: list[Any], case: Case) -> None:
    for n, client in enumerate(_clients_for(clients, case)):
        ok_user = f"ok-{case.id}-{n}-{uuid.uuid4().hex[:6]}"
        neighbour_keys = [f"{ok_user}-a", f"{ok_user}-b"]
        hostile_key_kw = {} if "idempotencyKey" in case.kw else {"idempotencyKey": f"{ok_user}-h"}
        items = [
            ev.StreamEventRequest(
                type=ev.BASIC_USAGE, userId=ok_user, idempotencyKey=neighbour_keys[0], basicUsage=amount(5)
            ),
            case.stream_item(),
            ev.StreamEventRequest(
                type=ev.AI_TOKEN_USAGE, userId=ok_user, idempotencyKey=neighbour_keys[1], aiTokenUsage=ai()
            ),
        ]
        if hostile_key_kw and case.stream_kw is None:
            items[1].idempotencyKey = hostile_key_kw["idempotencyKey"]
        res = client.stream(STREAM, items, bearer(srv.live_key))
        name = type(client).__name__
        assert res.eventsProcessed == 3, name
        if case.stream_code is None:
            assert (res.eventsFailed, list(res.failures)) == (0, []), (name, res.failures)
            assert res.message == "Processed 3 events (3 succeeded, 0 failed)"
        else:
            assert res.eventsFailed == 1, (name, res)
            [failure] = res.failures
            assert failure.eventIndex == 1
            assert failure.errorCode == case.stream_code, (name, failure)
            assert case.stream_names in failure.message, (name, failure.message)
            assert failure.idempotencyKey == items[1].idempotencyKey
            assert res.message == "Processed 3 events (2 succeeded, 1 failed)"
        # the valid neighbours are durable when the response arrives
        assert count_user(srv, ok_user) == 2, name
        assert sorted(_exact_debits(srv, ok_user)) == ["3", "5"]


def test_one_stream_of_every_hostile_item(srv: ServerHandle, clients: list[Any]) -> None:
    """All the cases in one stream, each between two valid items: only the hostile ones fail."""
    user = f"mixed-{uuid.uuid4().hex[:8]}"
    items: list[ev.StreamEventRequest] = []
    expected: dict[int, Case] = {}
    for case in CASES:
        items.append(ev.StreamEventRequest(type=ev.BASIC_USAGE, userId=user, basicUsage=amount(1)))
        if case.stream_code is not None:
            expected[len(items)] = case
        items.append(case.stream_item())
    items.append(ev.StreamEventRequest(type=ev.BASIC_USAGE, userId=user, basicUsage=amount(1)))
    res = clients[0].stream(STREAM, items, bearer(srv.live_key))  # gRPC
    assert res.eventsProcessed == len(items)
    got = {f.eventIndex: f for f in res.failures}
    assert set(got) == set(expected)
    for index, case in expected.items():
        assert got[index].errorCode == case.stream_code, case.id
        assert case.stream_names in got[index].message, case.id
    assert res.eventsFailed == len(expected)
    assert count_user(srv, user) == len(CASES) + 1


def test_invalid_utf8_is_refused_cleanly(srv: ServerHandle) -> None:
    """A userId that is not UTF-8 cannot be decoded: INVALID_ARGUMENT, not INTERNAL, not a dropped
    connection."""
    # type = 1, userId = b"\xff\xfe", basicUsage { amount = 1 }
    raw = bytes([0x08, 0x01, 0x12, 0x02, 0xFF, 0xFE, 0x22, 0x02, 0x10, 0x01])
    res = httpx.post(
        srv.base_url + REGISTER,
        content=raw,
        headers={"content-type": "application/proto", "authorization": f"Bearer {srv.live_key}"},
    )
    assert res.status_code == 400, res.text
    assert res.json()["code"] == "invalid_argument"
    with grpc.insecure_channel(srv.grpc_target) as channel:
        call = channel.unary_unary(
            REGISTER,
            request_serializer=lambda b: b,
            response_deserializer=ev.RegisterEventResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as err:
            call(raw, metadata=bearer(srv.live_key), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert httpx.get(srv.base_url + "/healthz").status_code == 200


def test_reused_idempotency_key_with_other_content_names_the_field(
    srv: ServerHandle, clients: list[Any]
) -> None:
    key = f"idem-{uuid.uuid4().hex}"
    first = ev.RegisterEventRequest(
        type=ev.BASIC_USAGE, userId="idem-user", idempotencyKey=key, basicUsage=amount(4)
    )
    c = clients[1]  # Connect JSON
    stored = c.unary(REGISTER, first, bearer(srv.live_key))
    again = c.unary(REGISTER, first, bearer(srv.live_key))
    assert (again.eventId, again.duplicate) == (stored.eventId, True)
    changed = ev.RegisterEventRequest()
    changed.CopyFrom(first)
    changed.basicUsage.amount = 5
    with pytest.raises(RpcError) as err:
        c.unary(REGISTER, changed, bearer(srv.live_key))
    assert err.value.code == "already_exists"
    assert "idempotencyKey" in err.value.message
    res = c.stream(
        STREAM,
        [
            ev.StreamEventRequest(
                type=ev.BASIC_USAGE, userId="idem-user", idempotencyKey=key, basicUsage=amount(6)
            )
        ],
        bearer(srv.live_key),
    )
    assert res.eventsFailed == 1
    assert "idempotencyKey" in res.failures[0].message


def test_a_debit_that_would_overflow_a_balance_is_refused_alone(
    srv: ServerHandle, clients: list[Any]
) -> None:
    """A user's balance is a BIGINT of micro-units. A debit that would pass it is refused by itself:
    neither a float balance (SQLite) nor a failed flush answering UNAVAILABLE to everyone (PostgreSQL)."""
    res = httpx.post(
        srv.base_url + "/api/v1/tags",
        json={"key": "MAXP", "price": "9223372036854.775807"},
        headers={"authorization": f"Bearer {srv.dash_key}"},
    )
    assert res.status_code == 201, res.text
    rich, other, third = (f"{n}-{uuid.uuid4().hex[:8]}" for n in ("rich", "other", "third"))
    c = clients[0]  # gRPC
    c.unary(
        REGISTER,
        ev.RegisterEventRequest(type=ev.BASIC_USAGE, userId=rich, basicUsage=ev.BasicUsage(tag="MAXP")),
        bearer(srv.live_key),
    )
    for client in clients:
        with pytest.raises(RpcError) as err:
            client.unary(
                REGISTER,
                ev.RegisterEventRequest(type=ev.BASIC_USAGE, userId=rich, basicUsage=amount(1)),
                bearer(srv.live_key),
            )
        assert err.value.code == "out_of_range", err.value  # a genuine limit (docs/money.md#limits)
        assert "debit" in err.value.message and "balance" in err.value.message
    res = c.stream(
        STREAM,
        [
            ev.StreamEventRequest(type=ev.BASIC_USAGE, userId=rich, basicUsage=amount(1)),
            ev.StreamEventRequest(type=ev.BASIC_USAGE, userId=other, basicUsage=amount(1)),
            ev.StreamEventRequest(type=ev.BASIC_USAGE, userId=third, basicUsage=ev.BasicUsage(tag="MAXP")),
            ev.StreamEventRequest(type=ev.BASIC_USAGE, userId=third, basicUsage=amount(2)),
        ],
        bearer(srv.live_key),
    )
    assert [(f.eventIndex, f.errorCode) for f in res.failures] == [(0, "INVALID_DATA"), (3, "INVALID_DATA")]
    assert all("debit" in f.message for f in res.failures)
    assert (count_user(srv, rich), count_user(srv, other), count_user(srv, third)) == (1, 1, 1)

    async def balances_of() -> dict[str, Any]:
        from sqlalchemy import BigInteger, select, type_coerce

        from scrawn.server.db.schema import balances

        db = srv.db()
        try:
            async with db.read() as conn:
                rows = await conn.execute(
                    select(balances.c.user_id, type_coerce(balances.c.balance, BigInteger)).where(
                        balances.c.user_id.in_([rich, other, third])
                    )
                )
                return {r[0]: r[1] for r in rows}
        finally:
            await db.dispose()

    found = run_async(balances_of())
    # exact integers: never a float that lost the micro-units
    assert found == {rich: -(2**63 - 1), other: -1_000_000, third: -(2**63 - 1)}
    assert all(type(v) is int for v in found.values())


# --------------------------------------------------------------------------------------- tenancy, modes


async def _second_project(server: ServerHandle) -> tuple[str, dict[str, str]]:
    from scrawn.server.keys.service import KeyService
    from scrawn.server.projects.service import create_project

    db = server.db()
    try:
        async with db.write() as conn:
            project_id = await create_project(conn, "other tenant")
            keys = {}
            for role in ("dash", "live", "test"):
                _, keys[role] = await KeyService(db, SECRET).create_key(
                    conn, project_id, role, f"other-{role}"
                )  # type: ignore[arg-type]
        return project_id, keys
    finally:
        await db.dispose()


def _query(client: Any, key: str, user: str | None = None, extra: list[tuple[str, str]] | None = None) -> Any:
    req = query.QueryEventsRequest(limit=1000)
    if user is not None:
        req.where.CopyFrom(
            query.FilterGroup(
                conditions=[query.FilterCondition(field="userId", operator=query.EQ, value=user)]
            )
        )
    return client.unary(QUERY, req, bearer(key) + (extra or []))


def test_another_project_sees_nothing_of_the_first(srv: ServerHandle, clients: list[Any]) -> None:
    project_id, other = _second_project_keys(srv)
    assert project_id != srv.project_id
    user, key = f"tenant-{uuid.uuid4().hex[:8]}", f"shared-key-{uuid.uuid4().hex}"
    for client in clients:
        mine = client.unary(
            REGISTER,
            ev.RegisterEventRequest(
                type=ev.BASIC_USAGE, userId=user, idempotencyKey=key, basicUsage=ev.BasicUsage(tag="PRICE")
            ),
            bearer(srv.live_key),
        )
        # the other project's keys see none of it: not by user, not in total, in neither mode
        for role, extra in (
            ("live", None),
            ("test", None),
            ("dash", None),
            ("dash", [("x-scrawn-mode", "test")]),
        ):
            res = _query(client, other[role], user, extra)
            assert (res.total, list(res.rows)) == (0, []), role
        seen_by_other = _query(client, other["dash"])
        assert all(r.user_id != user for r in seen_by_other.rows)
        # the same idempotency key in the other project is a new event, not a duplicate or a conflict
        theirs = client.unary(
            REGISTER,
            ev.RegisterEventRequest(
                type=ev.BASIC_USAGE, userId=user, idempotencyKey=key, basicUsage=ev.BasicUsage(amount=9)
            ),
            bearer(other["live"]),
        )
        assert not theirs.duplicate and theirs.eventId != mine.eventId
        # the first project's tag does not exist for the other one: its event is kept for repricing
        with pytest.raises(RpcError) as err:
            client.unary(
                REGISTER,
                ev.RegisterEventRequest(
                    type=ev.BASIC_USAGE, userId=user, basicUsage=ev.BasicUsage(tag="PRICE")
                ),
                bearer(other["live"]),
            )
        assert (err.value.code, "Tag not found: PRICE" in err.value.message) == ("failed_precondition", True)
        # each project sees exactly its own event under that user
        key_filter = query.FilterGroup(
            conditions=[
                query.FilterCondition(field="userId", operator=query.EQ, value=user),
                query.FilterCondition(field="idempotencyKey", operator=query.EQ, value=key),
            ]
        )
        for k, event_id, debit in ((srv.live_key, mine.eventId, "3"), (other["live"], theirs.eventId, "9")):
            res = client.unary(QUERY, query.QueryEventsRequest(where=key_filter), bearer(k))
            assert [(r.event_id, r.debit_amount_exact) for r in res.rows] == [(event_id, debit)]
        # and its pricing catalog is its own
        tags = httpx.get(srv.base_url + "/api/v1/tags", headers={"authorization": f"Bearer {other['dash']}"})
        assert tags.status_code == 200 and tags.json()["tags"] == []
        user, key = user + "x", key + "x"


_OTHER: dict[str, tuple[str, dict[str, str]]] = {}


def _second_project_keys(server: ServerHandle) -> tuple[str, dict[str, str]]:
    if server.database_url not in _OTHER:
        _OTHER[server.database_url] = run_async(_second_project(server))
    return _OTHER[server.database_url]


def test_live_and_test_modes_never_mix(srv: ServerHandle, clients: list[Any]) -> None:
    user, key = f"modes-{uuid.uuid4().hex[:8]}", f"mode-key-{uuid.uuid4().hex}"
    c = clients[2]  # Connect binary
    live = c.unary(
        REGISTER,
        ev.RegisterEventRequest(type=ev.BASIC_USAGE, userId=user, idempotencyKey=key, basicUsage=amount(10)),
        bearer(srv.live_key),
    )
    # same idempotency key in test mode: a separate event, not a duplicate and not a conflict
    test = c.unary(
        REGISTER,
        ev.RegisterEventRequest(type=ev.BASIC_USAGE, userId=user, idempotencyKey=key, basicUsage=amount(20)),
        bearer(srv.test_key),
    )
    assert not live.duplicate and not test.duplicate and live.eventId != test.eventId
    s = c.stream(
        STREAM,
        [ev.StreamEventRequest(type=ev.BASIC_USAGE, userId=user, basicUsage=amount(30))],
        bearer(srv.test_key),
    )
    assert s.eventsFailed == 0

    def seen(key_: str, extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
        return sorted((r.mode, r.debit_amount_exact) for r in _query(c, key_, user, extra).rows)

    assert seen(srv.live_key) == [("live", "10")]
    assert seen(srv.test_key) == [("test", "20"), ("test", "30")]
    assert seen(srv.dash_key) == [("live", "10")]  # dash keys default to live
    assert seen(srv.dash_key, [("x-scrawn-mode", "live")]) == [("live", "10")]
    assert seen(srv.dash_key, [("x-scrawn-mode", "test")]) == [("test", "20"), ("test", "30")]
    # a live/test key cannot switch modes with the header
    assert seen(srv.live_key, [("x-scrawn-mode", "test")]) == [("live", "10")]
    assert seen(srv.test_key, [("x-scrawn-mode", "live")]) == [("test", "20"), ("test", "30")]
    # aggregates are scoped the same way
    agg = query.QueryEventsRequest(aggregation=query.Aggregation(type=query.SUM, field="debitAmount"))
    agg.where.conditions.append(query.FilterCondition(field="userId", operator=query.EQ, value=user))
    assert [r.agg_value for r in c.unary(QUERY, agg, bearer(srv.live_key)).agg_rows] == ["10"]
    assert [r.agg_value for r in c.unary(QUERY, agg, bearer(srv.test_key)).agg_rows] == ["50"]
    with pytest.raises(RpcError) as err:
        _query(c, srv.dash_key, user, [("x-scrawn-mode", "prod")])
    assert err.value.code == "invalid_argument" and "x-scrawn-mode" in err.value.message


def test_zz_server_survived_everything(srv: ServerHandle) -> None:
    """Runs last in this module for each database: the server is healthy and logged no traceback."""
    assert httpx.get(srv.base_url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(srv.base_url + "/readyz").status_code == 200
    assert srv.process is not None and srv.process.poll() is None
    log = srv.log()
    assert "Traceback" not in log, log[-4000:]
    assert "internal error" not in log.lower(), log[-4000:]
