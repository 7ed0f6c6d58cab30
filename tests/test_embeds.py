"""``POST <prefix>/once`` ("Load this once") and ``GET <prefix>/embed`` (the no-JS page)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from consent import ConsentMiddleware
from consent.audit import verify_store
from consent.kantara import to_kantara
from consent.receipts import Receipt, ReceiptSigner
from consent.store import open_store

from .helpers import EXAMPLE_POLICY

KEY = "embed-test-key-0123456789abcdefgh"
HOST = "http://testserver"
SAME_ORIGIN = {"Origin": HOST}
ONCE = {"category": "embedded", "src": "https://www.youtube-nocookie.com/embed/x", "page": "/a?q=1"}


def page(request: Request) -> Response:
    return HTMLResponse("<html><head></head><body><p>hi</p></body></html>")


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'consent.db'}"


@pytest.fixture
def client(db: str) -> Iterator[TestClient]:
    app = ConsentMiddleware(
        Starlette(routes=[Route("/", page)]), policy=EXAMPLE_POLICY, secret_key=KEY, store=db
    )
    with TestClient(app, base_url=HOST, client=("203.0.113.77", 50000)) as c:
        yield c


def stored(db: str) -> list[Receipt]:
    if not Path(db.removeprefix("sqlite:///")).exists():
        return []  # (the store is made by the first receipt)
    store = open_store(db, ReceiptSigner([KEY]))
    return [row.receipt for row in store.iter_rows()]


def test_once_records_a_receipt_and_leaves_the_cookie_alone(client: TestClient, db: str) -> None:
    response = client.post("/_consent/once", json=ONCE, headers=SAME_ORIGIN)
    assert response.status_code == 200, response.text
    assert "set-cookie" not in response.headers
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["event"] == "once"
    [receipt] = stored(db)
    assert receipt.receipt_id == body["receipt_id"]
    assert receipt.event == "once"
    assert receipt.method == "embed"
    assert receipt.granted == ["embedded"]
    assert receipt.refused == []
    assert receipt.page == "/a"  # (no query string on a receipt)
    assert receipt.ip == "203.0.113.0"
    [purpose] = receipt.purposes
    assert purpose.key == "embedded"
    assert purpose.granted
    assert purpose.third_parties == ["www.youtube-nocookie.com"]  # the host, not the URL
    assert to_kantara(receipt)["services"][0]["purposes"][0]["termination"].startswith("After one")
    # The visitor is still undecided, and the log verifies.
    assert client.get("/_consent").json()["decided"] is False
    report = verify_store(open_store(db, ReceiptSigner([KEY])), ReceiptSigner([KEY]))
    assert report.ok, report


def test_once_keeps_the_visitors_pseudonym(client: TestClient, db: str) -> None:
    decided = client.post("/_consent", json={"accept": ["analytics"]}, headers=SAME_ORIGIN)
    subject = decided.json()["receipt"]["subject_id"]
    client.post("/_consent/once", json=ONCE, headers=SAME_ORIGIN)
    first, once = stored(db)
    assert once.subject_id == subject == first.subject_id
    # The standing choice is unchanged.
    state = client.get("/_consent").json()
    assert state["granted"] == ["analytics"]
    assert state["receipt_id"] == first.receipt_id


def test_a_path_is_recorded_as_this_sites_host(client: TestClient, db: str) -> None:
    client.post("/_consent/once", json={**ONCE, "src": "/video/1"}, headers=SAME_ORIGIN)
    assert stored(db)[0].purposes[0].third_parties == ["testserver"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({**ONCE, "category": "nope"}, 422, "category"),
        ({**ONCE, "category": 3}, 422, "category"),
        ({**ONCE, "category": "necessary"}, 422, "category"),
        ({**ONCE, "src": "javascript:alert(1)"}, 422, "src"),
        ({**ONCE, "src": "//evil.example/x"}, 422, "src"),
        ({"category": "embedded"}, 422, "src"),
        ([1, 2], 422, None),
    ],
)
def test_bad_once_requests_are_named(
    client: TestClient, db: str, body: object, status: int, field: str | None
) -> None:
    response = client.post("/_consent/once", json=body, headers=SAME_ORIGIN)
    assert response.status_code == status
    assert response.json()["detail"]["field"] == field
    assert stored(db) == []


def test_once_refuses_other_sites_and_other_bodies(client: TestClient, db: str) -> None:
    other = client.post("/_consent/once", json=ONCE, headers={"Origin": "https://evil.example"})
    assert other.status_code == 403
    form = client.post("/_consent/once", data={"category": "embedded"}, headers=SAME_ORIGIN)
    assert form.status_code == 415
    broken = client.post(
        "/_consent/once",
        content=b"{",
        headers={**SAME_ORIGIN, "Content-Type": "application/json"},
    )
    assert broken.status_code == 400
    assert client.get("/_consent/once").status_code == 405
    assert stored(db) == []


def test_once_under_gpc_refuses_a_sale_or_share_category(client: TestClient, db: str) -> None:
    response = client.post(
        "/_consent/once",
        json={**ONCE, "category": "marketing"},
        headers={**SAME_ORIGIN, "Sec-GPC": "1"},
    )
    assert response.status_code == 409
    assert stored(db) == []


def test_always_is_a_decision_made_from_a_placeholder(client: TestClient, db: str) -> None:
    response = client.post(
        "/_consent", json={"accept": ["embedded"], "method": "embed"}, headers=SAME_ORIGIN
    )
    assert response.status_code == 200
    assert "set-cookie" in response.headers
    [receipt] = stored(db)
    assert (receipt.event, receipt.method, receipt.granted) == ("given", "embed", ["embedded"])


def test_the_no_javascript_page_links_to_the_settings(client: TestClient) -> None:
    response = client.get(
        "/_consent/embed?category=embedded", headers={"Referer": f"{HOST}/article?x=1"}
    )
    assert response.status_code == 200
    html = response.text
    assert 'href="/_consent/declaration?next=%2Farticle" target="_top"' in html
    assert "Google (YouTube)" in html
    assert "Embedded" in html
    german = client.get("/_consent/embed?category=embedded", headers={"Accept-Language": "de"})
    assert "Cookie-Einstellungen" in german.text
    # The declaration's form goes back to that page.
    declaration = client.get("/_consent/declaration?next=/article", headers={"Accept": "text/html"})
    assert '<input type="hidden" name="next" value="/article">' in declaration.text
    hostile = client.get(
        "/_consent/declaration?next=//evil.example", headers={"Accept": "text/html"}
    )
    assert '<input type="hidden" name="next" value="/">' in hostile.text


def test_receipt_page_names_a_once_receipt(client: TestClient) -> None:
    strings = json.loads(client.get("/_consent/i18n/en.json").text)
    assert strings["event_once"]
    assert strings["method_embed"]
