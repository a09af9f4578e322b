"""``wrap_anthropic``: the official ``anthropic`` client pointed at a fake provider (JSON and SSE),
billing into a real ``scrawn serve``. Cache reads and cache writes are billed as their own parts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import pytest

from scrawn import AsyncScrawn, Scrawn, input_cache_tokens, mul
from scrawn.ai import anthropic_usage, bill_as, flush_ai, track_ai, wrap_anthropic
from scrawn.errors import ValidationError
from tests.conftest import ServerHandle
from tests.sdk_integrations.helpers import FakeProvider, new_user, stored

MESSAGES = [{"role": "user", "content": "Hi"}]
MODEL = "claude-3-5-haiku-20241022"


def tokens(row: Any) -> tuple[int, int, int, int]:
    return (row.input_tokens, row.output_tokens, row.input_cache_tokens, row.output_cache_tokens)


@pytest.fixture
def scrawn_client(module_server: ServerHandle) -> Iterator[Scrawn]:
    c = Scrawn(module_server.live_key, module_server.base_url, flush_interval=0.05)
    yield c
    c.close()


def client_for(fake: FakeProvider) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="sk-ant-test", base_url=fake.base_url, max_retries=0)


def async_client_for(fake: FakeProvider) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=fake.base_url, max_retries=0)


def test_message_bills_exact_tokens_with_cache_debits(
    module_server: ServerHandle, scrawn_client: Scrawn, fake: FakeProvider
) -> None:
    user = new_user("ant")
    client = wrap_anthropic(
        client_for(fake),
        scrawn_client,
        user_id=user,
        input_debit=10,
        output_debit=20,
        input_cache_debit=mul(input_cache_tokens(), "0.01"),
        output_cache_debit=3,
    )
    message = client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert message.content[0].text == "Hello there"  # type: ignore[union-attr]
    assert flush_ai(scrawn_client, 10)
    [row] = stored(module_server, user)
    # input_tokens are already uncached; cache reads → input cache, cache writes → output cache.
    assert tokens(row) == (700, 180, 400, 50)
    assert (row.model, row.provider) == (MODEL, "anthropic")
    assert (row.input_debit, row.output_debit, row.input_cache_debit, row.output_cache_debit) == (
        Decimal(10),
        Decimal(20),
        Decimal(4),
        Decimal(3),
    )
    assert row.debit == Decimal(37)


def test_message_priced_by_the_price_book(
    module_server: ServerHandle, scrawn_client: Scrawn, fake: FakeProvider
) -> None:
    user = new_user("ant-book")
    client = wrap_anthropic(client_for(fake), scrawn_client, user_id=user)
    client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert flush_ai(scrawn_client, 10)
    [row] = stored(module_server, user)
    assert tokens(row) == (700, 180, 400, 50)
    assert (
        row.input_debit > 0
        and row.output_debit > 0
        and row.input_cache_debit > 0
        and row.output_cache_debit > 0
    )
    assert row.debit == row.input_debit + row.output_debit + row.input_cache_debit + row.output_cache_debit


def test_streamed_message_uses_the_cumulative_usage(
    module_server: ServerHandle, scrawn_client: Scrawn, fake: FakeProvider
) -> None:
    user = new_user("ant-stream")
    client = wrap_anthropic(client_for(fake), scrawn_client, user_id=user, input_debit=1, output_debit=1)
    events = list(client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True))
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    assert flush_ai(scrawn_client, 10)
    [row] = stored(module_server, user)
    assert tokens(row) == (700, 180, 400, 50)  # output from the last message_delta, not summed


def test_stream_helper_bills_on_exit(
    module_server: ServerHandle, scrawn_client: Scrawn, fake: FakeProvider
) -> None:
    user = new_user("ant-helper")
    client = wrap_anthropic(client_for(fake), scrawn_client, input_debit=1, output_debit=1)
    with bill_as(user), client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello there" and final.usage.output_tokens == 180
    assert flush_ai(scrawn_client, 10)
    [row] = stored(module_server, user)
    assert tokens(row) == (700, 180, 400, 50)


def test_async_client(module_server: ServerHandle, fake: FakeProvider) -> None:
    user = new_user("ant-async")

    async def run() -> None:
        async with AsyncScrawn(module_server.live_key, module_server.base_url, flush_interval=0.05) as s:
            client = wrap_anthropic(async_client_for(fake), s, input_debit=2, output_debit=3)
            message = await client.messages.create(
                model=MODEL, max_tokens=10, messages=MESSAGES, scrawn_user_id=user
            )
            assert message.usage.input_tokens == 700
            stream = await client.messages.create(
                model=MODEL, max_tokens=10, messages=MESSAGES, stream=True, scrawn_user_id=user
            )
            types = [event.type async for event in stream]
            assert types[-1] == "message_stop"
            async with client.messages.stream(
                model=MODEL, max_tokens=10, messages=MESSAGES, scrawn_user_id=user
            ) as helper:
                await helper.get_final_message()
            # no user: not billed
            await client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
            assert await flush_ai(s, 10)

    asyncio.run(run())
    rows = stored(module_server, user)
    assert [tokens(r) for r in rows] == [(700, 180, 400, 50)] * 3
    assert {r.debit for r in rows} == {Decimal(5)}


def test_hostile_inputs_fail_before_the_provider_call(scrawn_client: Scrawn, fake: FakeProvider) -> None:
    with pytest.raises(ValidationError) as info:
        wrap_anthropic(client_for(fake), scrawn_client, user_id="")
    assert info.value.field == "user_id"
    with pytest.raises(ValidationError) as info:
        wrap_anthropic(client_for(fake), scrawn_client, input_debit=-3)
    assert info.value.field == "input_debit"
    with pytest.raises(ValidationError) as info:
        wrap_anthropic(client_for(fake), "not a client")  # type: ignore[arg-type]
    assert info.value.field == "client"
    with pytest.raises(ValidationError) as info:
        wrap_anthropic("anthropic", scrawn_client)
    assert info.value.field == "anthropic_client"
    wrapped = wrap_anthropic(client_for(fake), scrawn_client)
    with pytest.raises(ValidationError) as info:
        wrap_anthropic(wrapped, scrawn_client)
    assert info.value.field == "anthropic_client"
    with pytest.raises(ValidationError) as info:
        wrapped.messages.create(model=MODEL, max_tokens=1, messages=MESSAGES, scrawn_user_id=" ")
    assert info.value.field == "scrawn_user_id"
    with pytest.raises(ValidationError) as info:
        wrapped.messages.stream(model=MODEL, max_tokens=1, messages=MESSAGES, scrawn_output_debit=[1])
    assert info.value.field == "scrawn_output_debit"
    assert fake.requests == []


def test_anthropic_usage_and_track_ai(module_server: ServerHandle, scrawn_client: Scrawn) -> None:
    user = new_user("ant-manual")
    usage = anthropic_usage(
        {"model": MODEL, "usage": {"input_tokens": 5, "output_tokens": 6, "cache_read_input_tokens": 7}}
    )
    assert usage is not None and usage.model == MODEL
    track_ai(scrawn_client, user_id=user, usage=usage, provider="anthropic", input_debit=1, output_debit=1)
    assert flush_ai(scrawn_client, 10)
    [row] = stored(module_server, user)
    assert tokens(row) == (5, 6, 7, 0)
