"""Two fixes to hypercorn 0.18's HTTP/2 protocol, installed by ``scrawn serve`` (docs/configuration.md).

1. DATA (or its end) for a stream hypercorn no longer tracks raised ``KeyError`` out of the connection's
   read loop: the connection died and every call on it failed (CANCELLED, UNAVAILABLE), some after their
   events were stored. It happens whenever a request's frames arrive after hypercorn forgot its stream: a
   stream refused during shutdown (its HEADERS and DATA come in one read), or answered before its body
   ended. Such DATA is now dropped and its flow-control window handed back, so the connection's other calls
   carry on. Upstream: pgjones/hypercorn#334 and #312, open and unreleased.
2. A call arriving after SIGTERM was reset with NO_ERROR, which gRPC clients report as INTERNAL; it is reset
   with REFUSED_STREAM, which says that it was never processed: gRPC reports UNAVAILABLE, retried with the
   same idempotency key.

Only for the hypercorn version these were written against (0.18.x); another runs unpatched, with a warning.
"""

from __future__ import annotations

import logging
from importlib.metadata import version
from typing import Any

import h2.errors
import h2.events
import h2.settings

log = logging.getLogger("scrawn.serve")
FIXED_VERSION = "0.18."


def fixable(protocol: str) -> bool:
    """Whether the installed hypercorn is the version our fixes to its ``protocol`` were written against;
    if not, says so (it then runs unpatched)."""
    installed = version("hypercorn")
    if installed.startswith(FIXED_VERSION):
        return True
    log.warning(
        "hypercorn %s is not %sx: its %s protocol runs without Scrawn's fixes",
        installed,
        FIXED_VERSION,
        protocol,
    )
    return False


def install() -> None:
    import hypercorn.protocol
    from hypercorn.protocol.h2 import H2Protocol

    if not fixable("HTTP/2"):
        return

    class FixedH2Protocol(H2Protocol):
        async def _handle_events(self, events: list[h2.events.Event]) -> None:
            for event in events:
                if isinstance(event, h2.events.RequestReceived) and self.context.terminated.is_set():
                    self.connection.reset_stream(event.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
                    self.connection.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 0})
                elif (
                    isinstance(event, (h2.events.DataReceived, h2.events.StreamEnded))
                    and event.stream_id not in self.streams
                ):
                    if isinstance(event, h2.events.DataReceived):
                        self.connection.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                else:
                    await super()._handle_events([event])
            await self._flush()

    patched: Any = hypercorn.protocol
    patched.H2Protocol = FixedH2Protocol  # ProtocolWrapper looks the class up here for each connection
