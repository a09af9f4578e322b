"""``client.events``: typed, non-blocking event tracking in the shape of ``settle.events`` —
``track(...)``, ``flush()``, ``pending_count``, ``dropped_count`` — on the client's one ``track()`` buffer."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scrawn._client_base import AsyncClient, ClientBase, SyncClient
    from scrawn.types import JSONObject, Number


class _EventsBase:
    """What both namespaces share: ``track`` (plain on both clients: it only queues) and the counters."""

    __slots__ = ("_client",)

    def __init__(self, client: ClientBase) -> None:
        self._client = client

    def track(
        self,
        *,
        user_id: str,
        event_type: str,
        quantity: Number = 1,
        product_ref: str | None = None,
        metadata: JSONObject | str | None = None,
        idempotency_key: str | None = None,
        timestamp: datetime | int | None = None,
    ) -> bool:
        """Queue one typed event and return at once (see :meth:`scrawn.Scrawn.track`)."""
        return self._client.track(
            user_id=user_id,
            event_type=event_type,
            quantity=quantity,
            product_ref=product_ref,
            metadata=metadata,
            idempotency_key=idempotency_key,
            timestamp=timestamp,
        )

    @property
    def pending_count(self) -> int:
        return self._client.pending_count

    @property
    def dropped_count(self) -> int:
        return self._client.dropped_count

    def __repr__(self) -> str:
        return f"<scrawn events of {self._client!r}>"


class Events(_EventsBase):
    """``Scrawn.events``. ``client.events.track(user_id=..., event_type="AI_QUERY", quantity=1)`` is
    ``client.track(...)`` with the same arguments; ``flush``/``pending_count``/``dropped_count`` are the
    client's."""

    __slots__ = ()
    _client: SyncClient

    def __init__(self, client: SyncClient) -> None:
        super().__init__(client)

    def flush(self, timeout: float | None = None) -> bool:
        """:meth:`scrawn.Scrawn.flush`: wait until everything tracked before it is settled."""
        return self._client.flush(timeout)


class AsyncEvents(_EventsBase):
    """``AsyncScrawn.events``: ``track`` is a plain method (nothing to await), ``flush`` is awaited."""

    __slots__ = ()
    _client: AsyncClient

    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client)

    async def flush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """:meth:`scrawn.AsyncScrawn.flush`: wait until everything tracked before it is settled."""
        return await self._client.flush(timeout)


__all__ = ["AsyncEvents", "Events"]
