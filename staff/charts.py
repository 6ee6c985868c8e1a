"""Server-rendered inline SVG bar charts (no JavaScript), with small counts hidden."""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup

SMALL_COUNT = 5
"""Counts below this are shown as "< 5", so a rare combination does not point at a person."""

HIDDEN = f"< {SMALL_COUNT}"


def shown(count: int) -> str:
    """A count as published: "< 5" when it is small but not zero."""
    return HIDDEN if 0 < count < SMALL_COUNT else str(count)


@dataclass(frozen=True)
class Bar:
    """One bar: its label, its true count (never published when small) and the shown value."""

    key: str
    label: str
    count: int

    @property
    def hidden(self) -> bool:
        """Whether the count is too small to publish."""
        return 0 < self.count < SMALL_COUNT

    @property
    def shown(self) -> str:
        """The published value."""
        return shown(self.count)


def bar_chart_svg(chart_id: str, title: str, bars: list[Bar], *, hidden_note: str) -> Markup:
    """A horizontal bar chart; a hidden count draws no bar, only "< 5": its size leaks nothing."""
    label_w, bar_w, value_w, row_h, pad = 220, 360, 60, 24, 8
    width = label_w + bar_w + value_w
    height = max(1, len(bars)) * row_h + 2 * pad
    peak = max((b.count for b in bars if not b.hidden), default=0) or 1
    title_id = f"chart-{chart_id}-title"
    parts = [
        Markup(
            '<svg class="chart" role="img" aria-labelledby="{}" viewBox="0 0 {} {}" width="100%"'
            ' preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
            '<title id="{}">{}</title>'
        ).format(title_id, width, height, title_id, title)
    ]
    for i, bar in enumerate(bars):
        y = pad + i * row_h
        text_y = y + row_h / 2 + 5
        label = bar.label if len(bar.label) <= 32 else bar.label[:31] + "…"
        parts.append(
            Markup('<text x="{}" y="{}" text-anchor="end" font-size="13">{}</text>').format(
                label_w - 8, text_y, label
            )
        )
        if bar.hidden:
            parts.append(
                Markup(
                    '<text x="{}" y="{}" font-size="13" font-style="italic">{} ({})</text>'
                ).format(label_w + 4, text_y, bar.shown, hidden_note)
            )
            continue
        length = round(bar_w * bar.count / peak, 1) if bar.count else 0
        parts.append(
            Markup(
                '<rect x="{}" y="{}" width="{}" height="{}" fill="#1f5f8b"></rect>'
                '<text x="{}" y="{}" font-size="13">{}</text>'
            ).format(label_w, y + 4, length, row_h - 8, label_w + length + 6, text_y, bar.shown)
        )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)
