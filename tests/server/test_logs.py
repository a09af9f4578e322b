"""The log formatter: JSON lines keep a traceback as Python prints it (tests and operators grep for
"Traceback"), and carry the request id of the request they were written for."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from scrawn.server import logs


@pytest.fixture
def restored_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers, root.level = handlers, level


def test_json_lines_keep_the_traceback_and_the_request_id(
    restored_root: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("info", "json")
    token = logs.current_request.set(logs.RequestInfo("req-1"))
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        logging.getLogger("scrawn.test").exception("failed")
    finally:
        logs.current_request.reset(token)
    logging.getLogger("scrawn.test").info("outside", extra={"n": 3})
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["request_id"] == "req-1" and first["level"] == "error"
    assert first["exception"].startswith("Traceback (most recent call last):")
    assert "request_id" not in second and second["n"] == 3 and second["event"] == "outside"
    assert logs.request_id() != logs.request_id()  # outside a request: a fresh id each time
