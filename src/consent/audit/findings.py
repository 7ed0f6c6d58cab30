"""What verification reports: findings, incident markers and the result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..receipts import (
    ChainHead,
    Checkpoint,
    format_time,
)
from ..store.base import ReceiptRow
from ..store.chain import (
    Covered,
    record_fields,
)


@dataclass(frozen=True)
class Finding:
    """One thing wrong with the log: ``reason``, and the row it was found at (``seq`` and
    ``receipt_id``, when there is one). ``code`` names the kind of finding (``signature``,
    ``link``, ``gap``, ``column:event``, ...); an incident marker records findings by seq and
    kind. ``missing``: for a gap, how many receipts are missing before the row."""

    reason: str
    seq: int | None = None
    receipt_id: str | None = None
    code: str = ""
    missing: int = 0

    def line(self) -> str:
        if self.receipt_id is not None:
            return f"BROKEN at receipt {self.receipt_id} (seq {self.seq}): {self.reason}"
        if self.seq is not None:
            return f"BROKEN at seq {self.seq}: {self.reason}"
        return f"BROKEN: {self.reason}"


@dataclass(frozen=True)
class Incident:
    """A signed incident marker (``consent incident``), as verification found it: where it
    is, when and by whom it was recorded, why, what was found at the end of the log, and the
    findings of the log before it that it covers (``report``: the first ones, as lines;
    ``count``: all of them). ``missing`` receipts were lost (gaps, and the newest receipts
    a genuine head still recorded); with ``head_lost``, the head itself was missing or not
    genuine, so how many newest receipts went with it cannot be told. ``covered`` is False
    when the findings before it are no longer those it recorded (a finding of its own)."""

    seq: int
    record_id: str
    time: int
    reason: str
    by: str | None
    found: str
    head: tuple[int, str] | None
    after: int
    missing: int
    head_lost: bool
    altered: int
    count: int
    runs: tuple[tuple[int | None, int | None, str], ...]
    report: tuple[str, ...]
    covered: bool = True

    @property
    def affected(self) -> int:
        """Receipts known to be missing or altered."""
        return self.missing + self.altered

    @classmethod
    def from_row(cls, row: ReceiptRow) -> Incident | None:
        """The marker in a record row whose signature verified; None when its body lacks
        what a marker holds."""
        data = record_fields(row)
        try:
            assert data is not None
            head = data["head"]
            runs = tuple(
                (
                    None if first is None else int(first),
                    None if last is None else int(last),
                    str(code),
                )
                for first, last, code in data["findings"]
            )
            by = data["by"]
            return cls(
                seq=row.seq,
                record_id=row.receipt_id,
                time=int(data["timestamp"]),
                reason=str(data["reason"]),
                by=None if by is None else str(by),
                found=str(data["found"]),
                head=None if head is None else (int(head["seq"]), str(head["hash"])),
                after=int(data["after"]),
                missing=int(data["missing"]),
                head_lost=bool(data["head_lost"]),
                altered=int(data["altered"]),
                count=int(data["count"]),
                runs=runs,
                report=tuple(str(line) for line in data["report"]),
            )
        except (AssertionError, KeyError, TypeError, ValueError):
            return None

    def lines(self) -> list[str]:
        """How ``consent verify`` reports it."""
        by = f" by {self.by}" if self.by else ""
        out = [
            f"incident recorded at seq {self.seq} on {format_time(self.time)}{by}: {self.reason}"
        ]
        if self.found:
            out.append(f"  found: {self.found}")
        lost = (
            "; how many newest receipts went with the missing head cannot be told"
            if self.head_lost
            else ""
        )
        out.append(
            f"  affected: {self.affected} receipts ({self.missing} missing, {self.altered} "
            f"altered or moved){lost}"
        )
        if self.report:
            out.append(f"  covers {self.count} findings in the log before it:")
            out.extend(f"    {line}" for line in self.report)
            if self.count > len(self.report):
                out.append(f"    and {self.count - len(self.report)} more")
        if not self.covered:
            out.append("  the findings before it are no longer those it recorded (see above)")
        return out


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a verification.

    ``findings`` lists what is wrong (the first :data:`MAX_LISTED`; ``finding_count`` counts
    them all); ``first_bad``, ``seq``, ``receipt_id`` and ``reason`` are those of the first.
    ``count`` is the number of receipts read (chain records not included). ``incidents`` are
    the incident markers in the log, with the findings each covers; ``keyed_from`` the seq
    from which rows are linked with the key (None: a log of an earlier version, unkeyed), and
    ``switched`` whether that is where a signed switch record turned an earlier version's log
    to keyed links;
    ``notes`` what else there is to say (the head kept elsewhere, ``--expect-head``).
    """

    ok: bool
    count: int
    first_bad: str | None = None
    reason: str = ""
    seq: int | None = None
    receipt_id: str | None = None
    head: ChainHead | None = None
    checkpoint: Checkpoint | None = None  # where a purge left the log to start
    findings: tuple[Finding, ...] = ()
    finding_count: int = 0
    incidents: tuple[Incident, ...] = ()
    keyed_from: int | None = None
    switched: bool = False
    notes: tuple[str, ...] = ()

    def message(self) -> str:
        if self.ok:
            if self.incidents:
                n = len(self.incidents)
                return (
                    f"OK: {self.count} receipts verified; {n} recorded "
                    f"incident{'s' if n != 1 else ''} (below)"
                )
            return f"OK: {self.count} receipts verified"
        return self.findings[0].line() if self.findings else f"BROKEN: {self.reason}"


