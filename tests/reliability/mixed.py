"""Returning visitors: each keeps its own consent cookie and changes its mind over time."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

import httpx

from .harness import OPTIONAL, client_limits, cookieless
from .launcher import PAGE_COOKIES

#: Cookies a browser may hold, one per category: what the page sets, minus the consent cookie.
HELD = "; ".join(f"{name}=held" for name in PAGE_COOKIES)


@dataclass
class Visitor:
    number: int
    consent: str | None = None  # the consent cookie value the server set last
    subject_id: str | None = None
    granted: frozenset[str] = frozenset()
    decided: bool = False
    receipts: list[tuple[str, str, list[str]]] = field(default_factory=list)  # (id, event, granted)

    def cookie_header(self, *, everything: bool = False) -> dict[str, str]:
        pairs = [f"consent={self.consent}"] if self.consent else []
        if everything:
            pairs.append(HELD)
        return {"Cookie": "; ".join(pairs)} if pairs else {}

    def allowed(self, name: str) -> bool:
        category = PAGE_COOKIES[name]
        return category == "necessary" or category in self.granted


@dataclass
class Summary:
    visitors: list[Visitor]
    requests: int = 0
    decisions: int = 0

    def check_against(self, stored: dict[str, dict[str, Any]]) -> None:
        """Each visitor's receipts in the store are exactly its answered decisions, in order."""
        by_subject: dict[str, list[dict[str, Any]]] = {}
        for row in stored.values():
            by_subject.setdefault(row["subject_id"], []).append(row)
        for visitor in self.visitors:
            if not visitor.receipts:
                assert visitor.subject_id not in by_subject
                continue
            rows = sorted(by_subject.pop(visitor.subject_id or ""), key=lambda r: r["seq"])
            assert [(r["receipt_id"], r["event"], r["granted"]) for r in rows] == [
                (rid, event, sorted(granted)) for rid, event, granted in visitor.receipts
            ]
        assert not by_subject, f"receipts of unknown subjects: {list(by_subject)[:3]}"


def _consent_value(response: httpx.Response) -> str:
    values = [
        h.split(";", 1)[0].split("=", 1)[1]
        for h in response.headers.get_list("set-cookie")
        if h.startswith("consent=")
    ]
    assert len(values) == 1, response.headers.get_list("set-cookie")
    return values[0]


async def _act(client: httpx.AsyncClient, visitor: Visitor, rng: random.Random) -> int:
    """One action of a visitor; checks the answer; returns 1 if it recorded a decision."""
    origin = {"Origin": str(client.base_url).rstrip("/")}
    choice = rng.random()
    if choice < 0.35:
        accept = sorted(c for c in OPTIONAL if rng.random() < 0.5)
        response = await client.post(
            "/_consent", json={"accept": accept}, headers={**origin, **visitor.cookie_header()}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        if not visitor.decided:
            expected = "given" if accept else "refused"
        else:  # refusing everything after a grant withdraws it
            expected = "withdrawn" if visitor.granted and not accept else "updated"
        assert body["event"] == expected
        assert body["state"]["granted"] == accept
        return _decided(visitor, response, body, frozenset(accept))
    if choice < 0.45:
        response = await client.delete("/_consent", headers={**origin, **visitor.cookie_header()})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["event"] == "withdrawn"
        # Cookies of now refused categories that the browser sent are expired.
        return _decided(visitor, response, body, frozenset())
    if choice < 0.65:
        response = await client.get("/", headers=visitor.cookie_header(everything=True))
        assert response.status_code == 200
        for header in response.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            deletion = "Max-Age=0" in rest
            assert deletion or visitor.allowed(name), (name, visitor.granted)
            assert not (deletion and visitor.allowed(name)), header
        set_names = {h.partition("=")[0] for h in response.headers.get_list("set-cookie")}
        assert {n for n in PAGE_COOKIES if visitor.allowed(n)} <= set_names
        return 0
    if choice < 0.85:
        response = await client.get("/seen", headers=visitor.cookie_header(everything=True))
        assert response.status_code == 200
        data = response.json()
        assert data["decided"] == visitor.decided
        reached = set(data["cookies"]) - {"consent"}
        assert reached == {n for n in PAGE_COOKIES if visitor.allowed(n)}
        return 0
    response = await client.get("/_consent/receipt", headers=visitor.cookie_header())
    if not visitor.receipts:
        assert response.status_code == 404
    else:
        assert response.status_code == 200, response.text
        assert response.json()["receipt"]["receipt_id"] == visitor.receipts[-1][0]
    return 0


def _decided(
    visitor: Visitor, response: httpx.Response, body: dict[str, Any], granted: frozenset[str]
) -> int:
    receipt = body["receipt"]
    if visitor.subject_id is not None:
        assert receipt["subject_id"] == visitor.subject_id, "the visitor's history must continue"
    visitor.subject_id = receipt["subject_id"]
    visitor.consent = _consent_value(response)
    visitor.granted = granted
    visitor.decided = True
    visitor.receipts.append((body["receipt_id"], body["event"], sorted(granted)))
    return 1


async def run_visitors(base: str, visitors: int, rounds: int, *, concurrency: int) -> Summary:
    """``visitors`` visitors act ``rounds`` times each, one action at a time per visitor and
    ``concurrency`` visitors at once."""
    summary = Summary([Visitor(n) for n in range(visitors)])
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(
        base_url=base,
        limits=client_limits(concurrency, keepalive=False),
        timeout=60,
        cookies=cookieless(),
    ) as client:

        async def life(visitor: Visitor) -> None:
            rng = random.Random(visitor.number)
            for _ in range(rounds):
                async with semaphore:
                    recorded = await _act(client, visitor, rng)
                summary.decisions += recorded
                summary.requests += 1

        await asyncio.gather(*(life(v) for v in summary.visitors))
    return summary
