"""The chart: opt-in rate per category over time, a marker where the policy revision changed.

Drawn with matplotlib (``pip install 'asgi-consent[stats]'``) through its object-oriented API
and the Agg/SVG canvases only: no pyplot, no global figure state, safe in a server thread.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Literal

try:
    from matplotlib import rc_context
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator, PercentFormatter
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the statistics chart needs matplotlib: pip install 'asgi-consent[stats]'"
    ) from exc

from .query import Bucket, Statistics

__all__ = ["render_chart"]

# Colour-blind safe (Okabe and Ito), in a fixed order so a category keeps its colour.
_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
_UNIT = {"day": "day", "week": "week", "month": "month"}


def _merged(stats: Statistics) -> list[Bucket]:
    """One bucket per time step (values of a --split added together)."""
    merged: dict[int, Bucket] = {}
    for bucket in stats.buckets:
        whole = merged.setdefault(bucket.start, Bucket(bucket.start, bucket.end, None))
        whole.add(bucket)
    return [merged[start] for start in sorted(merged)]


def _when(ts: int) -> float:
    """Unix seconds as matplotlib's date number (days), in UTC."""
    return float(date2num(datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)))  # type: ignore[no-untyped-call]


def render_chart(
    stats: Statistics, fmt: Literal["svg", "png"], *, title: str | None = None
) -> bytes:
    """The chart as SVG or PNG bytes."""
    buckets = _merged(stats)
    with rc_context(
        {
            "font.size": 10,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "svg.fonttype": "none",
            "svg.hashsalt": "asgi-consent",
        }
    ):
        figure = Figure(figsize=(9, 5), dpi=110, layout="constrained")
        rates = figure.add_subplot()
        volume = rates.twinx()
        rates.set_zorder(volume.get_zorder() + 1)
        rates.patch.set_visible(False)
        middles = [_when((b.start + b.end) // 2) for b in buckets]
        width = [(b.end - b.start) / 86_400 * 0.8 for b in buckets]
        volume.bar(
            middles,
            [b.decisions for b in buckets],
            width=width,
            color="#d9d9d9",
            label=f"decisions per {_UNIT[stats.by]} (right axis)",
        )
        volume.set_ylabel(f"decisions per {_UNIT[stats.by]}", color="#666666")
        volume.tick_params(axis="y", colors="#666666")
        volume.yaxis.set_major_locator(MaxNLocator(integer=True))
        volume.spines["right"].set_visible(True)
        volume.spines["right"].set_color("#999999")
        for index, key in enumerate(stats.categories):
            points: list[tuple[float, float]] = []
            for middle, bucket in zip(middles, buckets, strict=True):
                share = bucket.share(key)
                if share is not None:
                    points.append((middle, 100 * share))
            if not points:
                continue
            rates.plot(
                [m for m, _ in points],
                [s for _, s in points],
                marker="o",
                markersize=4,
                linewidth=2,
                color=_COLOURS[index % len(_COLOURS)],
                label=key,
            )
        for revision in stats.revisions[1:]:
            moment = _when(revision.first)
            rates.axvline(moment, color="#444444", linestyle="--", linewidth=1)
            rates.annotate(
                f"revision {revision.revision[:8]}",
                xy=(moment, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(4, -4),
                textcoords="offset points",
                va="top",
                fontsize=8.5,
                color="#444444",
            )
        rates.set_ylim(-3, 103)  # room for the markers at 0 % and 100 %
        rates.set_yticks(range(0, 101, 20))
        rates.yaxis.set_major_formatter(PercentFormatter(100))
        rates.set_ylabel("opt-in rate (granted / offered)")
        counted = "latest decision per visitor" if stats.per == "visitor" else "every decision"
        rates.set_xlabel(f"{_UNIT[stats.by]} (UTC); counted: {counted}")
        locator = AutoDateLocator(minticks=3, maxticks=10)  # type: ignore[no-untyped-call]
        rates.xaxis.set_major_locator(locator)
        rates.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
        rates.grid(axis="y", color="#e6e6e6")
        rates.set_title(title or "Consent: opt-in rate per category", loc="left", fontweight="bold")
        lines, labels = rates.get_legend_handles_labels()
        bars, bar_labels = volume.get_legend_handles_labels()
        if stats.revisions[1:]:
            from matplotlib.lines import Line2D

            lines.append(Line2D([], [], color="#444444", linestyle="--", linewidth=1))
            labels.append("policy revision changed")
        figure.legend(
            lines + bars,
            labels + bar_labels,
            loc="outside lower center",
            ncols=min(4, len(lines) + len(bars)),
            frameon=False,
        )
        if not buckets:
            rates.text(
                0.5, 0.5, "no decisions in this range", transform=rates.transAxes, ha="center"
            )
        out = io.BytesIO()
        metadata = {"Date": None} if fmt == "svg" else {}
        figure.savefig(out, format=fmt, metadata=metadata)
        return out.getvalue()
