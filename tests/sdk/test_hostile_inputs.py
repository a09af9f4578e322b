"""Hostile inputs to every public function get a ValidationError naming the field *before* any network
call: the clients point at a closed port, so a call that got as far as the network would fail with a
connection error instead."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from scrawn import (
    AsyncScrawn,
    Scrawn,
    add,
    amount,
    div,
    expr,
    input_tokens,
    mul,
    output_tokens,
    quantity,
    scrawn,
    sub,
    tag,
)
from scrawn.errors import ValidationError
from tests.sdk.conftest import LIVE_SHAPED_KEY

NAN, INF = float("nan"), float("inf")


class Weird:
    def __str__(self) -> str:
        raise RuntimeError("str() of a hostile object")


BAD_USER_IDS = [None, 123, b"bytes", "", "   ", "x" * 257, "a\x00b", Weird()]
BAD_DEBITS = [
    None,
    True,
    -1,
    -0.5,
    NAN,
    INF,
    -INF,
    Decimal("NaN"),
    Decimal("sNaN"),
    Decimal("-Infinity"),
    Decimal("-1"),
    "abc",
    "-5",
    "NaN",
    "1e99999",
    "",
    "0x10",
    [],
    {},
    Weird(),
    2**80,
    "9" * 3000,
    input_tokens(),
    mul(tag("A"), output_tokens()),
    quantity(),
    add(1, quantity()),
]
BAD_METADATA = [
    [],
    5,
    "not json",
    "[1, 2]",
    '{"a": NaN}',
    "a\x00",
    {"x": NAN},
    {"x": Weird()},
    {"x": "y" * 17_000},
    {("tuple",): 1},
]
BAD_KEYS = ["", " ", "x" * 256, 5, "a\x00", b"k"]
BAD_EVENT_IDS = ["not-a-uuid", 5, "", "123e4567-e89b-12d3-a456-42661417400"]


def _cases() -> list[tuple[str, dict[str, Any]]]:
    ok = {"user_id": "u", "debit": 1}
    cases: list[tuple[str, dict[str, Any]]] = []
    cases += [("user_id", {**ok, "user_id": v}) for v in BAD_USER_IDS]
    cases += [("debit", {**ok, "debit": v}) for v in BAD_DEBITS]
    cases += [("metadata", {**ok, "metadata": v}) for v in BAD_METADATA]
    cases += [("idempotency_key", {**ok, "idempotency_key": v}) for v in BAD_KEYS]
    return cases


CASES = _cases()
EVENT_ID_CASES = [("event_id", {"user_id": "u", "debit": 1, "event_id": v}) for v in BAD_EVENT_IDS]
TYPED_OK = {"type": "doc.processed", "customer_ref": "c"}
TYPED_CASES: list[tuple[str, dict[str, Any]]] = (
    [("type", {**TYPED_OK, "type": v}) for v in ["", "bad type", "x" * 129, 5, None, "-lead", "é"]]
    + [("customer_ref", {**TYPED_OK, "customer_ref": v}) for v in BAD_USER_IDS]
    + [("units", {**TYPED_OK, "units": v}) for v in [-1, NAN, INF, "abc", True, None, [], 2**80]]
    + [("product_ref", {**TYPED_OK, "product_ref": v}) for v in ["", 5, "x" * 256, "a\x00"]]
    + [("metadata", {**TYPED_OK, "metadata": v}) for v in BAD_METADATA]
    + [("idempotency_key", {**TYPED_OK, "idempotency_key": v}) for v in BAD_KEYS]
    + [("event_id", {**TYPED_OK, "event_id": v}) for v in BAD_EVENT_IDS]
)


def _ids(cases: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [f"{field}-{i}" for i, (field, _) in enumerate(cases)]


@pytest.fixture
def client(closed_url: str) -> Any:
    with Scrawn(LIVE_SHAPED_KEY, closed_url, max_retries=0, timeout=1) as c:
        yield c


@pytest.mark.parametrize(("field", "kwargs"), CASES + EVENT_ID_CASES, ids=_ids(CASES + EVENT_ID_CASES))
def test_basic_usage_event_consumer(client: Scrawn, field: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as e:
        client.basic_usage_event_consumer(**kwargs)
    assert e.value.field == field and e.value.code == "invalid_argument"
    assert f"{field}: " in str(e.value)


@pytest.mark.parametrize(("field", "kwargs"), CASES, ids=_ids(CASES))
def test_track(client: Scrawn, field: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as e:
        client.track(**kwargs)
    assert e.value.field == field
    assert client.pending_count == 0 and client._tracker is None  # nothing queued, no worker started


@pytest.mark.parametrize(("field", "kwargs"), TYPED_CASES, ids=_ids(TYPED_CASES))
def test_create_event(client: Scrawn, field: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as e:
        client.create_event(**kwargs)
    assert e.value.field == field


async def test_async_client(closed_url: str) -> None:
    async with AsyncScrawn(LIVE_SHAPED_KEY, closed_url, max_retries=0) as client:
        for field, kwargs in CASES + EVENT_ID_CASES:
            with pytest.raises(ValidationError) as e:
                await client.basic_usage_event_consumer(**kwargs)
            assert e.value.field == field
        for field, kwargs in CASES:
            with pytest.raises(ValidationError) as e:
                client.track(**kwargs)
            assert e.value.field == field
        for field, kwargs in TYPED_CASES:
            with pytest.raises(ValidationError) as e:
                await client.create_event(**kwargs)
            assert e.value.field == field
        assert client.pending_count == 0
        await asyncio.sleep(0)


def test_positional_arguments_are_refused(client: Scrawn) -> None:
    with pytest.raises(TypeError):
        client.basic_usage_event_consumer("u", 1)  # type: ignore[misc]


BUILDERS: list[tuple[str, Callable[[], Any]]] = [
    ("tag", lambda: tag("lower")),
    ("tag", lambda: tag("")),
    ("tag", lambda: tag("A" * 129)),
    ("tag", lambda: tag(5)),  # type: ignore[arg-type]
    ("tag", lambda: tag("A-B")),
    ("tag", lambda: tag("A B")),
    ("tag", lambda: tag("É")),
    ("expr", lambda: expr("bad name")),
    ("expr", lambda: expr(None)),  # type: ignore[arg-type]
    ("expr", lambda: expr(-1)),
    ("add", lambda: add(1)),
    ("add", lambda: add()),
    ("mul", lambda: mul(tag("A"))),
    ("sub", lambda: sub()),
    ("div", lambda: div(5)),
    ("div[1]", lambda: div(1, 0)),
    ("div[2]", lambda: div(1, 2, "0.000")),
    ("div[1]", lambda: div(tag("A"), Decimal("0"))),
    ("div[1]", lambda: div(tag("A"), amount(0.0))),
    ("amount", lambda: amount(-1)),
    ("amount", lambda: amount(NAN)),
    ("amount", lambda: amount(INF)),
    ("amount", lambda: amount(True)),  # type: ignore[arg-type]
    ("amount", lambda: amount("x")),
    ("amount", lambda: amount(Decimal("sNaN"))),
    ("amount", lambda: amount(None)),  # type: ignore[arg-type]
    ("add[1]", lambda: add(1, None)),  # type: ignore[arg-type]
    ("mul[0]", lambda: mul(-2, tag("A"))),
    ("add[1]", lambda: add(1, "PREMIUM")),
    ("mul[2]", lambda: mul(1, 2, NAN)),
]


@pytest.mark.parametrize(("field", "build"), BUILDERS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BUILDERS)])
def test_builders(field: str, build: Callable[[], Any]) -> None:
    with pytest.raises(ValidationError) as e:
        build()
    assert e.value.field == field


def test_builders_refuse_too_deep_and_too_long() -> None:
    node: Any = tag("A")
    for _ in range(31):
        node = add(node, 1)
    assert node.depth == 32
    with pytest.raises(ValidationError) as deep:
        add(node, 1)
    assert deep.value.field == "add" and "32" in deep.value.message
    with pytest.raises(ValidationError) as long:
        add(*[tag("T" * 100)] * 20)
    assert long.value.field == "add" and "2048" in long.value.message


OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("api_key", {"api_key": "abc"}),
    ("api_key", {"api_key": "scrn_live_short"}),
    ("api_key", {"api_key": "scrn_prod_" + "a" * 32}),
    ("api_key", {"api_key": "scrn_live_" + "a" * 31 + "!"}),
    ("api_key", {"api_key": "scrn_live_" + "a" * 33}),
    ("api_key", {"api_key": 5}),
    ("api_key", {"api_key": ""}),
    ("base_url", {"base_url": "ftp://example.com"}),
    ("base_url", {"base_url": "not a url"}),
    ("base_url", {"base_url": "   "}),
    ("base_url", {"base_url": "http://user:pw@host"}),
    ("base_url", {"base_url": "http://host/?q=1"}),
    ("base_url", {"base_url": 5}),
    ("timeout", {"timeout": 0}),
    ("timeout", {"timeout": -1}),
    ("timeout", {"timeout": NAN}),
    ("timeout", {"timeout": "5"}),
    ("max_retries", {"max_retries": -1}),
    ("max_retries", {"max_retries": 1.5}),
    ("max_retries", {"max_retries": True}),
    ("max_retries", {"max_retries": 101}),
    ("on_error", {"on_error": 5}),
    ("spool_path", {"spool_path": 5}),
    ("spool_path", {"spool_path": ""}),
    ("buffer_size", {"buffer_size": 0}),
    ("batch_size", {"batch_size": 0}),
    ("batch_size", {"batch_size": 20_000}),
    ("flush_interval", {"flush_interval": 0}),
]


@pytest.mark.parametrize(("field", "options"), OPTIONS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(OPTIONS)])
@pytest.mark.parametrize("factory", [Scrawn, AsyncScrawn, scrawn])
def test_client_options(
    factory: Any, field: str, options: dict[str, Any], closed_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SCRAWN_API_KEY", raising=False)
    kwargs = {"api_key": LIVE_SHAPED_KEY, "base_url": closed_url, **options}
    with pytest.raises(ValidationError) as e:
        factory(**kwargs)
    assert e.value.field == field
    key = options.get("api_key")
    if isinstance(key, str) and key:
        assert key not in str(e.value) and key not in repr(e.value)


@pytest.mark.parametrize("timeout", [-1, float("nan"), "5", True, [1]])
def test_flush_and_close_timeouts(client: Scrawn, timeout: Any) -> None:
    with pytest.raises(ValidationError) as e:
        client.flush(timeout)
    assert e.value.field == "timeout"
    with pytest.raises(ValidationError):
        client.close(timeout)


async def test_async_flush_and_close_timeouts(closed_url: str) -> None:
    async with AsyncScrawn(LIVE_SHAPED_KEY, closed_url) as client:
        with pytest.raises(ValidationError):
            await client.flush(-1)
        with pytest.raises(ValidationError):
            await client.close("soon")


def test_per_call_on_error_must_be_callable(client: Scrawn) -> None:
    for call in (
        lambda: client.basic_usage_event_consumer(user_id="u", debit=1, on_error=5),  # type: ignore[arg-type]
        lambda: client.create_event(type="t", customer_ref="c", on_error="x"),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValidationError) as e:
            call()
        assert e.value.field == "on_error"
