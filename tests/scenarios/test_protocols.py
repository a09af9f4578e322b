from __future__ import annotations

import pytest

from scrawn._proto.event.v1 import event_pb2 as ev
from tests.clients import REGISTER, STREAM, RpcError, all_clients, bearer


def test_every_protocol_registers_and_streams(server) -> None:
    for client in all_clients(server):
        with client:
            res = client.unary(
                REGISTER,
                ev.RegisterEventRequest(type=ev.BASIC_USAGE, userId="u", basicUsage=ev.BasicUsage(amount=3)),
                bearer(server.live_key),
            )
            assert res.message == "Event stored successfully", type(client)
            items = [
                ev.StreamEventRequest(type=ev.BASIC_USAGE, userId="u", basicUsage=ev.BasicUsage(amount=1)),
                ev.StreamEventRequest(type=ev.BASIC_USAGE, userId="", basicUsage=ev.BasicUsage(amount=1)),
            ]
            summary = client.stream(STREAM, items, bearer(server.live_key))
            assert (summary.eventsProcessed, summary.eventsFailed) == (2, 1), type(client)
            assert summary.failures[0].eventIndex == 1
            with pytest.raises(RpcError) as err:
                client.unary(REGISTER, ev.RegisterEventRequest(type=ev.BASIC_USAGE, userId="u"), [])
            assert (err.value.code, err.value.message) == ("unauthenticated", "Missing Authorization header")
