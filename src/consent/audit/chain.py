"""Following the log row by row: each row checked, each linked to the one before, every finding collected."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..receipts import (
    GENESIS_HASH,
    ChainHead,
    Checkpoint,
    ReceiptSigner,
)
from ..store.base import ReceiptRow
from ..store.chain import (
    INCIDENT_EVENT,
    KEYED_EVENT,
    RECORD_EVENTS,
    link_kind,
    record_problem,
    span,
)
from .columns import StatsCheck
from .fast import _Fast
from .findings import Finding, Incident, VerifyResult, _Findings
from .lines import _stored
from .parallel import _Summary
from .rows import Values


class _Chain:
    """Follows rows in seq order: checks each one (signature, link, columns) and that it
    follows the one before, and collects every finding.

    ``start`` is the ``(seq, hash)`` the log starts after (the genesis or the purge
    checkpoint); None for an export that may hold only some rows (filtered, or without its
    chain head line), where gaps are expected. ``whole``: every row from ``start`` on is read.
    """

    def __init__(
        self, signer: ReceiptSigner, start: tuple[int, str] | None, *, file: bool = False
    ) -> None:
        self.signer = signer
        self.fast = _Fast(signer)
        self.start = start
        self.whole = start is not None
        self.file = file
        self.floor = start[0] if start is not None else 0
        self.last: tuple[int, str, str] | None = None  # seq, hash, receipt_id
        self.count = 0  # receipts read
        self.keyed: bool | None = None  # are rows linked with the key? (None: not known yet)
        self.keyed_from: int | None = None
        self.switched = False  # a switch record turned the log to keyed links
        self.pending = _Findings()
        self.incidents: list[Incident] = []
        self.watch: int | None = None  # a seq whose hash is wanted (--expect-head on a file)
        self.watched: str | None = None

    def note(self, finding: Finding) -> None:
        """A finding of the log's own (not of one row), or of a row not read as one."""
        self.pending.add(finding)

    def _previous(self) -> tuple[int, str] | None:
        return (self.last[0], self.last[1]) if self.last is not None else self.start

    def add(
        self,
        row: ReceiptRow,
        *,
        reported: Finding | None = None,
        fields: Callable[[], Finding | None] | None = None,
    ) -> None:
        """Check ``row`` and its place. ``reported``: a finding about it already made (by the
        reader of an export); ``fields``: a check of its exported fields, made when the row
        itself is sound. One finding per row, the first of: ``reported``, the row's own
        (signature, link, columns), ``fields``, its place."""
        finding = reported
        if finding is None and not (self.keyed is not None and self.fast.verified(row, self.keyed)):
            finding = self._examine(row)
        if finding is None and fields is not None:
            finding = fields()
        if row.seq == self.watch:
            self.watched = row.hash
        incident = None
        if finding is None and row.event == INCIDENT_EVENT:
            incident = Incident.from_row(row)
            if incident is None:
                finding = self._at(row, "body", "signed body is not a valid incident marker")
        if self.last is not None and row.seq <= self.last[0]:
            self.pending.add(
                finding
                or self._at(
                    row,
                    "order",
                    f"out of order: seq {row.seq} follows seq {self.last[0]} "
                    "(receipts reordered or duplicated)",
                )
            )
            return
        if finding is None:
            finding = self._place(row, incident)
        if finding is not None:
            self.pending.add(finding)
        elif incident is not None:
            self._incident(incident, row)
        self.last = (row.seq, row.hash, row.receipt_id)
        if row.event not in RECORD_EVENTS:
            self.count += 1

    @staticmethod
    def _at(row: ReceiptRow, code: str, reason: str, missing: int = 0) -> Finding:
        return Finding(reason, row.seq, row.receipt_id, code, missing)

    def _place(self, row: ReceiptRow, incident: Incident | None) -> Finding | None:
        """Whether ``row`` follows the row before it (or the start of the log)."""
        previous = self._previous()
        if previous is None:
            return None
        expected = previous[0] + 1
        if row.seq != expected:
            if (
                incident is not None
                and incident.head is not None
                and incident.head[0] == row.seq - 1
                and incident.after == previous[0]
                and row.prev_hash == previous[1]
            ):
                return None  # the newest receipts lost before the marker: it covers them
            if row.seq < expected:
                return self._at(row, "order", f"unexpected seq {row.seq}, expected {expected}")
            if not self.whole:
                return None  # an export of some rows only
            missing = row.seq - expected
            if self.last is None and self.file:
                reason = (
                    f"export starts at seq {row.seq}, the log starts at seq {expected} "
                    "(receipts deleted)"
                )
            else:
                reason = (
                    f"seq {span(expected, row.seq - 1)} missing before this receipt "
                    "(receipts deleted)"
                )
            return self._at(row, "gap", reason, missing)
        if row.prev_hash != previous[1]:
            if self.last is None:
                return self._at(
                    row,
                    "start",
                    "the first receipt does not link to the start of the log "
                    + ("(the genesis hash)" if previous[0] == 0 else "(the purge checkpoint)"),
                )
            return self._at(
                row,
                "prev",
                "prev_hash does not link to the previous receipt "
                "(receipts reordered, deleted or replaced)",
            )
        return None

    def _examine(self, row: ReceiptRow) -> Finding | None:
        """The row's own finding (signature, link, body and columns), or None; learns from
        it whether the log's rows are keyed."""
        signer = self.signer
        record = row.event in RECORD_EVENTS
        if record:
            problem = record_problem(row, signer)
            if problem is not None:
                return self._at(row, *problem)
        elif not signer.knows(row.kid):
            return self._at(
                row,
                "key",
                f"signed by an unknown key (kid {row.kid}); is a retired key missing from "
                "CONSENT_SECRET_KEY?",
            )
        elif not signer.verify(row.body, row.kid, row.signature):
            return self._at(
                row, "signature", "signature does not match the receipt body (receipt edited)"
            )
        kind = link_kind(signer, row)
        if kind is None:
            if self.keyed is False:
                return self._at(
                    row, "link", "hash does not match the receipt (chain fields edited)"
                )
            return self._at(
                row,
                "link",
                "hash does not match the row's seq, prev_hash and signature (renumbered, "
                "moved, or chain fields edited)",
            )
        if kind == "keyed":
            if row.event == KEYED_EVENT and not self.keyed:
                self.keyed, self.keyed_from, self.switched = True, row.seq, True
            elif self.keyed is None:
                self.keyed, self.keyed_from = True, row.seq
            elif self.keyed is False:
                self.keyed, self.keyed_from = True, row.seq
                return self._at(
                    row, "unswitched", "keyed link without the signed switch record before it"
                )
        elif record or self.keyed:
            return self._at(
                row,
                "unkeyed",
                f"unkeyed link in the keyed chain (keyed since seq {self.keyed_from}): "
                "re-linked without the key, or written by an earlier version",
            )
        else:
            self.keyed = False
        if record:
            return None
        stored = _stored(row)
        if stored is None:
            return self._at(row, "body", "signed body is not a valid receipt")
        receipt = stored.receipt
        for name, value in (
            ("receipt_id", receipt.receipt_id),
            ("subject_id", receipt.subject_id),
            ("timestamp", receipt.timestamp),
            ("event", receipt.event),
        ):
            if getattr(row, name) != value:
                return self._at(
                    row,
                    f"column:{name}",
                    f"{name} differs from the signed body (edited after signing)",
                )
        return None

    def _incident(self, incident: Incident, row: ReceiptRow) -> None:
        """An incident marker: the findings so far are covered if they are those it recorded."""
        if self.pending.matches(incident, self.floor, whole=self.whole):
            self.pending = _Findings()
            self.incidents.append(incident)
            return
        self.incidents.append(replace(incident, covered=False))
        self.pending.add(
            self._at(
                row,
                "incident",
                f"the findings before this incident marker are not those it recorded "
                f"({incident.count} recorded, {self.pending.count} found): rows changed since",
            )
        )

    def add_batch(
        self,
        batch: list[Values],
        row_from: Callable[[Values], ReceiptRow],
        stats: StatsCheck | None = None,
    ) -> None:
        """:meth:`add` for each row of a store.

        A row that passes :meth:`_Fast.check` and directly follows the previous one (next seq,
        linked hash) is counted without more ado; any other row takes the full way, which
        finds whatever is wrong with it. ``stats``: the rows carry their statistics rows
        (``iter_values(stats=True)``), checked there.
        """
        check = self.fast.check
        keyed = self.keyed
        previous = self._previous()
        last = None
        count = 0
        for values in batch:
            if (
                keyed is not None
                and previous is not None
                and values[0] == previous[0] + 1
                and values[8] == previous[1]
                and type(values[0]) is int
                and check(values, keyed)
            ):
                if stats is not None:
                    stats.checked(values)
                previous = (values[0], values[9])
                last = values
                count += 1
                continue
            # The full way, from where the quick one got to.
            if last is not None:
                self.last = (last[0], last[9], last[1])
                self.count += count
                last, count = None, 0
            if stats is not None:
                stats.unchecked(values)
                values = values[:10]
            self.add(row_from(values))
            keyed = self.keyed
            previous = self._previous()
        if last is not None:
            self.last = (last[0], last[9], last[1])
            self.count += count

    def join(self, summary: _Summary | None) -> bool:
        """Take the worker's summary of a chunk whose rows all passed :meth:`_Fast.check`
        and link one to the next (:func:`_check_chunk`); False when there is none or the
        chunk does not follow on from the rows so far (then check the chunk again here)."""
        if summary is None:
            return False
        count, first, last_seq, last_hash, last_id, keyed, _ = summary
        if first is None:
            return True  # no rows in that range
        previous = self._previous()
        if (
            keyed != self.keyed
            or previous is None
            or first[0] != previous[0] + 1
            or first[8] != previous[1]
        ):
            return False
        self.last = (last_seq, last_hash, last_id)
        self.count += count
        return True

    def end(self) -> tuple[int, str]:
        if self.last is not None:
            return self.last[0], self.last[1]
        return self.start if self.start is not None else (0, GENESIS_HASH)


def _result(
    chain: _Chain,
    head: ChainHead | None,
    checkpoint: Checkpoint | None,
    notes: list[str] | None = None,
) -> VerifyResult:
    found = chain.pending
    notes = notes or []
    ok = found.count == 0
    first = found.listed[0] if found.listed else None
    return VerifyResult(
        ok=ok,
        count=chain.count,
        first_bad=(first.receipt_id or (f"seq {first.seq}" if first.seq is not None else None))
        if first
        else None,
        reason=first.reason if first else "",
        seq=first.seq if first else None,
        receipt_id=first.receipt_id if first else None,
        head=head,
        checkpoint=checkpoint,
        findings=tuple(found.listed),
        finding_count=found.count,
        incidents=tuple(chain.incidents),
        keyed_from=chain.keyed_from if chain.keyed else None,
        switched=chain.switched,
        notes=tuple(notes),
    )
