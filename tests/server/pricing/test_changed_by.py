"""Who changed the price catalog (``changed_by``) on both databases: each version of a tag, expression or
event price, and each model price override, records the key id or ``cli`` that wrote it, deletes too."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from scrawn.server.db.schema import event_prices, expressions, model_price_overrides, tags
from scrawn.server.pricing import overrides
from scrawn.server.pricing import service as catalog
from tests.server.fresh import Fresh

RATES: dict[str, Decimal | None] = {"input": Decimal(100), "output": Decimal(200)}


async def test_each_version_records_who_wrote_it(fresh: Fresh) -> None:
    db, pid = fresh.db, fresh.project_id
    async with db.write() as conn:
        first = await catalog.put_tag(conn, pid, "CALL", Decimal(1), by="key-a")
        second = await catalog.put_tag(conn, pid, "CALL", Decimal(2), by="cli")
        named = await catalog.put_expression(conn, pid, "TWICE", "mul(tag(CALL),2)", by="key-b")
        price = await catalog.put_event_price(conn, pid, "pdf.page", "expr(TWICE)", by="key-c")
        unknown = await catalog.put_tag(conn, pid, "OLD", Decimal(3))  # a caller that names no one
    assert (first.changed_by, second.changed_by, named.changed_by) == ("key-a", "cli", "key-b")
    assert (price.changed_by, unknown.changed_by) == ("key-c", None)
    async with db.read() as conn:  # the reads return who wrote the live version
        assert await catalog.list_tags(conn, pid) == [second, unknown]
        assert await catalog.current_expressions(conn, pid, None) == {"TWICE": named}
        assert await catalog.current_event_prices(conn, pid, None) == {"pdf.page": price}

    async with db.write() as conn:
        await catalog.delete_event_price(conn, pid, "pdf.page", by="key-d")
        await catalog.delete_expression(conn, pid, "TWICE", by="cli")
        await catalog.delete_tag(conn, pid, "CALL", by="key-e")
    async with db.read() as conn:
        found = {
            table.name: [
                tuple(r)
                for r in await conn.execute(
                    select(table.c.version, table.c.deleted, table.c.changed_by)
                    .where(table.c.project_id == pid)
                    .order_by(table.c.version)
                )
            ]
            for table in (event_prices, expressions)
        }
        tag_rows = [
            tuple(r)
            for r in await conn.execute(
                select(tags.c.version, tags.c.deleted, tags.c.changed_by)
                .where(tags.c.project_id == pid, tags.c.key == "CALL")
                .order_by(tags.c.version)
            )
        ]
    assert found["event_prices"] == [(1, False, "key-c"), (2, True, "key-d")]
    assert found["expressions"] == [(1, False, "key-b"), (2, True, "cli")]
    assert tag_rows == [(1, False, "key-a"), (2, False, "cli"), (3, True, "key-e")]


async def test_overrides_record_who_made_them_and_who_deleted_them(fresh: Fresh) -> None:
    db, pid = fresh.db, fresh.project_id
    async with db.write() as conn:
        old, _ = await overrides.put_override(
            conn, pid, model="m1", provider="", effective_from=0, rates=RATES, by="key-a"
        )
        new, created = await overrides.put_override(
            conn, pid, model="m1", provider="", effective_from=0, rates=RATES, by="cli"
        )
        other, _ = await overrides.put_override(
            conn, pid, model="m2", provider="", effective_from=0, rates=RATES, by="key-b"
        )
    assert (old.changed_by, new.changed_by, other.changed_by, created) == ("key-a", "cli", "key-b", False)
    async with db.read() as conn:
        assert await overrides.list_overrides(conn, pid) == [new, other]
    async with db.write() as conn:
        await overrides.delete_override(conn, pid, other.id, by="key-c")
    t = model_price_overrides
    async with db.read() as conn:
        rows = dict(
            tuple(r) for r in await conn.execute(select(t.c.id, t.c.changed_by).where(t.c.project_id == pid))
        )
    # the replaced row records who replaced it; the deleted row who deleted it
    assert rows == {old.id: "cli", new.id: "cli", other.id: "key-c"}
