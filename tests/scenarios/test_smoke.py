from __future__ import annotations

import grpc

from scrawn._proto.event.v1 import event_pb2 as ev


def test_register_event_over_grpc_is_billed(server) -> None:
    with grpc.insecure_channel(server.grpc_target) as channel:
        call = channel.unary_unary(
            "/event.v1.EventService/RegisterEvent",
            request_serializer=ev.RegisterEventRequest.SerializeToString,
            response_deserializer=ev.RegisterEventResponse.FromString,
        )
        res = call(
            ev.RegisterEventRequest(type=ev.BASIC_USAGE, userId="u1", basicUsage=ev.BasicUsage(amount=7)),
            metadata=[("authorization", f"Bearer {server.live_key}")],
        )
    assert res.message == "Event stored successfully"
    assert res.userId == "u1" and res.eventType == "BASIC_USAGE" and not res.duplicate
