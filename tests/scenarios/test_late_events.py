"""The late-event window (docs/events.md#late-events) on a real server, SQLite and PostgreSQL: events reported
more than the project's ``late_window_days`` ago are refused naming their timestamp on RegisterEvent,
StreamEvents and TrackEvents; ``scrawn projects set --late-window`` widens or narrows it (and
``--time-zone``, the other setting it takes, is checked here too)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from typing import Any

import pytest

from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.usage.v1 import usage_pb2 as usage
from scrawn.server.keys.service import KeyService
from scrawn.server.projects.service import create_project
from tests.clients import REGISTER, STREAM, TRACK, ConnectClient, RpcError, all_clients, bearer
from tests.conftest import SECRET, ServerHandle, run_async

DAY = 86_400
MESSAGE = (
    "Event validation failed: {field}: is more than {span} in the past, outside the project's late-event "
    "window (`scrawn projects set --late-window`)"
)


def ago(days: float) -> int:
    return int(time.time() - days * DAY)


def register(c: Any, key: str, reported: int, idem: str | None = None) -> Any:
    request = ev.RegisterEventRequest(
        type=ev.BASIC_USAGE,
        userId="late-user",
        reportedTimestamp=reported,
        basicUsage=ev.BasicUsage(amount=5),
        idempotencyKey=idem or uuid.uuid4().hex,
    )
    return c.unary(REGISTER, request, bearer(key))


def item(reported: int) -> ev.StreamEventRequest:
    return ev.StreamEventRequest(
        type=ev.BASIC_USAGE,
        userId="late-user",
        reportedTimestamp=reported,
        basicUsage=ev.BasicUsage(amount=1),
        idempotencyKey=uuid.uuid4().hex,
    )


def cli(handle: ServerHandle, *args: str, ok: bool = True) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "scrawn.server.cli", "projects", *args],
        env=handle.env | {"COLUMNS": "300"},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert (done.returncode == 0) == ok, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def other(module_server: ServerHandle) -> tuple[str, str]:
    """A second project (its window is changed here) and a live key of it."""

    async def make() -> tuple[str, str]:
        db = module_server.db()
        try:
            async with db.write() as conn:
                project_id = await create_project(conn, "late")
                _, key = await KeyService(db, SECRET).create_key(conn, project_id, "live", "late")
            return project_id, key
        finally:
            await db.dispose()

    made: tuple[str, str] = run_async(make())
    return made


def test_register_refuses_an_event_older_than_35_days(module_server: ServerHandle) -> None:
    for c in all_clients(module_server):
        with c:
            for key in (module_server.live_key, module_server.test_key):
                with pytest.raises(RpcError) as e:
                    register(c, key, ago(35.01))
                assert e.value.code == "invalid_argument"
                assert e.value.message == MESSAGE.format(field="reportedTimestamp", span="35 days")
                assert not register(c, key, ago(34.9)).duplicate  # inside the window: stored
                assert register(c, key, ago(0.5)).eventId  # the hot path (younger than a day)


def test_a_stream_refuses_only_the_late_items(module_server: ServerHandle) -> None:
    for c in all_clients(module_server):
        with c:
            items = [item(ago(1)), item(ago(40)), item(0), item(ago(3650)), item(ago(30))]
            response = c.stream(STREAM, items, bearer(module_server.live_key))
            assert (response.eventsProcessed, response.eventsFailed) == (5, 2)
            assert [f.eventIndex for f in response.failures] == [1, 3]
            for failure in response.failures:
                assert failure.errorCode == "INVALID_TIMESTAMP"
                assert failure.message == MESSAGE.format(field="reportedTimestamp", span="35 days")


def test_track_events_names_timestamp(module_server: ServerHandle) -> None:
    def tracked(reported: int) -> usage.TrackedEvent:
        return usage.TrackedEvent(
            type="late.check", userId="late-user", timestamp=reported, idempotencyKey=uuid.uuid4().hex
        )

    with ConnectClient(module_server.base_url) as c:
        request = usage.TrackEventsRequest(events=[tracked(ago(36)), tracked(ago(2)), tracked(0)])
        response = c.unary(TRACK, request, bearer(module_server.live_key))
    assert (response.accepted, response.failed) == (2, 1)
    [failed] = [r for r in response.results if r.status == "failed"]
    assert (failed.index, failed.errorCode) == (0, "INVALID_TIMESTAMP")
    assert failed.message == MESSAGE.format(field="timestamp", span="35 days")


def test_projects_set_late_window(module_server: ServerHandle, other: tuple[str, str]) -> None:
    project_id, key = other
    with ConnectClient(module_server.base_url) as c:
        with pytest.raises(RpcError):
            register(c, key, ago(100))
        out = cli(module_server, "set", "--late-window", "400", "--project", project_id)
        assert "late window 400 days" in out
        assert "400 days" in cli(module_server, "list")
        hundred = ago(100)
        kept = register(c, key, hundred, idem="hundred-days")  # a longer window accepts it
        register(c, key, ago(399))
        with pytest.raises(RpcError) as e:
            register(c, key, ago(401))
        assert e.value.message == MESSAGE.format(field="reportedTimestamp", span="400 days")

        cli(module_server, "set", "--late-window", "1", "--project", project_id)
        with pytest.raises(RpcError) as e:
            register(c, key, ago(1.1))
        assert e.value.message == MESSAGE.format(field="reportedTimestamp", span="1 day")
        # A retry of an event stored while the window was wider is the duplicate it is, not refused.
        again = register(c, key, hundred, idem="hundred-days")
        assert again.duplicate and again.eventId == kept.eventId
        assert register(c, module_server.live_key, ago(30)).eventId  # the other project keeps 35 days

        for bad in ("0", "3651", "-5"):
            out = cli(module_server, "set", "--late-window", bad, "--project", project_id, ok=False)
            assert "--late-window: must be 1 to 3650 days" in out, out
        cli(module_server, "set", "--late-window", "35", "--project", project_id)
        with pytest.raises(RpcError):
            register(c, key, ago(36))


def test_projects_set_time_zone(module_server: ServerHandle, other: tuple[str, str]) -> None:
    """The other project setting ``scrawn projects set`` takes: the time zone, refused when unknown."""
    project_id, _ = other
    out = cli(module_server, "set", "--time-zone", "Atlantis/Capital", "--project", project_id, ok=False)
    assert "--time-zone: unknown time zone 'Atlantis/Capital'" in out, out
    out = cli(module_server, "set", "--time-zone", "Asia/Kathmandu", "--project", project_id)
    assert "time zone Asia/Kathmandu" in out
    assert "Asia/Kathmandu" in cli(module_server, "list") and "UTC" in cli(module_server, "list")
    cli(module_server, "set", "--time-zone", "UTC", "--project", project_id)
