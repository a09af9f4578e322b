"""One caller's oversized message is refused alone (docs/wire-contract.md#errors): RESOURCE_EXHAUSTED naming
the limit, nothing of it stored, while the other callers sharing its HTTP/2 connection carry on and every one
of their calls is answered and stored. gRPC (grpcio, one channel) and Connect (httpx, one HTTP/2
connection), unary and client-streaming calls, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn.server.app import READ_MAX_BYTES
from tests.clients import REGISTER, STREAM, ConnectClient, GrpcClient, RpcError, bearer
from tests.conftest import ServerHandle
from tests.scenarios.test_durability import stored_events

BIG = 10 * 1024 * 1024  # past the 8 MiB a message may have
BUSY_CALLERS = 4
CALLS_AFTER = 5  # each busy caller's calls once the oversized one was refused: the connection still serves


class OneConnectionGrpcClient(GrpcClient):
    """A grpcio channel with an HTTP/2 connection of its own, shared by every thread that calls through it."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


@pytest.fixture(params=["grpc", "connect-http2"])
def client(request: pytest.FixtureRequest, module_server: ServerHandle) -> Iterator[Any]:
    made = (
        OneConnectionGrpcClient(module_server.grpc_target)
        if request.param == "grpc"
        else ConnectClient(module_server.base_url, binary=True, http2=True)
    )
    with made:
        yield made


def event(key: str, user_id: str = "isolated") -> ev.RegisterEventRequest:
    return ev.RegisterEventRequest(
        type=ev.BASIC_USAGE, userId=user_id, idempotencyKey=key, basicUsage=ev.BasicUsage(amount=2)
    )


def item(key: str, user_id: str = "isolated") -> ev.StreamEventRequest:
    return ev.StreamEventRequest(
        type=ev.BASIC_USAGE, userId=user_id, idempotencyKey=key, basicUsage=ev.BasicUsage(amount=2)
    )


def send_unary(client: Any, key: str, user_id: str, md: list[tuple[str, str]]) -> None:
    answer = client.unary(REGISTER, event(key, user_id), md)
    assert answer.idempotencyKey == key and answer.eventId


def send_stream(client: Any, key: str, user_id: str, md: list[tuple[str, str]]) -> None:
    # Two items per call, the oversized one (if any) second: nothing of a refused stream is stored.
    summary = client.stream(STREAM, [item(key + "-a"), item(key + "-b", user_id)], md)
    assert (summary.eventsProcessed, summary.eventsFailed) == (2, 0), summary


@pytest.mark.parametrize("send", [send_unary, send_stream], ids=["unary", "stream"])
def test_an_oversized_message_is_refused_alone(
    module_server: ServerHandle, client: Any, send: Callable[..., None], request: pytest.FixtureRequest
) -> None:
    md = bearer(module_server.live_key)
    prefix = request.node.callspec.id
    started = threading.Barrier(BUSY_CALLERS + 1)
    refused = threading.Event()
    sent: list[str] = []
    failures: list[tuple[str, RpcError | BaseException]] = []

    def busy(i: int) -> None:
        n, after = 0, 0
        while after < CALLS_AFTER:
            key = f"{prefix}-busy-{i}-{n}"
            sent.append(key)
            try:
                send(client, key, "isolated", md)
            except BaseException as e:  # every one is reported below, whatever it is
                failures.append((key, e))
                return
            if n == 0:
                started.wait(timeout=60)  # every busy caller has a call answered before the big one goes
            n += 1
            after += refused.is_set()

    threads = [threading.Thread(target=busy, args=(i,)) for i in range(BUSY_CALLERS)]
    for t in threads:
        t.start()
    started.wait(timeout=60)
    with pytest.raises(RpcError) as big:
        send(client, f"{prefix}-big", "x" * BIG, md)
    refused.set()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive()

    assert failures == []
    assert big.value.code == "resource_exhausted"
    assert str(READ_MAX_BYTES) in big.value.message  # the limit is named
    stored = {k for k in stored_events(module_server) if k.startswith(f"{prefix}-")}
    expected = set(sent) if send is send_unary else {f"{k}-{s}" for k in sent for s in "ab"}
    assert stored == expected  # every answered call stored, nothing of the refused one
