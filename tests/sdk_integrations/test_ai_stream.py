"""``track_ai`` and ``ai_token_stream_consumer`` against a real ``scrawn serve`` (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

from scrawn import AsyncScrawn, Scrawn, input_tokens, mul, output_tokens, tag
from scrawn.ai import (
    AiStreamResult,
    AiUsage,
    ExtractorError,
    ai_token_stream_consumer,
    close_ai,
    flush_ai,
    openai_usage,
    track_ai,
)
from scrawn.errors import ScrawnError, ValidationError
from tests.conftest import ServerHandle
from tests.sdk_integrations.helpers import blackhole, closed_port_url, new_user, stored


def tokens(row: Any) -> tuple[int, int, int, int]:
    return (row.input_tokens, row.output_tokens, row.input_cache_tokens, row.output_cache_tokens)


@pytest.fixture
def client(module_server: ServerHandle) -> Iterator[Scrawn]:
    c = Scrawn(module_server.live_key, module_server.base_url, flush_interval=0.05)
    yield c
    c.close()


# ----------------------------------------------------------------------------------------- track_ai


def test_track_ai_with_explicit_debits(module_server: ServerHandle, client: Scrawn) -> None:
    user = new_user("ai")
    assert track_ai(
        client,
        user_id=user,
        model="my-finetune",
        provider="self-hosted",
        input_tokens=1200,
        output_tokens=340,
        input_cache_tokens=500,
        output_cache_tokens=20,
        input_debit=12,
        output_debit="3.4",
        input_cache_debit=mul(input_cache_tokens_rate(), 1),
        output_cache_debit=Decimal("0.25"),
        metadata={"request": "r1"},
        idempotency_key=f"{user}-1",
    )
    assert flush_ai(client, 10)
    [row] = stored(module_server, user)
    assert row.event_type == "AI_TOKEN_USAGE"
    assert (row.model, row.provider) == ("my-finetune", "self-hosted")
    assert tokens(row) == (1200, 340, 500, 20)
    assert (row.input_debit, row.output_debit) == (Decimal(12), Decimal("3.4"))
    assert (row.input_cache_debit, row.output_cache_debit) == (Decimal("0.5"), Decimal("0.25"))
    assert row.debit == Decimal("16.15")
    assert json.loads(row.metadata) == {"request": "r1"}
    assert row.idempotency_key == f"{user}-1"


def input_cache_tokens_rate() -> Any:
    from scrawn import div, input_cache_tokens

    return div(input_cache_tokens(), 1000)  # 0.001 cent per cached token


def test_track_ai_token_expressions_and_the_price_book(module_server: ServerHandle, client: Scrawn) -> None:
    user = new_user("ai-book")
    track_ai(
        client,
        user_id=user,
        model="gpt-4o-mini",
        input_tokens=1000,
        output_tokens=500,
        input_debit=mul(input_tokens(), "0.002"),
        output_debit=mul(output_tokens(), "0.008"),
        metadata={"n": 1},
    )
    # No debit: the server prices the call from its model price book (gpt-4o-mini is in it).
    track_ai(
        client,
        user_id=user,
        usage=AiUsage(input_tokens=1000, output_tokens=500, input_cache_tokens=200, model="gpt-4o-mini"),
        provider="openai",
        metadata={"n": 2},
    )
    assert flush_ai(client, 10)
    rows = sorted(stored(module_server, user), key=lambda r: json.loads(r.metadata)["n"])
    assert [r.debit for r in rows[:1]] == [Decimal(6)]
    assert (rows[0].input_debit, rows[0].output_debit) == (Decimal(2), Decimal(4))
    book = rows[1]
    assert tokens(book) == (1000, 500, 200, 0) and book.model == "gpt-4o-mini"
    assert book.debit > 0 and book.input_cache_debit > 0
    assert "priceBook" in book.pricing


def test_track_ai_on_async_client(module_server: ServerHandle) -> None:
    user = new_user("ai-async")

    async def run() -> None:
        async with AsyncScrawn(module_server.live_key, module_server.base_url, flush_interval=0.05) as c:
            assert track_ai(
                c, user_id=user, model="m", input_tokens=5, output_tokens=7, input_debit=1, output_debit=2
            )
            assert await flush_ai(c, 10)
            rows = await asyncio.to_thread(stored, module_server, user)
            assert [(tokens(r), r.debit) for r in rows] == [((5, 7, 0, 0), Decimal(3))]
            # close_ai delivers and stops the worker; a later track_ai starts a new one.
            assert track_ai(
                c, user_id=user, model="m", input_tokens=1, output_tokens=1, input_debit=0, output_debit=0
            )
            assert await close_ai(c, 10)
            assert len(await asyncio.to_thread(stored, module_server, user)) == 2
            assert track_ai(
                c, user_id=user, model="m", input_tokens=1, output_tokens=1, input_debit=0, output_debit=0
            )
            assert await flush_ai(c, 10)
            assert len(await asyncio.to_thread(stored, module_server, user)) == 3

    asyncio.run(run())


def test_track_ai_delivery_failures_go_to_on_error(module_server: ServerHandle) -> None:
    reported: list[ScrawnError] = []
    client = Scrawn(
        module_server.live_key,
        module_server.base_url,
        flush_interval=0.05,
        on_error=lambda e, ctx: reported.append(e),
    )
    user = new_user("ai-fail")
    track_ai(
        client,
        user_id=user,
        model="m",
        input_tokens=1,
        output_tokens=1,
        input_debit=tag("NO_SUCH_TAG"),
        output_debit=1,
    )
    track_ai(
        client, user_id=user, model="no-such-model-xyz", input_tokens=1, output_tokens=1
    )  # not in the book
    track_ai(client, user_id=user, model="m", input_tokens=1, output_tokens=1, input_debit=1, output_debit=1)
    assert flush_ai(client, 10)
    assert len(stored(module_server, user)) == 1
    assert sorted(e.field or "" for e in reported) == ["aiTokenUsage.inputDebit", "aiTokenUsage.model"]
    client.close()


# ------------------------------------------------------------------------------- stream, fork=False


def usage_chunks(n: int, user: str | None = None) -> Iterator[dict[str, Any]]:
    for i in range(n):
        chunk: dict[str, Any] = {"input_tokens": i, "output_tokens": 2 * i, "input_cache_tokens": i % 3}
        if user:
            chunk["user_id"] = user
        yield chunk


def test_stream_consumer_bills_every_chunk(module_server: ServerHandle, client: Scrawn) -> None:
    user = new_user("stream")
    result = ai_token_stream_consumer(
        client,
        usage_chunks(25),
        user_id=user,
        model="gpt-4o-mini",
        provider="openai",
        input_debit=mul(input_tokens(), 2),
        output_debit=1,
        batch_size=10,
    )
    assert isinstance(result, AiStreamResult)
    assert (result.events_processed, result.events_succeeded, result.ok) == (25, 25, True)
    rows = stored(module_server, user)
    assert sorted(tokens(r) for r in rows) == sorted((i, 2 * i, i % 3, 0) for i in range(25))
    assert sum(r.debit for r in rows) == Decimal(sum(2 * i + 1 for i in range(25)))
    assert {r.provider for r in rows} == {"openai"}


def test_stream_consumer_chunk_overrides_and_ts_keys(module_server: ServerHandle, client: Scrawn) -> None:
    user, other = new_user("stream-k"), new_user("stream-k2")
    chunks = [
        AiUsage(input_tokens=3, output_tokens=4, model="gpt-4o-mini"),
        {
            "userId": other,
            "inputTokens": 10,
            "outputTokens": 1,
            "inputDebit": {"amount": 7},
            "outputDebit": {"amount": 1},
        },
        {
            "input_tokens": 1,
            "output_tokens": 1,
            "model": "custom",
            "input_debit": 2,
            "output_debit": 0,
            "metadata": {"k": "v"},
            "idempotency_key": f"{user}-x",
        },
    ]
    result = ai_token_stream_consumer(client, chunks, user_id=user, model="gpt-4o-mini")
    assert result.events_succeeded == 3
    mine = {r.model: r for r in stored(module_server, user)}
    assert set(mine) == {"gpt-4o-mini", "custom"}
    assert mine["custom"].debit == Decimal(2) and mine["custom"].idempotency_key == f"{user}-x"
    [theirs] = stored(module_server, other)
    assert (theirs.input_debit, theirs.debit) == (Decimal(7), Decimal(8))
    # Sending the same keyed chunk again is a duplicate, not a second charge.
    again = ai_token_stream_consumer(client, [chunks[2]], user_id=user)
    assert (again.events_succeeded, again.duplicates) == (1, 1)
    assert len(stored(module_server, user)) == 2


def test_stream_consumer_extract_reads_provider_chunks(module_server: ServerHandle, client: Scrawn) -> None:
    user = new_user("stream-x")
    provider_chunks = [
        {"id": "c1", "model": "gpt-4o-mini", "choices": [{"delta": {"content": "hi"}}]},  # no usage: skipped
        {
            "id": "c1",
            "model": "gpt-4o-mini",
            "choices": [],
            "usage": {
                "prompt_tokens": 90,
                "completion_tokens": 12,
                "prompt_tokens_details": {"cached_tokens": 40},
            },
        },
    ]
    result = ai_token_stream_consumer(
        client, provider_chunks, user_id=user, extract=openai_usage, input_debit=1, output_debit=1
    )
    assert result.events_succeeded == 1
    [row] = stored(module_server, user)
    assert tokens(row) == (50, 12, 40, 0) and row.model == "gpt-4o-mini"


def test_stream_consumer_item_failures_are_reported_not_raised(
    module_server: ServerHandle, client: Scrawn
) -> None:
    user = new_user("stream-f")
    reported: list[ScrawnError] = []
    chunks = [
        {"input_tokens": 1, "output_tokens": 1},
        {"input_tokens": 1, "output_tokens": 1, "input_debit": tag("MISSING_TAG")},
        {"input_tokens": 2, "output_tokens": 2},
    ]
    result = ai_token_stream_consumer(
        client,
        chunks,
        user_id=user,
        model="m",
        output_debit=1,
        input_debit=1,
        on_error=lambda e, c: reported.append(e),
    )
    assert (result.events_processed, result.events_succeeded, result.ok) == (3, 2, False)
    [failure] = result.failures
    assert (failure.index, failure.code) == (1, "KEPT_FOR_REPRICING")  # kept, priced once the tag exists
    assert failure.error.field == "aiTokenUsage.inputDebit" and reported == [failure.error]
    assert len(stored(module_server, user)) == 2


def test_stream_consumer_bad_chunk_raises_after_billing_what_came_before(
    module_server: ServerHandle, client: Scrawn
) -> None:
    user = new_user("stream-bad")

    def chunks() -> Iterator[dict[str, Any]]:
        yield {"input_tokens": 1, "output_tokens": 1}
        yield {"input_tokens": 2, "output_tokens": 2}
        yield {"input_tokens": -1, "output_tokens": 2}

    with pytest.raises(ValidationError) as info:
        ai_token_stream_consumer(client, chunks(), user_id=user, model="m", input_debit=1, output_debit=1)
    assert info.value.field == "chunks[2].input_tokens"
    assert len(stored(module_server, user)) == 2

    def failing_source() -> Iterator[dict[str, Any]]:
        yield {"input_tokens": 5, "output_tokens": 5}
        raise ConnectionResetError("the provider went away")

    with pytest.raises(ConnectionResetError):
        ai_token_stream_consumer(
            client, failing_source(), user_id=user, model="m", input_debit=1, output_debit=1
        )
    assert len(stored(module_server, user)) == 3


def test_stream_consumer_server_down_raises_typed_error() -> None:
    client = Scrawn("scrn_live_" + "c" * 32, closed_port_url(), max_retries=1, backoff_base=0.01)
    with pytest.raises(ScrawnError) as info:
        ai_token_stream_consumer(client, usage_chunks(3), user_id="u", model="m")
    assert info.value.code == "unavailable"
    client.close()


# -------------------------------------------------------------------------------- stream, fork=True


def test_fork_yields_every_chunk_while_billing(module_server: ServerHandle, client: Scrawn) -> None:
    user = new_user("fork")
    source = list(usage_chunks(30))
    source[7] = {"input_tokens": "seven", "output_tokens": 1}  # not billable: reported, still yielded
    reported: list[ScrawnError] = []
    stream = ai_token_stream_consumer(
        client,
        iter(source),
        user_id=user,
        model="m",
        input_debit=1,
        output_debit=1,
        fork=True,
        batch_size=4,
        on_error=lambda e, ctx: reported.append(e),
    )
    seen = [chunk for chunk in stream]
    assert seen == source
    result = stream.result(10)
    assert (result.events_succeeded, result.events_processed) == (29, 29)
    assert [(f.index, f.code) for f in result.failures] == [(7, "VALIDATION_FAILED")]
    assert reported[0].field == "chunks[7].input_tokens"
    assert len(stored(module_server, user)) == 29


def test_fork_stopped_early_bills_what_was_read(module_server: ServerHandle, client: Scrawn) -> None:
    user = new_user("fork-early")
    closed: list[bool] = []

    def source() -> Iterator[dict[str, Any]]:
        try:
            yield from usage_chunks(100)
        finally:
            closed.append(True)

    with ai_token_stream_consumer(
        client, source(), user_id=user, model="m", input_debit=1, output_debit=1, fork=True
    ) as stream:
        for i, _ in enumerate(stream):
            if i == 9:
                break
    assert closed == [True]  # the source was closed with the stream
    assert stream.result(10).events_succeeded == 10
    assert len(stored(module_server, user)) == 10


def test_fork_server_down_never_breaks_the_callers_stream() -> None:
    client = Scrawn("scrn_live_" + "d" * 32, closed_port_url(), max_retries=0)
    stream = ai_token_stream_consumer(
        client, usage_chunks(12), user_id="u", model="m", fork=True, batch_size=5
    )
    assert len(list(stream)) == 12
    result = stream.result(10)
    assert result.events_succeeded == 0 and len(result.failures) == 12
    assert {f.code for f in result.failures} == {"UNAVAILABLE"}
    client.close()


def test_fork_buffer_is_bounded() -> None:
    """With the billing server stuck, the source is read at most buffer_size + batch_size (+1 in flight)
    chunks ahead of what billing has taken; the caller waits instead of memory growing."""
    pulled = 0
    stop = threading.Event()
    done = threading.Event()

    def source() -> Iterator[dict[str, Any]]:
        nonlocal pulled
        for chunk in usage_chunks(1000):
            if stop.is_set():
                return
            pulled += 1
            yield chunk

    with blackhole() as hole:
        client = Scrawn("scrn_live_" + "e" * 32, hole, timeout=1.0, max_retries=0)
        stream = ai_token_stream_consumer(
            client,
            source(),
            user_id="u",
            model="m",
            fork=True,
            batch_size=2,
            buffer_size=5,
            flush_interval=0.01,
        )

        def consume() -> None:
            for _ in stream:
                pass
            done.set()

        threading.Thread(target=consume, daemon=True).start()
        time.sleep(0.5)  # the first batch is stuck on the black hole (1 s timeout)
        assert pulled <= 5 + 2 + 1
        assert not done.is_set()
        stop.set()
    # The black hole is gone: the remaining batches fail fast and the caller's loop ends.
    assert done.wait(15)
    result = stream.result(15)
    assert result.events_succeeded == 0 and len(result.failures) == pulled
    client.close(timeout=0.1)


# ------------------------------------------------------------------------------------------- asyncio


async def async_chunks(n: int) -> AsyncIterator[dict[str, Any]]:
    for chunk in usage_chunks(n):
        await asyncio.sleep(0)
        yield chunk


def test_async_consumer_and_fork(module_server: ServerHandle) -> None:
    user, forked = new_user("astream"), new_user("afork")

    async def run() -> None:
        async with AsyncScrawn(module_server.live_key, module_server.base_url) as c:
            result = await ai_token_stream_consumer(
                c, async_chunks(15), user_id=user, model="m", input_debit=1, output_debit=2, batch_size=4
            )
            assert result.events_succeeded == 15
            # a sync iterable with an async client: the asyncio flavour too
            again = await ai_token_stream_consumer(
                c,
                [{"input_tokens": 1, "output_tokens": 1}],
                user_id=user,
                model="m",
                input_debit=0,
                output_debit=0,
            )
            assert again.events_succeeded == 1
            stream = ai_token_stream_consumer(
                c,
                async_chunks(20),
                user_id=forked,
                model="m",
                input_debit=1,
                output_debit=1,
                fork=True,
                batch_size=3,
            )
            seen = [chunk async for chunk in stream]
            assert len(seen) == 20
            forked_result = await stream.result(10)
            assert forked_result.events_succeeded == 20 and forked_result.ok

    asyncio.run(run())
    rows = stored(module_server, user)
    assert len(rows) == 16
    assert sum(r.debit for r in rows) == 15 * 3
    assert len(stored(module_server, forked)) == 20


def test_sync_client_with_async_source(module_server: ServerHandle, client: Scrawn) -> None:
    user = new_user("mixed")

    async def run() -> AiStreamResult:
        stream = ai_token_stream_consumer(
            client, async_chunks(6), user_id=user, model="m", input_debit=1, output_debit=1, fork=True
        )
        async for _ in stream:
            pass
        return await stream.result(10)

    assert asyncio.run(run()).events_succeeded == 6
    assert len(stored(module_server, user)) == 6


def test_async_fork_extract_failure_is_reported(module_server: ServerHandle) -> None:
    user = new_user("afork-x")
    reported: list[ScrawnError] = []

    def extract(chunk: dict[str, Any]) -> Any:
        if chunk["input_tokens"] == 2:
            raise KeyError("weird chunk")
        return chunk

    async def run() -> AiStreamResult:
        async with AsyncScrawn(module_server.live_key, module_server.base_url) as c:
            stream = ai_token_stream_consumer(
                c,
                async_chunks(4),
                user_id=user,
                model="m",
                input_debit=1,
                output_debit=1,
                fork=True,
                extract=extract,
                on_error=lambda e, ctx: reported.append(e),
            )
            assert len([x async for x in stream]) == 4
            return await stream.result(10)

    result = asyncio.run(run())
    assert result.events_succeeded == 3
    assert isinstance(reported[0], ExtractorError) and reported[0].field == "extract"
    assert len(stored(module_server, user)) == 3
