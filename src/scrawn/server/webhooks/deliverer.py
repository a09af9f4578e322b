"""Deliver the outbox (docs/webhooks.md) from every server process: each due message is claimed with a
lease committed before the HTTP call, so one process sends it at a time; every attempt carries the
message's id as ``webhook-id``, so a receiver that dedupes on it sees each event once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.clock import now_ms
from scrawn.server.db.engine import Database
from scrawn.server.secretbox import SecretBox
from scrawn.server.webhooks import endpoints, repository, signing
from scrawn.server.webhooks.types import DeliveryAttempt, DueMessage

log = logging.getLogger("scrawn.webhooks")
LEASE_MS = 60_000  # longer than one HTTP attempt can take; a crashed sender's claim lapses after it
TIMEOUT = 10.0
BATCH = 50
USER_AGENT = "Scrawn-Webhooks/1"
MAX_ERROR = 500
MAX_RESPONSE = 1024  # bytes of an answer kept: enough to see why, never a receiver's whole page


@dataclass(frozen=True)
class Claim:
    project_id: str
    mode: str
    id: str
    payload: str
    lease_until: int
    url: str | None  # None: the endpoint was deleted
    secret: str
    signing_key: str


@dataclass(frozen=True)
class Outcome:
    """One delivery's result: the fields of its ``DeliveryAttempt`` after the message and attempt number."""

    url: str
    status_code: int | None
    error: str | None
    duration_ms: int
    attempted_at: int
    response_body: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookDeliverer:
    def __init__(self, db: Database, box: SecretBox, schedule: Sequence[int], interval: float = 0.5) -> None:
        self._db = db
        self._box = box
        self._schedule = tuple(schedule)
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self._stop = asyncio.Event()

    def start(self) -> None:
        self._http = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="scrawn-webhook-delivery")

    async def close(self) -> None:
        """Let attempts in flight finish and be logged (an attempt the receiver saw is never forgotten),
        then stop; past the HTTP timeout, cancel and hand the claims back."""
        self._stop.set()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=TIMEOUT + 5)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()

    async def _run(self) -> None:
        while not self._stop.is_set():
            sent = 0
            try:
                sent = await self.sweep()
            except Exception:
                log.exception("webhook delivery sweep failed; retrying")
            if not sent:  # more may be due right away after a full batch
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self._interval)

    async def sweep(self) -> int:
        """Send every message due now; returns how many were attempted."""
        now = now_ms()
        async with self._db.read() as conn:  # a cheap look first, so idle servers never take the write lock
            rows = await repository.due_messages(conn, now, BATCH)
        if not rows:
            return 0
        async with self._db.write() as conn:
            claims = [c for row in rows if (c := await self._claim(conn, row, now)) is not None]
        await asyncio.gather(*(self._deliver(c) for c in claims))
        return len(claims)

    async def _claim(self, conn: AsyncConnection, due: DueMessage, now: int) -> Claim | None:
        lease_until = now + LEASE_MS
        if not await repository.claim(conn, due, lease_until):
            return None
        message = await repository.message(conn, due.project_id, due.mode, due.id)
        assert message is not None  # claimed in this transaction
        # Read at delivery time: a URL changed since the event is where its retries go.
        endpoint = await endpoints.get(conn, self._box, due.project_id, due.mode)
        return Claim(
            due.project_id,
            due.mode,
            due.id,
            message.payload,
            lease_until,
            None if endpoint is None else endpoint.url,
            "" if endpoint is None else endpoint.secret,
            "" if endpoint is None else endpoint.signing_key,
        )

    async def _deliver(self, claim: Claim) -> None:
        try:
            outcome = await self._post(claim)
            await self._record(claim, outcome)
        except asyncio.CancelledError:  # shutting down: hand the message back now, not when the lease lapses
            await self._release(claim)
            raise
        except Exception:
            log.exception("webhook %s: delivery failed unexpectedly; its lease will lapse", claim.id)

    async def _release(self, claim: Claim) -> None:
        try:
            async with self._db.write() as conn:
                await repository.release(
                    conn, claim.project_id, claim.mode, claim.id, claim.lease_until, now_ms()
                )
        except Exception:
            log.warning(
                "webhook %s: could not release its lease; it lapses in %d s", claim.id, LEASE_MS // 1000
            )

    async def _post(self, claim: Claim) -> Outcome:
        attempted_at = now_ms()
        if claim.url is None:
            return Outcome("", None, "no webhook endpoint is configured", 0, attempted_at)
        assert self._http is not None
        headers = signing.sign(claim.id, attempted_at // 1000, claim.payload, claim.secret, claim.signing_key)
        headers |= {"content-type": "application/json", "user-agent": USER_AGENT}
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        body: str | None = None
        content = claim.payload.encode()
        try:
            async with self._http.stream("POST", claim.url, content=content, headers=headers) as response:
                status = response.status_code
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
                body = await first_bytes(response)
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}"[:MAX_ERROR]
        duration = int((time.monotonic() - started) * 1000)
        return Outcome(claim.url, status, error, duration, attempted_at, body)

    def _retry_at(self, attempts: int, now: int) -> int | None:
        """When to try again after ``attempts`` failed attempts; None once the schedule is spent."""
        if attempts > len(self._schedule):
            return None
        delay_ms = self._schedule[attempts - 1] * 1000
        return now + delay_ms + int(delay_ms * random.uniform(0, 0.1))  # spread a crowd of retries

    async def _record(self, claim: Claim, outcome: Outcome) -> None:
        async with self._db.write() as conn:
            row = await repository.lock_message(conn, claim.project_id, claim.mode, claim.id)
            attempt = row.attempts + 1
            # The delivery log's line: the outcome, for this message and attempt.
            line = DeliveryAttempt(claim.project_id, claim.mode, claim.id, attempt, **asdict(outcome))
            await repository.insert_attempt(conn, line)
            key = (conn, claim.project_id, claim.mode, claim.id)
            ours = row.status == "pending" and row.next_attempt_at == claim.lease_until
            if outcome.ok:
                await repository.mark_delivered(*key, attempt, outcome.attempted_at)
            elif ours:
                await repository.schedule_retry(
                    *key, attempt, outcome.error, self._retry_at(attempt, now_ms())
                )
            else:  # a replay meanwhile has already rescheduled it: keep that
                await repository.mark_failed_attempt(*key, attempt, outcome.error)
        if outcome.ok:
            log.info("webhook %s delivered (attempt %d)", claim.id, attempt)
        else:
            log.warning(
                "webhook %s attempt %d to %s failed: %s", claim.id, attempt, outcome.url, outcome.error
            )


async def first_bytes(response: httpx.Response) -> str:
    """The first MAX_RESPONSE bytes of the answer as text (invalid UTF-8 and NUL, which PostgreSQL's text
    refuses, replaced); the rest is never read."""
    kept = bytearray()
    async for chunk in response.aiter_bytes():
        kept += chunk
        if len(kept) >= MAX_RESPONSE:
            break
    return kept[:MAX_RESPONSE].decode("utf-8", errors="replace").replace("\x00", "\ufffd")
