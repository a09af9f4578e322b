"""``wrap_openai``: the official ``openai`` client pointed at a fake provider (JSON and SSE), billing into
a real ``scrawn serve``. The stored events carry exactly the tokens the provider reported."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import openai
import pytest

from scrawn import AsyncScrawn, Scrawn, input_tokens, mul
from scrawn.ai import bill_as, close_ai, flush_ai, openai_usage, wrap_openai
from scrawn.errors import ValidationError
from tests.conftest import ServerHandle
from tests.sdk_integrations.helpers import FakeProvider, blackhole, new_user, stored

MESSAGES = [{"role": "user", "content": "Hi"}]


def tokens(row: Any) -> tuple[int, int, int, int]:
    return (row.input_tokens, row.output_tokens, row.input_cache_tokens, row.output_cache_tokens)


@pytest.fixture
def scrawn_client(module_server: ServerHandle) -> Iterator[Scrawn]:
    c = Scrawn(module_server.live_key, module_server.base_url, flush_interval=0.05)
    yield c
    c.close()


def openai_client(fake: FakeProvider) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", base_url=f"{fake.base_url}/v1", max_retries=0)


def async_openai_client(fake: FakeProvider) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="sk-test", base_url=f"{fake.base_url}/v1", max_retries=0)


def test_chat_completion_bills_exact_tokens_and_debits(
    module_server: ServerHandle, scrawn_client: Scrawn, fake: FakeProvider
) -> None:
    user = new_user("oai")
    client = wrap_openai(
        openai_client(fake), scrawn_client, user_id=user, input_debit=7, output_debit=11, input_cache_debit=2
    )
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == "Hello there"
    assert "stream_options" not in fake.last()["body"]
    assert flush_ai(scrawn_client, 10)
    [row] = stored(module_server, user)
    # prompt_tokens 1000 includes the 300 cached ones: 700 uncached input tokens.
    assert tokens(row) == (700, 250, 300, 0)
    assert (row.model, row.provider, row.event_type) == ("gpt-4o-mini", "openai", "AI_TOKEN_USAGE")
    assert (row.input_debit, row.output_debit, row.input_cache_debit, row.output_cache_debit) == (
        Decimal(7),
        Decimal(11),
        Decimal(2),
        Decimal(0),
    )
    assert row.debit == Decimal(20)
    assert json.loads(row.metadata)["response_id"] == completion.id


def test_cache_writes_and_price_book(
    module_server: ServerHandle, scrawn_client: Scrawn, fake: FakeProvider
) -> None:
    fake.openai_usage = {
        "prompt_tokens": 5000,
        "completion_tokens": 800,
        "total_tokens": 5800,
        "prompt_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 1500},
    }
    user = new_user("oai-book")
    client = wrap_openai(openai_client(fake), scrawn_client, user_id=user)  # no debits: the price book
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert flush_ai(scrawn_client, 10)
    [row] = stored(module_server, user)
    assert tokens(row) == (2500, 800, 1000, 1500)
    assert row.debit > 0 and row.input_debit > 0 and row.output_debit > 0
    assert "priceBook" in row.pricing


def test_streamed_chat_completion(
    module_server: ServerHandle, scrawn_client: Scrawn, fake: FakeProvider
) -> None:
    user = new_user("oai-stream")
    client = wrap_openai(openai_client(fake), scrawn_client, user_id=user, input_debit=1, output_debit=1)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    chunks = list(stream)
    # We asked OpenAI for the usage chunk; the caller did not, so it is not passed on.
    assert fake.last()["body"]["stream_options"] == {"include_usage": True}
    assert all(chunk.choices for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello there!"
    assert flush_ai(scrawn_client, 10)
    [row] = stored(module_server, user)
    assert tokens(row) == (700, 250, 300, 0)

    # The caller asked for usage themselves: the chunk is theirs.
    with client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ) as stream:
        chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    assert flush_ai(scrawn_client, 10)
    assert len(stored(module_server, user)) == 2


def test_stream_closed_before_usage_is_not_billed(
    module_server: ServerHandle, scrawn_client: Scrawn, fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    user = new_user("oai-early")
    client = wrap_openai(openai_client(fake), scrawn_client, user_id=user, input_debit=1, output_debit=1)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    next(iter(stream))
    stream.close()
    assert flush_ai(scrawn_client, 10)
    assert stored(module_server, user) == []
    assert any("no token usage" in r.getMessage() for r in caplog.records)


def test_per_call_overrides_bill_as_and_passthrough(
    module_server: ServerHandle, scrawn_client: Scrawn, fake: FakeProvider
) -> None:
    default_user, call_user, block_user = new_user("oai-d"), new_user("oai-c"), new_user("oai-b")
    client = wrap_openai(openai_client(fake), scrawn_client, input_debit=5, output_debit=5)

    # No user anywhere: passes through unbilled and untouched.
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=False)
    list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert "stream_options" not in fake.last()["body"]

    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        scrawn_user_id=call_user,
        scrawn_input_debit=mul(input_tokens(), "0.01"),
        scrawn_metadata={"feature": "chat"},
    )
    assert not any(k.startswith("scrawn") for k in fake.last()["body"])
    with bill_as(block_user, output_debit=9):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, scrawn_user_id=default_user)
    assert flush_ai(scrawn_client, 10)
    [call] = stored(module_server, call_user)
    assert (call.input_debit, call.output_debit) == (Decimal(7), Decimal(5))  # 700 × 0.01
    assert json.loads(call.metadata)["feature"] == "chat"
    [block] = stored(module_server, block_user)
    assert (block.input_debit, block.output_debit) == (Decimal(5), Decimal(9))
    [per_call] = stored(module_server, default_user)
    assert per_call.output_debit == Decimal(9)  # the block's debit, the call's user


def test_responses_api_plain_and_streamed(
    module_server: ServerHandle, scrawn_client: Scrawn, fake: FakeProvider
) -> None:
    user = new_user("oai-resp")
    client = wrap_openai(openai_client(fake), scrawn_client, user_id=user, input_debit=1, output_debit=1)
    response = client.responses.create(model="gpt-4o-mini", input="Hi")
    assert response.output_text == "Hello there"
    events = list(client.responses.create(model="gpt-4o-mini", input="Hi", stream=True))
    assert events[-1].type == "response.completed"
    assert flush_ai(scrawn_client, 10)
    rows = stored(module_server, user)
    assert [tokens(r) for r in rows] == [(700, 250, 300, 0)] * 2


def test_chat_completions_stream_helper(
    module_server: ServerHandle, scrawn_client: Scrawn, fake: FakeProvider
) -> None:
    user = new_user("oai-helper")
    client = wrap_openai(openai_client(fake), scrawn_client, user_id=user, input_debit=1, output_debit=1)
    with client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        for _ in stream:
            pass
    assert fake.last()["body"]["stream_options"] == {"include_usage": True}
    assert flush_ai(scrawn_client, 10)
    [row] = stored(module_server, user)
    assert tokens(row) == (700, 250, 300, 0)


def test_with_options_stays_billed(
    module_server: ServerHandle, scrawn_client: Scrawn, fake: FakeProvider
) -> None:
    user = new_user("oai-opts")
    client = wrap_openai(openai_client(fake), scrawn_client, user_id=user, input_debit=1, output_debit=1)
    client.with_options(timeout=5).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert client.models is not None  # unrelated attributes are the client's own
    assert flush_ai(scrawn_client, 10)
    assert len(stored(module_server, user)) == 1


def test_async_client_plain_and_streamed(module_server: ServerHandle, fake: FakeProvider) -> None:
    user = new_user("oai-async")

    async def run() -> None:
        async with AsyncScrawn(module_server.live_key, module_server.base_url, flush_interval=0.05) as s:
            client = wrap_openai(async_openai_client(fake), s, input_debit=0, output_debit=1)
            completion = await client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, scrawn_user_id=user
            )
            assert completion.usage is not None
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True, scrawn_user_id=user
            )
            async with stream:
                chunks = [chunk async for chunk in stream]
            assert all(c.choices for c in chunks)
            events = [
                e
                async for e in await client.responses.create(
                    model="gpt-4o-mini", input="x", stream=True, scrawn_user_id=user
                )
            ]
            assert events[-1].type == "response.completed"
            assert await flush_ai(s, 10)

    asyncio.run(run())
    rows = stored(module_server, user)
    assert [tokens(r) for r in rows] == [(700, 250, 300, 0)] * 3


def test_billing_backend_down_never_slows_or_fails_the_call(fake: FakeProvider) -> None:
    # Billing calls wait 600 s on a server that never answers: an LLM call that waited for one would run
    # past the test's time limit.
    with blackhole() as hole:
        scrawn = Scrawn("scrn_live_" + "f" * 32, hole, max_retries=0, timeout=600)
        client = wrap_openai(openai_client(fake), scrawn, user_id="u1", input_debit=1, output_debit=1)
        for _ in range(10):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
        assert close_ai(scrawn, timeout=0.1) is False  # still queued: the billing server is silent
        scrawn.close(timeout=0.1)


def test_hostile_per_call_options_fail_before_the_provider_call(
    scrawn_client: Scrawn, fake: FakeProvider
) -> None:
    client = wrap_openai(openai_client(fake), scrawn_client, user_id="u")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"scrawn_user_id": ""}, "scrawn_user_id"),
        ({"scrawn_user_id": 12}, "scrawn_user_id"),
        ({"scrawn_user_id": "x" * 300}, "scrawn_user_id"),
        ({"scrawn_input_debit": -1}, "scrawn_input_debit"),
        ({"scrawn_output_debit": float("nan")}, "scrawn_output_debit"),
        ({"scrawn_input_cache_debit": "ten"}, "scrawn_input_cache_debit"),
        ({"scrawn_output_cache_debit": object()}, "scrawn_output_cache_debit"),
        ({"scrawn_metadata": "[1]"}, "scrawn_metadata"),
        ({"scrawn_userid": "typo"}, "scrawn_userid"),
    ]
    for kwargs, field in cases:
        with pytest.raises(ValidationError) as info:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, **kwargs)
        assert info.value.field == field
    assert fake.requests == []


def test_openai_usage_reads_every_shape() -> None:
    chat = {
        "model": "m",
        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "prompt_tokens_details": None},
    }
    assert openai_usage(chat) is not None and openai_usage(chat).input_tokens == 10  # type: ignore[union-attr]
    responses = {
        "usage": {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 1}
    }
    assert openai_usage(responses).input_cache_tokens == 4  # type: ignore[union-attr]
    event = {"type": "response.completed", "response": {"model": "m2", **responses}}
    assert openai_usage(event).model == "m2"  # type: ignore[union-attr]
    assert openai_usage({"choices": []}) is None
    with pytest.raises(ValidationError) as info:
        openai_usage({"usage": {"prompt_tokens": -1, "completion_tokens": 1}})
    assert info.value.field == "usage.prompt_tokens"
