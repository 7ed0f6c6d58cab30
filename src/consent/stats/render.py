"""Statistics as text: an aligned table, JSON and CSV (what ``consent stats`` prints)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from ..receipts import format_time
from .query import Bucket, Statistics

__all__ = ["as_csv", "as_json", "as_table", "rows"]


def _label(stats: Statistics, bucket: Bucket) -> str:
    day = format_time(bucket.start)[:10]
    if stats.by == "month":
        return day[:7]
    if stats.by == "week":
        return f"week of {day}"
    return day


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def rows(stats: Statistics) -> list[dict[str, Any]]:
    """One flat record per bucket (and split value): counts, and shares as fractions 0-1."""
    out = []
    for bucket in stats.buckets:
        record: dict[str, Any] = {
            "start": format_time(bucket.start),
            "end": format_time(bucket.end),
        }
        if stats.split is not None:
            record[stats.split] = bucket.split
        record["decisions"] = bucket.decisions
        record["accept_all"] = bucket.accept_all
        record["reject_all"] = bucket.reject_all
        record["custom"] = bucket.custom
        record["gpc"] = bucket.gpc
        for event in ("given", "refused", "updated", "withdrawn"):
            record[f"event_{event}"] = bucket.events.get(event, 0)
        for key in stats.categories:
            record[f"{key}_granted"] = bucket.granted.get(key, 0)
            record[f"{key}_offered"] = bucket.offered.get(key, 0)
        out.append(record)
    return out


def as_json(stats: Statistics) -> str:
    """The statistics as one JSON document (counts and shares; times in RFC 3339, UTC)."""
    buckets = []
    for record, bucket in zip(rows(stats), stats.buckets, strict=True):
        item: dict[str, Any] = {"start": record["start"], "end": record["end"]}
        if stats.split is not None:
            item[stats.split] = bucket.split
        item.update(
            decisions=bucket.decisions,
            choices={
                "accept_all": bucket.accept_all,
                "reject_all": bucket.reject_all,
                "custom": bucket.custom,
            },
            gpc=bucket.gpc,
            events={
                e: bucket.events.get(e, 0) for e in ("given", "refused", "updated", "withdrawn")
            },
            categories={
                key: {
                    "granted": bucket.granted.get(key, 0),
                    "offered": bucket.offered.get(key, 0),
                    "share": bucket.share(key),
                }
                for key in stats.categories
            },
        )
        buckets.append(item)
    document = {
        "per": stats.per,
        "by": stats.by,
        "split": stats.split,
        "since": None if stats.since is None else format_time(stats.since),
        "until": None if stats.until is None else format_time(stats.until),
        "categories": stats.categories,
        "buckets": buckets,
        "revisions": [
            {
                "revision": r.revision,
                "first": format_time(r.first),
                "last": format_time(r.last),
                "decisions": r.decisions,
            }
            for r in stats.revisions
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def as_csv(stats: Statistics) -> str:
    """One CSV line per bucket (and split value): counts only (shares are their quotients)."""
    records = rows(stats)
    header = list(records[0]) if records else _csv_header(stats)
    out = io.StringIO()
    writer = csv.DictWriter(out, header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


def _csv_header(stats: Statistics) -> list[str]:
    header = ["start", "end"]
    if stats.split is not None:
        header.append(stats.split)
    header += ["decisions", "accept_all", "reject_all", "custom", "gpc"]
    header += [f"event_{e}" for e in ("given", "refused", "updated", "withdrawn")]
    for key in stats.categories:
        header += [f"{key}_granted", f"{key}_offered"]
    return header


def as_table(stats: Statistics) -> str:
    """An aligned text table: decisions, then percentages (of decisions; a category's of the
    decisions that offered it), then the revisions found."""
    header: list[str] = [stats.by]
    if stats.split is not None:
        header.append(stats.split)
    header += ["decisions", "accept all %", "reject all %", "custom %", "GPC %"]
    header += [f"{key} %" for key in stats.categories]
    body = []
    for bucket in stats.buckets:
        line = [_label(stats, bucket)]
        if stats.split is not None:
            line.append(bucket.split or "")
        line += [
            str(bucket.decisions),
            _pct(bucket.fraction(bucket.accept_all)),
            _pct(bucket.fraction(bucket.reject_all)),
            _pct(bucket.fraction(bucket.custom)),
            _pct(bucket.fraction(bucket.gpc)),
        ]
        line += [_pct(bucket.share(key)) for key in stats.categories]
        body.append(line)
    widths = [
        max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)
    ]
    numeric = [i >= (2 if stats.split else 1) for i in range(len(header))]

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if right else c.ljust(w)
            for c, w, right in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    lines = [fmt(header), fmt(["-" * w for w in widths])]
    lines += [fmt(line) for line in body]
    counted = (
        "latest decision per visitor and bucket" if stats.per == "visitor" else "every decision"
    )
    lines.append("")
    lines.append(
        f"counted: {counted}; times in UTC; a category's % is of the decisions offering it"
    )
    if stats.revisions:
        lines.append("revisions:")
        for r in stats.revisions:
            lines.append(
                f"  {r.revision[:16]}  {format_time(r.first)} .. {format_time(r.last)}"
                f"  {r.decisions} decisions"
            )
    return "\n".join(lines) + "\n"
