"""``pricing/repository.py`` on both databases: catalog versions (latest live one wins, a delete is a
version), scoping by project, and model price overrides stored exactly and soft-deleted."""

from __future__ import annotations

import uuid
from decimal import Decimal

from scrawn.server.pricing import repository
from scrawn.server.pricing.models import Override
from scrawn.server.pricing.repository import EVENT_PRICES, EXPRESSIONS, TAGS
from scrawn.server.pricing.types import NamedExpression, Tag
from scrawn.server.projects.service import create_project
from tests.server.fresh import Fresh

D = Decimal


async def test_versions_the_latest_live_one_wins(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    async with db.write() as conn:
        assert (await repository.insert_version(conn, TAGS, project_id, "CALL", D("1.5")))[0] == 1
        v2, at = await repository.insert_version(conn, TAGS, project_id, "CALL", D("2.000001"))
        await repository.insert_version(conn, TAGS, project_id, "PAGE", D(3))
    assert v2 == 2
    async with db.read() as conn:
        tags = await repository.current_tags(conn, project_id, None)
        assert tags == [Tag("CALL", D("2.000001"), 2, at), Tag("PAGE", D(3), 1, tags[1].created_at)]
        assert [t.key for t in await repository.current_tags(conn, project_id, {"PAGE", "NONE"})] == ["PAGE"]
        assert await repository.current_tags(conn, project_id, set()) == []


async def test_named_expressions_and_event_prices_read_their_own_columns(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    async with db.write() as conn:
        _, at = await repository.insert_version(conn, EXPRESSIONS, project_id, "TOTAL", "mul(2,3)")
        _, at2 = await repository.insert_version(conn, EVENT_PRICES, project_id, "pdf.page", "expr(TOTAL)")
    async with db.read() as conn:
        assert await repository.current_named(conn, EXPRESSIONS, project_id, None) == [
            NamedExpression("TOTAL", "mul(2,3)", 1, at)
        ]
        assert await repository.current_named(conn, EVENT_PRICES, project_id, {"pdf.page"}) == [
            NamedExpression("pdf.page", "expr(TOTAL)", 1, at2)
        ]


async def test_a_delete_is_a_version_and_a_later_put_revives(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    async with db.write() as conn:
        await repository.insert_version(conn, TAGS, project_id, "CALL", D(1))
        await repository.insert_deleted(conn, TAGS, project_id, "CALL")
        assert not await repository.is_live(conn, TAGS, project_id, "CALL")
        assert await repository.current_tags(conn, project_id, None) == []
        await repository.insert_deleted(conn, TAGS, project_id, "NEVER")  # no live version: no row
        assert (await repository.insert_version(conn, TAGS, project_id, "NEVER", D(1)))[0] == 1
        version, _ = await repository.insert_version(conn, TAGS, project_id, "CALL", D(4))
        assert version == 3  # after the first write (1) and the delete (2)
        assert await repository.is_live(conn, TAGS, project_id, "CALL")


async def test_entries_are_scoped_to_their_project(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    async with db.write() as conn:
        other = await create_project(conn, "other")
        await repository.insert_version(conn, TAGS, other, "CALL", D(9))
        await repository.insert_version(conn, TAGS, project_id, "CALL", D(1))
    async with db.read() as conn:
        assert [t.price for t in await repository.current_tags(conn, project_id, None)] == [D(1)]
        assert [t.version for t in await repository.current_tags(conn, other, None)] == [1]


def _override(model: str, effective_from: int, **rates: Decimal | None) -> Override:
    return Override(
        id=str(uuid.uuid4()),
        model=model,
        provider="",
        effective_from=effective_from,
        input=rates.get("input"),
        output=rates.get("output"),
        cache_read=None,
        cache_write=None,
        audio_minute=rates.get("audio_minute"),
        created_at=1_000,
    )


async def test_overrides_store_exact_rates_and_soft_delete(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    first = _override("my-model", 5, input=D("0.000001"), output=D("123456.5"))
    async with db.write() as conn:
        assert await repository.insert_override(conn, project_id, first) == first
        assert await repository.retire_override(conn, project_id, "my-model", "", 5, at=2_000)
        assert not await repository.retire_override(conn, project_id, "my-model", "", 5, at=2_000)
        second = await repository.insert_override(
            conn, project_id, _override("my-model", 5, audio_minute=D(2))
        )
        other = await repository.insert_override(conn, project_id, _override("another", 1, input=D(1)))
    async with db.read() as conn:
        assert await repository.live_overrides(conn, project_id, None) == [other, second]
        assert await repository.live_overrides(conn, project_id, ["my-model"]) == [second]
    async with db.write() as conn:
        assert await repository.delete_override(conn, project_id, second.id, at=3_000)
        assert not await repository.delete_override(conn, project_id, second.id, at=3_000)
        assert await repository.live_overrides(conn, project_id, ["my-model"]) == []
