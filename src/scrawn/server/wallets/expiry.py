"""Release expired reservations and expire credit on time, from every server process (each release and
each expiry happens once)."""

from __future__ import annotations

import asyncio
import logging

from scrawn.server.db.engine import Database, now_ms
from scrawn.server.ledger import service as ledger
from scrawn.server.wallets import repository as repo
from scrawn.server.wallets.service import expire_due

log = logging.getLogger("scrawn.wallets")


class ReservationExpirer:
    def __init__(self, db: Database, interval: float = 0.5) -> None:
        self._db = db
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="scrawn-reservation-expiry")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def sweep(self) -> int:
        async with self._db.read() as conn:  # a cheap look first, so idle servers never take the write lock
            if not await repo.any_due(conn, now_ms()):
                return 0
        async with self._db.write() as conn:
            return await expire_due(conn)

    async def sweep_lots(self) -> int:
        """Credit past its expiry (after reservations: a released hold may free credit to expire)."""
        async with self._db.read() as conn:
            if not await ledger.any_lot_due(conn, now_ms()):
                return 0
        async with self._db.write() as conn:
            return await ledger.expire_due_lots(conn)

    async def _run(self) -> None:
        while True:
            try:
                released = await self.sweep()
                if released:
                    log.info("released %d expired reservations", released)
                if expired := await self.sweep_lots():
                    log.debug("looked at %d credit lots due to expire", expired)
            except Exception:
                log.exception("reservation expiry sweep failed; retrying")
            await asyncio.sleep(self._interval)
