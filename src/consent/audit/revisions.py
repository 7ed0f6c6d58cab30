"""The policy revisions a receipt store knows (when receipts named them, how many, their archived
texts), and those texts shown and compared: what ``consent revisions`` prints."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..archive import document_of, policy_from_document
from ..declaration import render_markdown
from ..receipts import format_time
from ..store import ReceiptStore
from ..store.base import ArchivedPolicy
from ..store.chain import RECORD_EVENTS
from .archive import log_values, receipt_revision

__all__ = [
    "Revision",
    "RevisionNotFound",
    "diff_documents",
    "documents",
    "find_revision",
    "revisions",
    "show_markdown",
]


@dataclass
class Revision:
    """A revision as the store knows it: when receipts named it, how many, and its archived
    texts (oldest first)."""

    revision: str
    first: int | None = None
    last: int | None = None
    receipts: int = 0
    archived: list[ArchivedPolicy] = field(default_factory=list)
    first_seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "first_used": None if self.first is None else format_time(self.first),
            "last_used": None if self.last is None else format_time(self.last),
            "receipts": self.receipts,
            "archived": [
                {"digest": e.digest, "time": format_time(e.timestamp)} for e in self.archived
            ],
        }


def revisions(store: ReceiptStore) -> list[Revision]:
    """Every revision named by a receipt or archived, in the order receipts first named them
    (archived revisions no receipt names yet last)."""
    found: dict[str, Revision] = {}
    for entry in sorted(store.iter_policies(), key=lambda e: e.timestamp):
        found.setdefault(entry.revision, Revision(entry.revision)).archived.append(entry)
    for batch in log_values(store):
        for values in batch:
            seq, _, _, timestamp, event, body = values[:6]
            if event in RECORD_EVENTS:
                continue
            revision = receipt_revision(str(body))
            if revision is None:
                continue
            item = found.setdefault(revision, Revision(revision))
            item.receipts += 1
            if item.first_seq is None:
                item.first_seq = int(seq)
            if item.first is None or timestamp < item.first:
                item.first = int(timestamp)
            if item.last is None or timestamp > item.last:
                item.last = int(timestamp)
    # in the order receipts first named them (the log's order), unused archived ones last
    return sorted(
        found.values(),
        key=lambda r: (
            r.first_seq is None,
            r.first_seq or 0,
            min((e.timestamp for e in r.archived), default=0),
            r.revision,
        ),
    )


class RevisionNotFound(LookupError):
    """No revision, or more than one, starts with the prefix given (a usage error)."""


def find_revision(known: Sequence[Revision], prefix: str) -> Revision:
    """The one revision starting with ``prefix`` (raises :class:`RevisionNotFound`)."""
    wanted = prefix.strip().lower()
    if not wanted or any(ch not in "0123456789abcdef" for ch in wanted):
        raise RevisionNotFound(f"{prefix!r} is not a revision (hex digits)")
    matches = [r for r in known if r.revision.startswith(wanted)]
    if not matches:
        raise RevisionNotFound(f"no revision starting with {wanted!r} in this store")
    if len(matches) > 1:
        names = ", ".join(r.revision[:16] for r in matches)
        raise RevisionNotFound(f"{wanted!r} is ambiguous: {names}; give more digits")
    return matches[0]


# --------------------------------------------------------------------------- showing


def documents(revision: Revision) -> list[dict[str, Any]]:
    """The archived documents of ``revision`` that parse, oldest first."""
    return [doc for doc in map(document_of, revision.archived) if doc is not None]


def show_markdown(document: Mapping[str, Any], language: str | None = None) -> str:
    """A revision's texts as the cookie declaration shows them (Markdown), followed by the
    banner's wording in that language."""
    policy = policy_from_document(document)
    lang = language or str(document.get("language", "en")).split("-")[0]
    text = render_markdown(policy, lang if language else None)
    banner = document.get("banner", {}).get(lang)
    if isinstance(banner, dict):
        strings = banner.get("strings", {})
        lines = ["", f"## Banner ({lang})", "", str(banner.get("notice", "")), ""]
        for key in ("title", "accept_all", "reject_all", "customize", "save", "settings"):
            if key in strings:
                lines.append(f"- {key}: {strings[key]}")
        text = text.rstrip("\n") + "\n" + "\n".join(lines) + "\n"
    return text


def _flatten(value: Any, path: str, out: dict[str, str]) -> None:
    """Every text of ``value`` into ``out`` by its path: objects by key, cookie rules by their
    name (a rule moved is no change), lists of strings as one value."""
    if isinstance(value, dict):
        for key in sorted(value):
            _flatten(value[key], f"{path}.{key}" if path else str(key), out)
    elif isinstance(value, list) and not all(isinstance(v, str) for v in value):
        for n, item in enumerate(value):
            label = (
                item.get("name") or item.get("pattern") or item.get("regex")
                if isinstance(item, dict)
                else None
            )
            _flatten(item, f"{path}[{label or n}]", out)
    else:
        out[path] = json.dumps(value, ensure_ascii=False)


def diff_documents(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What changed between two archived documents, one line per changed text: ``- path:
    old``, ``+ path: new``; the policy texts (which change the revision) first, then the
    banner's wording (which does not)."""
    lines: list[str] = []
    for part, title in (("policy", "Policy texts"), ("banner", "Banner wording")):
        a: dict[str, str] = {}
        b: dict[str, str] = {}
        _flatten(old.get(part, {}), "", a)
        _flatten(new.get(part, {}), "", b)
        changed = [k for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
        if not changed:
            continue
        lines.append(f"## {title}")
        for key in changed:
            if key in a:
                lines.append(f"- {key}: {a[key]}")
            if key in b:
                lines.append(f"+ {key}: {b[key]}")
    return lines