MAX_LISTED = 100
"""Findings listed one by one; the rest are counted."""

_MAX_RUNS = 10_000  # runs of findings kept to compare with an incident marker


class _Findings:
    """Findings not covered by an incident marker: the first :data:`MAX_LISTED` listed, all
    counted, and as runs (consecutive seqs, one kind) to compare with what a marker recorded."""

    def __init__(self) -> None:
        self.listed: list[Finding] = []
        self.count = 0
        self.runs: list[list[Any]] = []  # [first seq, last seq, code]
        self.overflow = False
        self.missing = 0
        self.altered = 0

    def add(self, finding: Finding) -> None:
        self.count += 1
        if len(self.listed) < MAX_LISTED:
            self.listed.append(finding)
        seq, code = finding.seq, finding.code
        run = self.runs[-1] if self.runs else None
        if run is not None and seq is not None and run[1] == seq - 1 and run[2] == code:
            run[1] = seq
        elif len(self.runs) < _MAX_RUNS:
            self.runs.append([seq, seq, code])
        else:
            self.overflow = True
        if code == "gap":
            self.missing += finding.missing
        elif seq is not None:
            self.altered += 1

    def matches(self, incident: Incident, floor: int, *, whole: bool) -> bool:
        """Whether these findings are those ``incident`` recorded. Recorded runs purged since
        (up to seq ``floor``) are left out. ``whole``: the log was read whole (a store, a
        complete export); otherwise each finding need only lie in a recorded run."""
        if self.overflow:
            return False
        recorded = []
        for first, last, code in incident.runs:
            if last is not None and last <= floor:
                continue
            if first is not None and first <= floor:
                first = floor + 1
            recorded.append((first, last, code))
        found = [(first, last, code) for first, last, code in self.runs]
        if whole:
            return found == recorded
        return all(
            any(
                code == r_code
                and (first == r_first if first is None else (r_first or 0) <= first)
                and (last == r_last if last is None else last <= (r_last or 0))
                for r_first, r_last, r_code in recorded
            )
            for first, last, code in found
        )

    def covered(self) -> Covered:
        """What an incident marker recorded now would cover."""
        return Covered(
            runs=tuple((first, last, code) for first, last, code in self.runs),
            lines=tuple(f.line() for f in self.listed),
            count=self.count,
            missing=self.missing,
            altered=self.altered,
        )
