"""``webhooks/repository.py`` against both databases: endpoints, the outbox (claim, lease, release, retry,
give up, replay) and the delivery log, as the typed values of ``webhooks/types.py``."""

from __future__ import annotations

from scrawn.server.webhooks import repository
from scrawn.server.webhooks.types import DeliveryAttempt, DueMessage, OutboxMessage
from tests.server.fresh import Fresh

MODE = "live"


def message(project_id: str, message_id: str, at: int) -> OutboxMessage:
    return OutboxMessage(
        project_id=project_id,
        mode=MODE,
        id=message_id,
        type="balance.low",
        payload='{"type":"balance.low"}',
        status="pending",
        attempts=0,
        next_attempt_at=at,
        delivered_at=None,
        last_error=None,
        created_at=at,
    )


async def test_endpoints_are_created_once_changed_and_deleted(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    async with db.write() as conn:
        assert not await repository.has_endpoint(conn, project_id, MODE)
        created = await repository.insert_endpoint(conn, project_id, MODE, "https://a.example", "s1", "k1")
        assert created is not None
        assert (
            await repository.insert_endpoint(conn, project_id, MODE, "https://b.example", "s2", "k2") is None
        )
        found = await repository.endpoint(conn, project_id, MODE)
        assert found is not None
        assert (found.url, found.secret, found.signing_key) == ("https://a.example", "s1", "k1")
        assert found.created_at == found.updated_at == created
        updated = await repository.update_endpoint(conn, project_id, MODE, "https://c.example", "s3", "k3")
        changed = await repository.endpoint(conn, project_id, MODE)
        assert changed is not None
        assert (changed.url, changed.secret, changed.created_at, changed.updated_at) == (
            "https://c.example",
            "s3",
            created,
            updated,
        )
        assert await repository.has_endpoint(conn, project_id, MODE)
        assert await repository.endpoint(conn, project_id, "test") is None
        assert await repository.delete_endpoint(conn, project_id, MODE)
        assert not await repository.delete_endpoint(conn, project_id, MODE)


async def test_a_due_message_is_claimed_by_one_and_released(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    async with db.write() as conn:
        await repository.insert_message(conn, message(project_id, "msg_a", 1000))
        await repository.insert_message(conn, message(project_id, "msg_b", 500))
        await repository.insert_message(conn, message(project_id, "msg_later", 9000))
    async with db.read() as conn:
        due = await repository.due_messages(conn, 2000, 10)
        assert due == [
            DueMessage(project_id, MODE, "msg_b", 500),
            DueMessage(project_id, MODE, "msg_a", 1000),
        ]
        assert [d.id for d in await repository.due_messages(conn, 2000, 1)] == ["msg_b"]
        assert await repository.count_pending(conn) == 3
    async with db.write() as conn:
        assert await repository.claim(conn, due[0], 60_000)
        assert not await repository.claim(conn, due[0], 70_000)  # seen before the first claim: lost
        assert [d.id for d in await repository.due_messages(conn, 2000, 10)] == ["msg_a"]
        await repository.release(conn, project_id, MODE, "msg_b", 70_000, 2500)  # not our lease: kept
        leased = await repository.message(conn, project_id, MODE, "msg_b")
        assert leased is not None and leased.next_attempt_at == 60_000
        await repository.release(conn, project_id, MODE, "msg_b", 60_000, 2500)
        released = await repository.lock_message(conn, project_id, MODE, "msg_b")
        assert released.next_attempt_at == 2500 and released.status == "pending"
        assert await repository.message(conn, project_id, MODE, "msg_none") is None


async def test_attempts_retry_give_up_and_replay(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    key = (project_id, MODE, "msg_a")
    async with db.write() as conn:
        await repository.insert_message(conn, message(project_id, "msg_a", 1000))
        await repository.insert_message(conn, message(project_id, "msg_ok", 1001))
        for n in (2, 1):  # the log comes back in attempt order
            attempt = DeliveryAttempt(*key, n, "https://a.example", 500, "HTTP 500", 12, 1000 + n)
            await repository.insert_attempt(conn, attempt)
        await repository.schedule_retry(conn, *key, 1, "HTTP 500", 5000)
        retried = await repository.lock_message(conn, *key)
        assert (retried.status, retried.attempts, retried.next_attempt_at, retried.last_error) == (
            "pending",
            1,
            5000,
            "HTTP 500",
        )
        await repository.mark_failed_attempt(conn, *key, 2, "timeout")  # the schedule stays
        kept = await repository.lock_message(conn, *key)
        assert (kept.attempts, kept.next_attempt_at, kept.last_error) == (2, 5000, "timeout")
        await repository.schedule_retry(conn, *key, 3, "HTTP 500", None)  # the schedule is spent
        await repository.mark_delivered(conn, project_id, MODE, "msg_ok", 1, 1200)
    async with db.read() as conn:
        failed = await repository.message(conn, *key)
        assert failed is not None and (failed.status, failed.next_attempt_at) == ("failed", None)
        delivered = await repository.message(conn, project_id, MODE, "msg_ok")
        assert delivered is not None
        assert (delivered.status, delivered.delivered_at, delivered.next_attempt_at) == (
            "delivered",
            1200,
            None,
        )
        assert await repository.count_pending(conn) == 0
        assert [a.attempt for a in await repository.attempts(conn, *key)] == [1, 2]
        assert [m.id for m in await repository.list_messages(conn, project_id, MODE, None, 10)] == [
            "msg_ok",
            "msg_a",
        ]
        assert [m.id for m in await repository.list_messages(conn, project_id, MODE, "failed", 10)] == [
            "msg_a"
        ]
    async with db.write() as conn:
        await repository.requeue(conn, *key, 8000)
    async with db.read() as conn:
        replayed = await repository.message(conn, *key)
        assert replayed is not None
        assert (replayed.status, replayed.next_attempt_at, replayed.attempts) == ("pending", 8000, 3)
        assert await repository.count_pending(conn) == 1
