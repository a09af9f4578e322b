"""How the dashboard shows values: money in the project's currency with every exact decimal (never a float),
UTC times, and bar charts drawn as inline SVG on the server (no chart library, no script)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

from scrawn.money import format_amount
from scrawn.server.projects.types import ProjectMoney


@dataclass(frozen=True)
class Money:
    """Formats ledger amounts of one project: minor units (or major ones, per the project's amount unit)."""

    currency: str
    per_major: int  # minor units in one major unit
    major_amounts: bool  # the project's amounts are already whole currency units

    @classmethod
    def of(cls, project: ProjectMoney) -> Money:
        return cls(project.currency, project.minor_per_major(), project.amount_unit == "major")

    def __call__(self, amount: Decimal | None) -> str:
        if amount is None:
            return "—"
        major = amount if self.major_amounts or self.per_major == 1 else amount / self.per_major
        digits = format_amount(abs(major))
        whole, _, fraction = digits.partition(".")
        places = len(str(self.per_major)) - 1
        fraction = fraction.ljust(places, "0")  # 1.5 → 1.50; more decimals stay as they are, exact
        grouped = f"{int(whole):,}"
        sign = "−" if major < 0 else ""
        return f"{sign}{grouped}{'.' + fraction if fraction else ''} {self.currency}"


def when(ms: int | None) -> str:
    """A Unix-ms time as ``YYYY-MM-DD HH:MM:SS`` UTC."""
    if ms is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


@dataclass(frozen=True)
class Bar:
    label: str  # the bucket's start, shown under the chart and in the bar's title
    value: Decimal


def bar_chart(bars: list[Bar], title: str, shown: Money | None = None) -> Markup:
    """A labelled SVG bar chart (role="img" with a text alternative listing every value)."""
    if not any(b.value for b in bars):
        return Markup('<p class="empty">Nothing in this period yet.</p>')
    width, height, gap = 1000, 180, 2
    top = max((b.value for b in bars), default=Decimal(0))
    step = width / len(bars)
    parts: list[str] = []
    summary: list[str] = []
    for i, bar in enumerate(bars):
        text = shown(bar.value) if shown else format_amount(bar.value)
        summary.append(f"{bar.label}: {text}")
        # Decimal → pixels only for drawing; the value itself is shown exactly in the title.
        h = 0 if top <= 0 else int(bar.value * (height - 20) / top)
        x = i * step
        parts.append(
            f'<rect x="{x:.1f}" y="{height - 16 - max(h, 0)}" width="{max(step - gap, 1):.1f}" '
            f'height="{max(h, 0)}" class="bar"><title>{escape(bar.label)}: {escape(text)}</title></rect>'
        )
    parts.append(f'<text x="0" y="{height - 2}" class="axis">{escape(bars[0].label)}</text>')
    parts.append(
        f'<text x="{width}" y="{height - 2}" class="axis" text-anchor="end">{escape(bars[-1].label)}</text>'
    )
    label = escape(f"{title}. " + "; ".join(summary))
    # Every interpolated text was escaped above; the rest is numbers.
    return Markup(  # noqa: S704
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{label}">'
        f"{''.join(parts)}</svg>"
    )
