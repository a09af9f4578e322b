"""Chart buckets in the project's time zone: the last N local hours, days or months (``usage/series.py``
draws their boundaries, across DST changes too, and the one width every boundary is a multiple of, so the
database can group rows by ``(t - start) / width`` and each group falls in exactly one bucket)."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from scrawn.server.dashboard import format as fmt
from scrawn.server.usage import series

LABELS = {"hour": "%m-%d %H:00", "day": "%Y-%m-%d", "month": "%Y-%m"}


@dataclass(frozen=True)
class Frame:
    tz: ZoneInfo
    by: str  # hour | day | month
    buckets: list[series.Bucket]
    width: int  # ms

    @property
    def start(self) -> int:
        return self.buckets[0].start_ms

    @property
    def end(self) -> int:
        return self.buckets[-1].end_ms

    def bars(self, groups: Iterable[tuple[int, Decimal]]) -> list[fmt.Bar]:
        """Every bucket, empty ones too, with the (group start, value) pairs added to the bucket that holds
        each group's start; labelled in local time."""
        starts = [b.start_ms for b in self.buckets]
        values = [Decimal(0)] * len(starts)
        for at, value in groups:
            if self.start <= at < self.end:
                values[bisect_right(starts, at) - 1] += value
        pattern = LABELS[self.by]
        return [
            fmt.Bar(datetime.fromtimestamp(b.start_ms / 1000, self.tz).strftime(pattern), value)
            for b, value in zip(self.buckets, values, strict=True)
        ]


def last(now: int, tz: ZoneInfo, by: str, count: int) -> Frame:
    """The ``count`` local ``by`` buckets that end with the one holding ``now`` (Unix ms)."""
    found = series.last(now, tz, by, count)
    return Frame(tz, by, found, series.width(found))
