"""``pricing/models.py``'s price list: the bundled book is read once per process, yet every listing gives
the prices in force at its own time, for the entries whose prices change with dates or hours of the day
too, and marks the entries an override replaces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from genai_prices import data_snapshot
from genai_prices.types import ModelPrice

from scrawn.server.pricing import models
from scrawn.server.pricing.models import Override


def built_from_scratch(at: datetime) -> list[models.Rates]:
    found = [
        models._rates(prov.id, info, info.get_prices(at))
        for prov in data_snapshot.get_snapshot().providers
        for info in prov.models
    ]
    return sorted(found, key=lambda r: (r.provider, r.model))


def test_the_cached_book_prices_each_time_as_a_fresh_build_does() -> None:
    timed = [
        info
        for prov in data_snapshot.get_snapshot().providers
        for info in prov.models
        if not isinstance(info.prices, ModelPrice) and any(p.constraint for p in info.prices)
    ]
    assert timed  # the book has time-bound prices: the cache must not freeze them
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    for at in (
        now,
        now - timedelta(days=800),
        now + timedelta(hours=9),
        datetime(2024, 1, 1, 3, 30, tzinfo=UTC),
    ):
        assert models.book_rates(at) == built_from_scratch(at), at
    assert models.book_rates(now) == models.book_rates(now + timedelta(seconds=59))  # one minute, one build


def test_an_override_marks_only_the_entries_it_replaces() -> None:
    now = datetime.now(UTC)
    book = models.book_rates(now)
    first = book[0]
    override = Override(
        id="o1",
        model=first.model.lower(),
        provider=first.provider,
        effective_from=0,
        input=None,
        output=None,
        cache_read=None,
        cache_write=None,
        audio_minute=None,
    )
    marked = models.book_rates(now, [override])
    assert [r.in_force for r in marked].count(False) >= 1 and not marked[0].in_force
    assert all(r.in_force for r in models.book_rates(now))  # the cached entries were not changed
