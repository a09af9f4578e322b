"""Hostile inputs to every public function of ``scrawn.middleware`` and ``scrawn.ai`` raise a
``ValidationError`` naming the field, before any network call (a tripwire server counts requests)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from scrawn import AsyncScrawn, Scrawn, quantity, tag
from scrawn.ai import (
    AiUsage,
    ai_token_stream_consumer,
    anthropic_usage,
    bill_as,
    flush_ai,
    openai_usage,
    track_ai,
    wrap_anthropic,
    wrap_openai,
)
from scrawn.errors import ValidationError
from scrawn.middleware import (
    ScrawnASGIMiddleware,
    ScrawnWSGIMiddleware,
    match_path,
    middleware_event_consumer,
)
from tests.sdk_integrations.helpers import Tripwire

KEY = "scrn_live_" + "t" * 32


@pytest.fixture(scope="module")
def tripwire() -> Iterator[Tripwire]:
    wire = Tripwire()
    yield wire
    assert wire.count == 0, "a hostile input reached the network"
    wire.close()


@pytest.fixture(scope="module")
def client(tripwire: Tripwire) -> Iterator[Scrawn]:
    c = Scrawn(KEY, tripwire.url, max_retries=0)
    yield c
    c.close(timeout=0.1)


def good_ai(**over: Any) -> dict[str, Any]:
    return {"user_id": "u", "model": "m", "input_tokens": 1, "output_tokens": 1, **over}


TRACK_AI_CASES: list[tuple[dict[str, Any], str]] = [
    (good_ai(user_id=""), "user_id"),
    (good_ai(user_id="   "), "user_id"),
    (good_ai(user_id=None), "user_id"),
    (good_ai(user_id=7), "user_id"),
    (good_ai(user_id="x" * 257), "user_id"),
    (good_ai(user_id="a\x00b"), "user_id"),
    (good_ai(model=""), "model"),
    (good_ai(model=3.5), "model"),
    (good_ai(model="m" * 256), "model"),
    (good_ai(model=None), "model"),
    (good_ai(provider=""), "provider"),
    (good_ai(provider=["openai"]), "provider"),
    (good_ai(input_tokens=-1), "input_tokens"),
    (good_ai(input_tokens=None), "input_tokens"),
    (good_ai(output_tokens=None), "output_tokens"),
    (good_ai(output_tokens=1.5), "output_tokens"),
    (good_ai(output_tokens="12"), "output_tokens"),
    (good_ai(output_tokens=True), "output_tokens"),
    (good_ai(input_cache_tokens=2**31), "input_cache_tokens"),
    (good_ai(output_cache_tokens=-5), "output_cache_tokens"),
    (good_ai(input_debit=-1), "input_debit"),
    (good_ai(input_debit=float("inf")), "input_debit"),
    (good_ai(output_debit=float("nan")), "output_debit"),
    (good_ai(output_debit="1e400000"), "output_debit"),
    (good_ai(input_cache_debit="cheap"), "input_cache_debit"),
    (good_ai(output_cache_debit=quantity()), "output_cache_debit"),  # quantity() is for typed events
    (good_ai(input_debit={"amount": 1, "tag": "X"}), "input_debit"),
    (good_ai(input_debit={"tag": "lower"}), "input_debit"),
    (good_ai(input_debit={"expr": "mul(1,2)"}), "input_debit"),
    (good_ai(input_debit=True), "input_debit"),
    (good_ai(input_debit=Decimal("1e30")), "input_debit"),
    (good_ai(metadata=[1, 2]), "metadata"),
    (good_ai(metadata="not json"), "metadata"),
    (good_ai(metadata={"x": float("nan")}), "metadata"),
    (good_ai(metadata={"x": "y" * 20000}), "metadata"),
    (good_ai(idempotency_key=""), "idempotency_key"),
    (good_ai(idempotency_key="k" * 256), "idempotency_key"),
    (good_ai(idempotency_key=5), "idempotency_key"),
    ({**good_ai(), "usage": AiUsage(1, 1)}, "input_tokens"),  # usage= and token counts together
    ({"user_id": "u", "model": "m", "usage": {"input_tokens": 1}}, "usage"),
    ({"user_id": "u", "usage": AiUsage(1, 1)}, "model"),  # no model anywhere
    ({"user_id": "u", "model": "m", "usage": AiUsage(-1, 1)}, "input_tokens"),
]


@pytest.mark.parametrize(("kwargs", "field"), TRACK_AI_CASES)
def test_track_ai(client: Scrawn, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        track_ai(client, **kwargs)
    assert info.value.field == field
    assert field in str(info.value)


def test_track_ai_and_flush_ai_need_a_client() -> None:
    for bad in (None, "scrn_live_x", object()):
        with pytest.raises(ValidationError) as info:
            track_ai(bad, **good_ai())  # type: ignore[arg-type]
        assert info.value.field == "client"
        with pytest.raises(ValidationError) as info:
            flush_ai(bad)  # type: ignore[call-overload]
        assert info.value.field == "client"


def test_flush_ai_timeout(client: Scrawn) -> None:
    for bad in (-1, 0, float("nan"), "1", True):
        with pytest.raises(ValidationError) as info:
            flush_ai(client, bad)  # type: ignore[arg-type]
        assert info.value.field == "timeout"


STREAM_CASES: list[tuple[dict[str, Any], str]] = [
    ({"chunks": None}, "chunks"),
    ({"chunks": 5}, "chunks"),
    ({"chunks": "input_tokens"}, "chunks"),
    ({"chunks": b"abc"}, "chunks"),
    ({"chunks": {"input_tokens": 1}}, "chunks"),  # a single chunk, not an iterable of chunks
    ({"user_id": ""}, "user_id"),
    ({"model": ""}, "model"),
    ({"provider": 1}, "provider"),
    ({"input_debit": -2}, "input_debit"),
    ({"output_cache_debit": quantity()}, "output_cache_debit"),
    ({"metadata": 12}, "metadata"),
    ({"fork": "yes"}, "fork"),
    ({"fork": 1}, "fork"),
    ({"extract": "openai"}, "extract"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 10_001}, "batch_size"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"buffer_size": -1}, "buffer_size"),
    ({"buffer_size": None}, "buffer_size"),
    ({"flush_interval": 0}, "flush_interval"),
    ({"flush_interval": float("inf")}, "flush_interval"),
    ({"on_error": "print"}, "on_error"),
]


@pytest.mark.parametrize("fork", [False, True])
@pytest.mark.parametrize(("kwargs", "field"), STREAM_CASES)
def test_ai_token_stream_consumer_arguments(
    client: Scrawn, kwargs: dict[str, Any], field: str, fork: bool
) -> None:
    pulled: list[int] = []

    def chunks() -> Iterator[dict[str, int]]:
        pulled.append(1)
        yield {"input_tokens": 1, "output_tokens": 1}

    args = {"chunks": chunks(), "user_id": "u", "model": "m", "fork": fork, **kwargs}
    with pytest.raises(ValidationError) as info:
        ai_token_stream_consumer(client, **args)
    assert info.value.field == field
    assert pulled == []  # nothing was read from the source


def test_ai_token_stream_consumer_async_flavour_validates_at_call_time(tripwire: Tripwire) -> None:
    async def run() -> None:
        async with AsyncScrawn(KEY, tripwire.url, max_retries=0) as c:
            with pytest.raises(ValidationError) as info:
                ai_token_stream_consumer(c, [], user_id="", model="m")  # raises at once, not when awaited
            assert info.value.field == "user_id"
            with pytest.raises(ValidationError) as info:
                ai_token_stream_consumer(c, [], user_id="u", model="m", fork=True, buffer_size=0)
            assert info.value.field == "buffer_size"

    asyncio.run(run())


CHUNK_CASES: list[tuple[Any, str]] = [
    ({"input_tokens": -1, "output_tokens": 1}, "chunks[0].input_tokens"),
    ({"input_tokens": 1, "output_tokens": "1"}, "chunks[0].output_tokens"),
    ({"input_tokens": 1, "output_tokens": 1, "inputTokens": 2, "bogus": 1}, "chunks[0]"),
    ({"input_tokens": 1, "output_tokens": 1, "user_id": ""}, "chunks[0].user_id"),
    (
        {"input_tokens": 1, "output_tokens": 1, "input_debit": tag("X"), "output_debit": "no"},
        "chunks[0].output_debit",
    ),
    ({"input_tokens": 1, "output_tokens": 1, "metadata": "[]"}, "chunks[0].metadata"),
    ({"input_tokens": 1, "output_tokens": 1, "idempotency_key": ""}, "chunks[0].idempotency_key"),
    ([1, 2], "chunks[0]"),
    (None, "chunks[0]"),
]


@pytest.mark.parametrize(("chunk", "field"), CHUNK_CASES)
def test_ai_token_stream_consumer_chunks(client: Scrawn, chunk: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        ai_token_stream_consumer(client, [chunk], user_id="u", model="m")
    assert info.value.field == field


def test_chunk_without_user_or_model(client: Scrawn) -> None:
    with pytest.raises(ValidationError) as info:
        ai_token_stream_consumer(client, [{"input_tokens": 1, "output_tokens": 1}], model="m")
    assert info.value.field == "chunks[0].user_id"
    with pytest.raises(ValidationError) as info:
        ai_token_stream_consumer(client, [{"input_tokens": 1, "output_tokens": 1}], user_id="u")
    assert info.value.field == "chunks[0].model"


WRAP_CASES: list[tuple[dict[str, Any], str]] = [
    ({"user_id": ""}, "user_id"),
    ({"user_id": 1}, "user_id"),
    ({"input_debit": -1}, "input_debit"),
    ({"output_debit": "abc"}, "output_debit"),
    ({"input_cache_debit": float("nan")}, "input_cache_debit"),
    ({"output_cache_debit": quantity()}, "output_cache_debit"),
    ({"metadata": [1]}, "metadata"),
    ({"provider": ""}, "provider"),
]


@pytest.mark.parametrize("wrapper", [wrap_openai, wrap_anthropic])
@pytest.mark.parametrize(("kwargs", "field"), WRAP_CASES)
def test_wrappers(client: Scrawn, wrapper: Callable[..., Any], kwargs: dict[str, Any], field: str) -> None:
    class Provider:
        pass

    with pytest.raises(ValidationError) as info:
        wrapper(Provider(), client, **kwargs)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"user_id": ""}, "user_id"), ({"input_debit": -1}, "input_debit")]
)
def test_bill_as(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info, bill_as(**kwargs):
        pass
    assert info.value.field == field


def test_usage_readers() -> None:
    with pytest.raises(ValidationError) as info:
        openai_usage({"usage": {"prompt_tokens": 1, "completion_tokens": "many"}})
    assert info.value.field == "usage.completion_tokens"
    with pytest.raises(ValidationError) as info:
        openai_usage(
            {
                "usage": {
                    "prompt_tokens": 10,
                    "completion_tokens": 1,
                    "prompt_tokens_details": {"cached_tokens": -3},
                }
            }
        )
    assert info.value.field == "usage.prompt_tokens_details.cached_tokens"
    with pytest.raises(ValidationError) as info:
        anthropic_usage({"usage": {"input_tokens": 1.5, "output_tokens": 1}})
    assert info.value.field == "usage.input_tokens"
    assert anthropic_usage(None) is None and openai_usage(None) is None


def test_middleware(client: Scrawn) -> None:
    def extractor(request: Any) -> None:
        return None

    for factory in (
        lambda **kw: ScrawnASGIMiddleware(lambda s, r, se: None, **kw),  # type: ignore[arg-type, return-value]
        lambda **kw: ScrawnWSGIMiddleware(lambda e, s: [], **kw),  # type: ignore[arg-type, return-value]
        lambda **kw: middleware_event_consumer(**kw),
    ):
        for kwargs, field in [
            ({"client": None, "extractor": extractor}, "client"),
            ({"client": client, "extractor": 1}, "extractor"),
            ({"client": client, "extractor": extractor, "whitelist": 5}, "whitelist"),
            ({"client": client, "extractor": extractor, "whitelist": "/api/*"}, "whitelist"),
            ({"client": client, "extractor": extractor, "blacklist": ["ok", ""]}, "blacklist[1]"),
            ({"client": client, "extractor": extractor, "blacklist": ["x" * 2000]}, "blacklist[0]"),
            ({"client": client, "extractor": extractor, "bill_failed": 0}, "bill_failed"),
            ({"client": client, "extractor": extractor, "on_error": "log"}, "on_error"),
            ({"client": client, "extractor": extractor, "raw_request": "yes"}, "raw_request"),
        ]:
            with pytest.raises(ValidationError) as info:
                factory(**kwargs)
            assert info.value.field == field
    with pytest.raises(ValidationError) as info:
        match_path(3, "/a/*")  # type: ignore[arg-type]
    assert info.value.field == "path"
