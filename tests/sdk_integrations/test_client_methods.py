"""The integrations as client methods — ``client.middleware_event_consumer``, ``client.track_ai``,
``client.ai_token_stream_consumer``, ``client.wrap_openai``, ``client.wrap_anthropic`` — delegate to the
module functions with the client, on ``Scrawn`` and ``AsyncScrawn``; ``flush()`` waits for queued AI
events and ``close()`` delivers them, so none is lost at exit."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from scrawn import AiUsage, AsyncScrawn, Scrawn, match_path
from scrawn import ai as ai_module
from scrawn import middleware as middleware_module
from scrawn.errors import ValidationError
from scrawn.middleware import ScrawnMiddleware
from tests.conftest import ServerHandle
from tests.sdk_integrations.helpers import FakeProvider, new_user, serve_asgi, stored

MESSAGES = [{"role": "user", "content": "Hi"}]

DELEGATES = {
    "middleware_event_consumer": (middleware_module.middleware_event_consumer, "client"),
    "track_ai": (ai_module.track_ai, "client"),
    "wrap_openai": (ai_module.wrap_openai, "scrawn_client"),
    "wrap_anthropic": (ai_module.wrap_anthropic, "scrawn_client"),
}


def tokens(row: Any) -> tuple[int, int, int, int]:
    return (row.input_tokens, row.output_tokens, row.input_cache_tokens, row.output_cache_tokens)


@pytest.mark.parametrize("cls", [Scrawn, AsyncScrawn])
@pytest.mark.parametrize("name", sorted(DELEGATES))
def test_client_methods_take_the_module_functions_arguments(cls: type[Any], name: str) -> None:
    function, client_param = DELEGATES[name]
    expected = [p for p in inspect.signature(function).parameters.values() if p.name != client_param]
    got = list(inspect.signature(getattr(cls, name)).parameters.values())[1:]  # without self
    assert [(p.name, p.kind, p.default) for p in got] == [(p.name, p.kind, p.default) for p in expected]


@pytest.mark.parametrize("cls", [Scrawn, AsyncScrawn])
def test_stream_consumer_method_forwards_every_option(cls: type[Any]) -> None:
    names = set(inspect.signature(ai_module.ai_token_stream_consumer).parameters) - {"client", "chunks"}
    method = inspect.signature(cls.ai_token_stream_consumer)
    assert "fork" in method.parameters
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in method.parameters.values())
    forwarded = {
        "user_id", "model", "provider", "input_debit", "output_debit", "input_cache_debit",
        "output_cache_debit", "metadata", "extract", "batch_size", "buffer_size", "flush_interval",
        "on_error",
    }  # fmt: skip
    assert names - set(method.parameters) == forwarded


def test_import_scrawn_stays_light_and_exports_integration_names() -> None:
    code = (
        "import scrawn, sys\n"
        "heavy = ('starlette', 'flask', 'openai', 'anthropic', 'sqlalchemy', 'grpc', 'werkzeug')\n"
        "assert not [m for m in sys.modules if m.startswith(heavy)]\n"
        "assert 'scrawn.middleware' not in sys.modules and 'scrawn.ai' not in sys.modules\n"
        "from scrawn import match_path, AiUsage, bill_as, openai_usage, ScrawnASGIMiddleware\n"
        "assert match_path('/api/v1/x', '/api/**')\n"
        "assert not [m for m in sys.modules if m.startswith(heavy)]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert match_path("/a/b", "/a/*") and not match_path("/a/b/c", "/a/*")


# ---------------------------------------------------------------------------------------------- track_ai


def test_track_ai_then_flush_stores_the_event(module_server: ServerHandle) -> None:
    user = new_user("cm")
    with Scrawn(module_server.live_key, module_server.base_url, flush_interval=5) as client:
        assert client.track_ai(
            user_id=user, model="gpt-4o-mini", provider="openai", input_tokens=120, output_tokens=30,
            input_debit=4, output_debit=2,
        )  # fmt: skip
        usage = AiUsage(input_tokens=5, output_tokens=1, model="gpt-4o-mini")
        assert client.track_ai(user_id=user, usage=usage)
        assert client.flush(10)  # without waiting for the 5-second flush interval
        rows = stored(module_server, user)
        assert sorted(tokens(r) for r in rows) == [(5, 1, 0, 0), (120, 30, 0, 0)]
        assert {r.event_type for r in rows} == {"AI_TOKEN_USAGE"}
        with pytest.raises(ValidationError) as caught:
            client.track_ai(user_id=user, model="m", input_tokens=-1, output_tokens=0)
        assert caught.value.field == "input_tokens"


def test_close_delivers_queued_ai_events(module_server: ServerHandle) -> None:
    user = new_user("cm")
    client = Scrawn(module_server.live_key, module_server.base_url, flush_interval=30)
    for i in range(20):
        client.track_ai(user_id=user, model="gpt-4o-mini", input_tokens=i + 1, output_tokens=1)
    assert client.close(10)  # no flush(): close() itself delivers the AI buffer
    assert len(stored(module_server, user)) == 20


def test_events_queued_before_exit_are_delivered(module_server: ServerHandle) -> None:
    """A script that tracks and ends with ``close()`` in a ``with`` block loses nothing."""
    user = new_user("cm")
    code = (
        "from scrawn import Scrawn\n"
        f"with Scrawn({module_server.live_key!r}, {module_server.base_url!r}, flush_interval=60) as c:\n"
        f"    for i in range(50): c.track_ai(user_id={user!r}, model='gpt-4o-mini', input_tokens=i + 1,"
        " output_tokens=2)\n"
        f"    c.track(user_id={user!r}, debit=3)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    rows = stored(module_server, user)
    assert len(rows) == 51 and sum(r.event_type == "AI_TOKEN_USAGE" for r in rows) == 50


async def test_track_ai_flush_and_close_async(module_server: ServerHandle) -> None:
    import asyncio

    user = new_user("cma")
    client = AsyncScrawn(module_server.live_key, module_server.base_url, flush_interval=30)
    assert client.track_ai(user_id=user, model="gpt-4o-mini", input_tokens=7, output_tokens=3)  # not awaited
    assert await client.flush(10)
    assert [tokens(r) for r in await asyncio.to_thread(stored, module_server, user)] == [(7, 3, 0, 0)]
    client.track_ai(user_id=user, model="gpt-4o-mini", input_tokens=8, output_tokens=3)
    assert await client.close(10)
    assert len(await asyncio.to_thread(stored, module_server, user)) == 2


# ---------------------------------------------------------------------------------------- stream consumer


def test_ai_token_stream_consumer_method(module_server: ServerHandle) -> None:
    user = new_user("cms")
    chunks = [{"input_tokens": i, "output_tokens": 1} for i in range(1, 6)]
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        result = client.ai_token_stream_consumer(chunks, user_id=user, model="gpt-4o-mini")
        assert (result.events_succeeded, result.ok) == (5, True)
        forked = client.ai_token_stream_consumer(iter(chunks), user_id=user, model="gpt-4o-mini", fork=True)
        assert list(forked) == chunks
        assert forked.result(10).events_succeeded == 5
        unawaited = client.ai_token_stream_consumer(chunks, user_id=user, model="gpt-4o-mini", fork=True)
        assert len(list(unawaited)) == 5  # no result(): close() waits for its billing
    assert len(stored(module_server, user)) == 15


async def test_ai_token_stream_consumer_method_async(module_server: ServerHandle) -> None:
    import asyncio

    user = new_user("cms")

    async def source() -> AsyncIterator[dict[str, int]]:
        for i in range(3):
            yield {"input_tokens": 10 + i, "output_tokens": 2}

    async with AsyncScrawn(module_server.live_key, module_server.base_url) as client:
        result = await client.ai_token_stream_consumer(source(), user_id=user, model="gpt-4o-mini")
        assert result.events_succeeded == 3
        # Forked, and the client closed right after the stream without awaiting stream.result():
        # close() waits for the fork's billing, so nothing is lost.
        forked = client.ai_token_stream_consumer(source(), user_id=user, model="gpt-4o-mini", fork=True)
        assert len([c async for c in forked]) == 3
    assert len(await asyncio.to_thread(stored, module_server, user)) == 6


# --------------------------------------------------------------------------------------------- wrappers


def test_wrap_openai_and_anthropic_methods(module_server: ServerHandle, fake: FakeProvider) -> None:
    user = new_user("cmw")
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        oai = client.wrap_openai(
            openai.OpenAI(api_key="sk-test", base_url=f"{fake.base_url}/v1", max_retries=0), user_id=user
        )
        oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        claude = client.wrap_anthropic(
            anthropic.Anthropic(api_key="sk-ant-test", base_url=fake.base_url, max_retries=0),
            user_id=user,
            input_debit=1,
            output_debit=1,
        )
        claude.messages.create(model="claude-3-5-haiku-latest", max_tokens=10, messages=MESSAGES)  # type: ignore[arg-type]
        assert client.flush(10)
    rows = stored(module_server, user)
    assert sorted((r.provider, tokens(r)) for r in rows) == [
        ("anthropic", (700, 180, 400, 50)),
        ("openai", (700, 250, 300, 0)),
    ]


async def test_wrap_openai_method_async(module_server: ServerHandle, fake: FakeProvider) -> None:
    import asyncio

    user = new_user("cmw")
    async with AsyncScrawn(module_server.live_key, module_server.base_url) as client:
        oai = client.wrap_openai(
            openai.AsyncOpenAI(api_key="sk-test", base_url=f"{fake.base_url}/v1", max_retries=0)
        )
        await oai.chat.completions.create(  # type: ignore[call-overload]
            model="gpt-4o-mini", messages=MESSAGES, scrawn_user_id=user
        )
    # close() (the async with) delivered it
    assert [tokens(r) for r in await asyncio.to_thread(stored, module_server, user)] == [(700, 250, 300, 0)]


# ------------------------------------------------------------------------------------------- middleware


def _app(consumer: ScrawnMiddleware) -> Any:
    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    return consumer(Starlette(routes=[Route("/api/{name}", ok), Route("/health", ok)]))


def test_middleware_event_consumer_method(module_server: ServerHandle) -> None:
    user = new_user("cmm")
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        consumer = client.middleware_event_consumer(
            extractor=lambda request: {"user_id": request.headers["x-user"], "debit": 2},
            whitelist=["/api/*"],
        )
        assert isinstance(consumer, ScrawnMiddleware)
        with serve_asgi(_app(consumer)) as url:
            for path in ("/api/a", "/api/b", "/health"):
                assert httpx.get(url + path, headers={"x-user": user}).text == "ok"
        assert client.flush(10)
    rows = stored(module_server, user)
    assert len(rows) == 2 and {r.basic_usage_type for r in rows} == {"MIDDLEWARE_CALL"}


async def test_middleware_event_consumer_method_async(module_server: ServerHandle) -> None:
    import asyncio

    user = new_user("cmm")
    async with AsyncScrawn(module_server.live_key, module_server.base_url) as client:
        consumer = client.middleware_event_consumer(
            extractor=lambda request: {"user_id": user, "debit": 1}, blacklist=["/health"]
        )

        def hit() -> None:
            with serve_asgi(_app(consumer)) as url:
                for path in ("/api/x", "/health"):
                    httpx.get(url + path)

        await asyncio.to_thread(hit)
        assert await client.flush(10)
    assert len(await asyncio.to_thread(stored, module_server, user)) == 1


def test_integration_methods_validate_before_anything() -> None:
    with Scrawn("scrn_live_" + "A" * 32, "http://127.0.0.1:9") as client:
        with pytest.raises(ValidationError) as caught:
            client.middleware_event_consumer(extractor=None)  # type: ignore[arg-type]
        assert caught.value.field == "extractor"
        with pytest.raises(ValidationError) as caught:
            client.wrap_openai("not a client", user_id="u")
        assert caught.value.field == "openai_client"
        with pytest.raises(ValidationError) as caught:
            client.ai_token_stream_consumer(5, user_id="u", model="m")  # type: ignore[call-overload]
        assert caught.value.field == "chunks"
