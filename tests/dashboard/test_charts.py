"""``dashboard/charts.py``: the overview's local hours, days and months, and the one width the database
groups by, in zones with DST, a half-hour offset and a quarter-hour one; each quarter hour of the rollup
lands in the bucket that holds its start."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from scrawn.server.dashboard import charts

HOUR = 3_600_000


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).astimezone(UTC).timestamp() * 1000)


def test_days_in_a_half_hour_zone_start_at_local_midnight() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")
    frame = charts.last(ms("2026-12-03T10:00:00+05:30"), kolkata, "day", 30)
    assert len(frame.buckets) == 30 and frame.width == 24 * HOUR  # no DST: the database groups whole days
    assert frame.start == ms("2026-11-04T00:00:00+05:30")  # 18:30 UTC the day before
    slot_before_midnight = ms("2026-12-02T23:45:00+05:30")
    bars = frame.bars([(slot_before_midnight, Decimal(2)), (slot_before_midnight + 15 * 60_000, Decimal(3))])
    assert [(b.label, b.value) for b in bars[-2:]] == [("2026-12-02", Decimal(2)), ("2026-12-03", Decimal(3))]


def test_a_dst_day_is_23_or_25_hours_and_hours_follow_the_clock() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    days = charts.last(ms("2026-10-26T12:00:00+01:00"), berlin, "day", 3)
    assert [(b.end_ms - b.start_ms) // HOUR for b in days.buckets] == [24, 25, 24]
    assert days.width == HOUR  # boundaries an odd number of hours apart
    hours = charts.last(ms("2026-03-29T04:30:00+02:00"), berlin, "hour", 4)
    labels = [b.label for b in hours.bars([])]
    assert labels == ["03-29 00:00", "03-29 01:00", "03-29 03:00", "03-29 04:00"]  # no 02:00 that night


def test_months_in_a_quarter_hour_zone() -> None:
    frame = charts.last(ms("2026-12-03T10:00:00+05:45"), ZoneInfo("Asia/Kathmandu"), "month", 12)
    labels = [b.label for b in frame.bars([])]
    assert labels[0] == "2026-01" and labels[-1] == "2026-12" and len(labels) == 12
    assert frame.width % (15 * 60_000) == 0
    outside = [(frame.start - 1, Decimal(9)), (frame.end, Decimal(9))]
    assert sum(b.value for b in frame.bars(outside)) == 0
