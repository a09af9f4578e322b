"""Usage time series: hour, day or month buckets in an IANA time zone (zoneinfo).

A bucket is the run of instants whose local calendar hour (day, month) is the same, so buckets follow the
local clock across DST changes: a spring-forward day lasts 23 hours and has no 02:00 bucket; a fall-back
day lasts 25 hours and has two 02:00 hour buckets, told apart by their offsets (``02:00+02:00`` and
``02:00+01:00``). Each bucket is labelled by its local start time in ISO 8601 with its offset.

Bucket boundaries are computed in Python (whole seconds: offsets change on whole seconds); the database sums
records per *slot*, the largest span that divides every boundary (an hour for Europe/Berlin), with plain
integer arithmetic that SQLite and PostgreSQL evaluate alike; each slot then falls in exactly one bucket.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.clock import time_zone
from scrawn.server.usage import repository
from scrawn.server.usage.queries import Totals, totals_of
from scrawn.server.usage.records import fail
from scrawn.server.usage.types import Filter

BUCKETS = ("hour", "day", "month")
MAX_BUCKETS = 10_000
# Longer than any bucket can last (a bucket may absorb a repeated hour): search windows, in seconds.
_SPAN = {"hour": 4 * 3600, "day": 3 * 86_400, "month": 35 * 86_400}

Key = tuple[int, ...]


def check_bucket(value: str) -> str:
    if value not in BUCKETS:
        raise fail("bucket", "must be hour, day or month")
    return value


def check_time_zone(value: str) -> ZoneInfo:
    try:
        return time_zone(value or "UTC")
    except ValueError as e:
        raise fail("timeZone", str(e)) from None


def _key(seconds: int, tz: ZoneInfo, bucket: str) -> Key:
    """The local calendar label of an instant; ``fold`` orders a repeated (fall-back) stretch after the
    first one."""
    local = datetime.fromtimestamp(seconds, tz)
    if bucket == "hour":
        return (local.year, local.month, local.day, local.hour, local.fold)
    if bucket == "day":
        return (local.year, local.month, local.day, local.fold)
    return (local.year, local.month, local.fold)


def _first_after(lo: int, hi: int, tz: ZoneInfo, bucket: str, key: Key) -> int:
    """The first second in (lo, hi] whose key exceeds ``key`` (key(lo) ≤ key < key(hi))."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _key(mid, tz, bucket) > key:
            hi = mid
        else:
            lo = mid
    return hi


def _wall_floor(seconds: int, tz: ZoneInfo, bucket: str) -> datetime:
    local = datetime.fromtimestamp(seconds, tz).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    if bucket == "hour":
        return local
    local = local.replace(hour=0)
    return local if bucket == "day" else local.replace(day=1)


def _wall_next(wall: datetime, bucket: str) -> datetime:
    if bucket == "hour":
        return wall + timedelta(hours=1)
    if bucket == "day":
        return wall + timedelta(days=1)
    if wall.month == 12:
        return wall.replace(year=wall.year + 1, month=1)
    return wall.replace(month=wall.month + 1)


def _instant(wall: datetime, tz: ZoneInfo) -> int:
    return int(wall.replace(tzinfo=tz).timestamp())


def bucket_start(seconds: int, tz: ZoneInfo, bucket: str) -> int:
    """The first second of the bucket holding ``seconds``."""
    key = _key(seconds, tz, bucket)
    guess = _instant(_wall_floor(seconds, tz, bucket), tz)  # fast path: no transition nearby
    if guess <= seconds and _key(guess, tz, bucket) == key and _key(guess - 1, tz, bucket) < key:
        return guess
    lo = seconds - _SPAN[bucket]
    while _key(lo, tz, bucket) >= key:
        lo -= _SPAN[bucket]
    hi = seconds  # the first second in (lo, seconds] whose key is >= key
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _key(mid, tz, bucket) >= key:
            hi = mid
        else:
            lo = mid
    return hi


def bucket_end(start: int, tz: ZoneInfo, bucket: str) -> int:
    """The first second after the bucket that begins at ``start``."""
    key = _key(start, tz, bucket)
    guess = _instant(_wall_next(_wall_floor(start, tz, bucket), bucket), tz)
    if guess > start and _key(guess, tz, bucket) > key and _key(guess - 1, tz, bucket) <= key:
        return guess
    hi = start + _SPAN[bucket]
    while _key(hi, tz, bucket) <= key:
        hi += _SPAN[bucket]
    return _first_after(start, hi, tz, bucket, key)


@dataclass
class Bucket:
    start_ms: int
    end_ms: int
    label: str
    totals: Totals = field(default_factory=Totals)


def buckets(start_ms: int, end_ms: int, tz: ZoneInfo, bucket: str) -> list[Bucket]:
    """Every bucket that meets [start_ms, end_ms), oldest first; at most MAX_BUCKETS."""
    found: list[Bucket] = []
    at = bucket_start(start_ms // 1000, tz, bucket)
    while at * 1000 < end_ms:
        if len(found) == MAX_BUCKETS:
            raise fail("filter.endTime", f"the range holds more than {MAX_BUCKETS} {bucket} buckets")
        end = bucket_end(at, tz, bucket)
        found.append(Bucket(at * 1000, end * 1000, datetime.fromtimestamp(at, tz).isoformat()))
        at = end
    return found


def last(now_ms: int, tz: ZoneInfo, bucket: str, count: int) -> list[Bucket]:
    """The ``count`` buckets that end with the one holding ``now_ms``, oldest first (charts of "the last 30
    days" in a zone)."""
    at = bucket_start(now_ms // 1000, tz, bucket)
    for _ in range(count - 1):
        at = bucket_start(at - 1, tz, bucket)
    return buckets(at * 1000, now_ms + 1, tz, bucket)


def width(found: list[Bucket]) -> int:
    """The widest span (ms) that every boundary of ``found`` is the first start plus a multiple of: rows
    grouped by ``(t - start) // width`` fall in one bucket each (a day in a zone without DST)."""
    first = found[0].start_ms
    return math.gcd(*(b.start_ms - first for b in found), found[-1].end_ms - first)


async def series(
    conn: AsyncConnection, project_id: str, mode: str, f: Filter, tz: ZoneInfo, bucket: str
) -> list[Bucket]:
    assert f.start is not None and f.end is not None
    found = buckets(f.start, f.end, tz, bucket)
    starts = [b.start_ms for b in found]
    slot = math.gcd(*starts, found[-1].end_ms)  # every boundary is a multiple of it
    for row in await repository.totals_by_slot(conn, project_id, mode, f, slot):
        index = bisect_right(starts, int(row.slot) * slot) - 1
        found[index].totals.add(totals_of(row))
    return found
