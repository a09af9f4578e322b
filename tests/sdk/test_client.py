"""Client construction, defaults from the environment, the API key never shown, the import boundary,
and the sans-I/O Connect parsing."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from typing import Any

import pytest

import scrawn
from scrawn import AsyncScrawn, Scrawn
from scrawn._config import DEFAULT_BASE_URL
from scrawn._connect import envelope, field_from_message, parse_stream, parse_unary, request_id_from
from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn.errors import (
    AlreadyExistsError,
    InternalError,
    InvalidArgumentError,
    UnavailableError,
    UnimplementedError,
    UnknownError,
    from_code,
)
from tests.sdk.conftest import LIVE_SHAPED_KEY


def test_import_scrawn_loads_nothing_server_side() -> None:
    code = (
        "import scrawn, sys\n"
        "bad = [m for m in sys.modules if m.startswith(('sqlalchemy', 'grpc', 'hypercorn', 'typer', "
        "'connectrpc', 'pyqwest', 'starlette', 'alembic'))]\n"
        "assert not bad, bad\n"
        "assert not any(m.startswith('scrawn.server') for m in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_api_names() -> None:
    for name in [
        "Scrawn",
        "AsyncScrawn",
        "scrawn",
        "tag",
        "expr",
        "add",
        "sub",
        "mul",
        "div",
        "amount",
        "input_tokens",
        "output_tokens",
    ]:
        assert name in scrawn.__all__ and hasattr(scrawn, name)


def test_defaults_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRAWN_API_KEY", LIVE_SHAPED_KEY)
    monkeypatch.delenv("SCRAWN_BASE_URL", raising=False)
    with Scrawn() as client:
        assert client.base_url == DEFAULT_BASE_URL == "http://127.0.0.1:8069"
    monkeypatch.setenv("SCRAWN_BASE_URL", "https://billing.example.com/scrawn/")
    with Scrawn() as client:
        assert client.base_url == "https://billing.example.com/scrawn"
    with Scrawn(base_url="http://10.0.0.1:9000") as client:  # an argument wins over the environment
        assert client.base_url == "http://10.0.0.1:9000"
    monkeypatch.delenv("SCRAWN_API_KEY")
    with pytest.raises(scrawn.ValidationError) as missing:
        Scrawn()
    assert missing.value.field == "api_key" and "SCRAWN_API_KEY" in missing.value.message


async def test_async_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRAWN_API_KEY", LIVE_SHAPED_KEY)
    async with AsyncScrawn() as client:
        assert client.base_url


def test_the_api_key_is_never_shown(module_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    key = module_server.live_key
    with caplog.at_level(logging.DEBUG):
        client = Scrawn(key, module_server.base_url)
        client.basic_usage_event_consumer(user_id="key-never-logged", debit=1)
        client.track(user_id="key-never-logged", debit=1)
        client.flush(10)
        text = repr(client) + str(client) + repr(client._config)
        client.close()
    assert key not in text and "scrn_live_********" in repr(client)
    assert all(key not in r.getMessage() for r in caplog.records)
    assert key[10:] not in caplog.text


def test_no_files_written_unless_asked(
    module_server: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        client.track(user_id="no-files", debit=1)
        client.basic_usage_event_consumer(user_id="no-files", debit=1)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- Connect, sans I/O


def test_errors_from_unary_bodies() -> None:
    body = json.dumps(
        {"code": "invalid_argument", "message": "Event validation failed: userId: must be a non-empty string"}
    ).encode()
    with pytest.raises(InvalidArgumentError) as e:
        parse_unary(400, {"content-type": "application/json"}, body, ev.RegisterEventResponse)
    assert e.value.field == "userId"
    with pytest.raises(UnavailableError):  # a proxy page: Connect's HTTP status mapping
        parse_unary(503, {"content-type": "text/html"}, b"<html>", ev.RegisterEventResponse)
    with pytest.raises(UnimplementedError):
        parse_unary(404, {}, b"", ev.RegisterEventResponse)
    with pytest.raises(UnknownError):
        parse_unary(500, {}, b"oops", ev.RegisterEventResponse)
    with pytest.raises(InternalError) as internal:
        parse_unary(
            500,
            {"x-request-id": "req-123456"},
            json.dumps({"code": "internal", "message": "Internal error"}).encode(),
            ev.RegisterEventResponse,
        )
    assert internal.value.request_id == "req-123456"
    with pytest.raises(InternalError):
        parse_unary(200, {"content-type": "text/html"}, b"<html>", ev.RegisterEventResponse)


def test_stream_envelopes() -> None:
    ok = ev.StreamEventResponse(eventsProcessed=3)
    body = envelope(ok.SerializeToString()) + envelope(b"{}", 0x02)
    assert parse_stream(200, {}, body, ev.StreamEventResponse).eventsProcessed == 3
    error = envelope(
        json.dumps({"error": {"code": "already_exists", "message": "idempotencyKey: already used"}}).encode(),
        0x02,
    )
    with pytest.raises(AlreadyExistsError) as e:
        parse_stream(200, {}, error, ev.StreamEventResponse)
    assert e.value.field == "idempotencyKey"
    with pytest.raises(InternalError):
        parse_stream(200, {}, body[:-3], ev.StreamEventResponse)
    with pytest.raises(InternalError):
        parse_stream(200, {}, envelope(b"{}", 0x02), ev.StreamEventResponse)


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ("Event validation failed: userId: must be a non-empty string", "userId"),
        ("Event pricing failed: basicUsage.tag: Tag not found: X", "basicUsage.tag"),
        ("idempotencyKey: already used for an event with different content", "idempotencyKey"),
        ("Request validation failed: x-scrawn-mode: must be live or test", "x-scrawn-mode"),
        ("Invalid API key: API key not found", None),
        ("Invalid API key: Invalid key prefix — expected scrn_dash_, scrn_live_, or scrn_test_", None),
        ("Internal error (request id 0123abcd)", None),
        ("", None),
    ],
)
def test_field_from_message(message: str, field: str | None) -> None:
    assert field_from_message(message) == field


def test_request_id_and_from_code() -> None:
    assert request_id_from("Internal error (request id 9f8e7d6c5b4a)") == "9f8e7d6c5b4a"
    assert request_id_from("nothing here") is None
    assert type(from_code("no_such_code", "m")) is UnknownError
    assert from_code("unavailable", "m", field="f", request_id="r").field == "f"
