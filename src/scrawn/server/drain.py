"""A call answered before its request body has all arrived (an oversized message, refused as soon as its
length is known) reads the rest of that body and drops it before the answer ends.

Why: hypercorn hands each HTTP/2 stream's body to the app through a queue of ten messages. When the app stops
reading, the queue fills and hypercorn's read loop for the whole connection waits on it for ever, stalling
every other call on that connection; and once the answer has ended hypercorn forgets the stream, so the body
still arriving ends the connection with a ``KeyError`` (server/hypercorn_h2.py). Reading to the end costs the
remaining bytes' bandwidth, never memory: nothing read here is kept."""

from __future__ import annotations

from typing import Any

Message = dict[str, Any]
ASGIApp = Any


def _ends_body(message: Message) -> bool:
    return message["type"] == "http.disconnect" or not message.get("more_body", False)


def read_body_before_answering(app: ASGIApp) -> ASGIApp:
    """Wrap an HTTP app so the message that ends its response waits for the request body to end."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        ended = False
        trailers = False

        async def tracked_receive() -> Message:
            nonlocal ended
            message: Message = await receive()
            ended = ended or _ends_body(message)
            return message

        async def draining_send(message: Message) -> None:
            nonlocal trailers
            kind = message["type"]
            if kind == "http.response.start":
                trailers = bool(message.get("trailers", False))
            last = (
                kind == "http.response.body" and not trailers and not message.get("more_body", False)
            ) or (kind == "http.response.trailers" and not message.get("more_trailers", False))
            while last and not ended:
                await tracked_receive()  # dropped: the answer no longer depends on it
            await send(message)

        await app(scope, tracked_receive, draining_send)

    return wrapped
