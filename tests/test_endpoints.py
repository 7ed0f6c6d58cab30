"""The consent endpoints: state, decisions, withdrawal, receipts, declaration, assets."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from consent import ConsentMiddleware
from consent.audit import verify_store
from consent.policy import CookieText, load_policy
from consent.receipts import ReceiptSigner
from consent.store import open_store

from .helpers import EXAMPLE_POLICY, copy_policy

KEY = "endpoint-test-key-0123456789"
HOST = "http://testserver"
SAME_ORIGIN = {"Origin": HOST}


def page(request: Request) -> Response:
    response = HTMLResponse("<html><head><title>t</title></head><body><p>hi</p></body></html>")
    response.set_cookie("stats_vid", "v")
    response.set_cookie("session", "s")
    return response


site = Starlette(routes=[Route("/", page), Route("/article", page)])


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'consent.db'}"


@pytest.fixture
def mw(db: str) -> ConsentMiddleware:
    return ConsentMiddleware(site, policy=EXAMPLE_POLICY, secret_key=KEY, store=db)


@pytest.fixture
def client(mw: ConsentMiddleware) -> Iterator[TestClient]:
    with TestClient(mw, base_url=HOST, client=("203.0.113.77", 50000)) as c:
        yield c


def receipts_in(db: str) -> int:
    if not Path(db.removeprefix("sqlite:///")).exists():
        return 0
    return open_store(db, ReceiptSigner([KEY])).count()


# --------------------------------------------------------------------------- GET


def test_get_state_before_a_decision(client: TestClient) -> None:
    response = client.get("/_consent")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    data = response.json()
    assert data["decided"] is False
    assert data["revision_changed"] is False
    assert data["receipt_id"] is None
    assert data["gpc"] is False
    assert data["prefix"] == "/_consent"
    keys = [c["key"] for c in data["categories"]]
    assert keys == ["necessary", "analytics", "marketing", "preferences", "embedded"]
    analytics = data["categories"][1]
    assert analytics["granted"] is False
    assert analytics["title"] == "Analytics"
    assert analytics["cookies"][0] == {
        "name": "stats_vid",
        "display": "stats_vid",
        "vendor": "Lindenhof Clinic (first party)",
        "purpose": "Recognises a returning browser to count unique readers.",
        "duration": "13 months",
    }
    assert data["categories"][0]["granted"] is True
    assert data["controller"]["name"] == "Lindenhof Clinic gGmbH"


def test_get_state_translated(client: TestClient) -> None:
    data = client.get("/_consent?lang=de-AT").json()
    assert data["language"] == "de"
    assert data["categories"][1]["title"] == "Statistik"


# --------------------------------------------------------------------------- POST JSON


def test_post_records_receipt_and_sets_cookie(client: TestClient, db: str) -> None:
    response = client.post(
        "/_consent",
        json={"accept": ["analytics", "preferences"], "page": "/article"},
        headers=SAME_ORIGIN,
    )
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["event"] == "given"
    assert data["state"]["decided"] is True
    assert data["state"]["granted"] == ["analytics", "preferences"]
    receipt = data["receipt"]
    assert receipt["receipt_id"] == data["receipt_id"]
    assert receipt["granted"] == ["analytics", "preferences"]
    assert receipt["refused"] == ["embedded", "marketing"]
    assert receipt["method"] == "api"
    assert receipt["page"] == "/article"
    assert receipt["ip"] == "203.0.113.0"  # truncated to /24 as site.toml says
    assert receipt["user_agent"] is None  # not recorded unless enabled
    assert len(receipt["signature"]) > 20
    assert len(receipt["hash"]) == 64
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith("consent=")
    assert "HttpOnly" in set_cookie
    assert "SameSite=Lax" in set_cookie
    assert "Max-Age=15724800" in set_cookie
    assert "Secure" not in set_cookie  # plain http
    assert receipts_in(db) == 1

    # The browser now holds the cookie: analytics cookies pass, marketing ones do not.
    assert client.get("/_consent").json()["decided"] is True
    names = [h.split("=")[0] for h in client.get("/").headers.get_list("set-cookie")]
    assert names == ["stats_vid", "session"]


def test_update_and_withdraw_events(client: TestClient, db: str) -> None:
    first = client.post("/_consent", json={"accept": "all"}, headers=SAME_ORIGIN).json()
    assert first["event"] == "given"
    assert first["state"]["granted"] == ["analytics", "embedded", "marketing", "preferences"]
    second = client.post("/_consent", json={"accept": ["analytics"]}, headers=SAME_ORIGIN).json()
    assert second["event"] == "updated"
    assert second["receipt"]["subject_id"] == first["receipt"]["subject_id"]
    client.cookies.set("stats_vid", "1")
    client.cookies.set("_ga", "2")
    withdrawn = client.delete("/_consent", headers=SAME_ORIGIN)
    assert withdrawn.status_code == 200
    body = withdrawn.json()
    assert body["event"] == "withdrawn"
    assert body["state"]["granted"] == []
    assert body["receipt"]["subject_id"] == first["receipt"]["subject_id"]
    expiries = [h for h in withdrawn.headers.get_list("set-cookie") if not h.startswith("consent=")]
    assert any(h.startswith("stats_vid=; Max-Age=0") for h in expiries)
    assert any(
        h.startswith("_ga=; Max-Age=0") and "Domain=.lindenhof-clinic.example" in h
        for h in expiries
    )
    assert receipts_in(db) == 3


def test_refusal_is_recorded_too(client: TestClient) -> None:
    data = client.post("/_consent", json={"accept": []}, headers=SAME_ORIGIN).json()
    assert data["event"] == "refused"
    assert data["state"]["decided"] is True
    assert data["receipt"]["granted"] == []


def test_gpc_decision_cannot_grant_sale_or_share(client: TestClient) -> None:
    data = client.post(
        "/_consent", json={"accept": "all"}, headers={**SAME_ORIGIN, "Sec-GPC": "1"}
    ).json()
    assert "marketing" not in data["state"]["granted"]
    assert data["receipt"]["gpc"] is True
    assert "marketing" in data["receipt"]["refused"]


# --------------------------------------------------------------------------- POST form (no JavaScript)


def test_form_post_redirects_same_origin_only(client: TestClient) -> None:
    response = client.post(
        "/_consent",
        data={"accept": ["analytics", "embedded"], "next": "/article?x=1"},
        headers=SAME_ORIGIN,
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/article?x=1"
    assert response.headers["set-cookie"].startswith("consent=")
    for evil in (
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "/ok\r\nSet-Cookie: x=1",
    ):
        r = client.post(
            "/_consent",
            data={"accept": "none", "next": evil},
            headers=SAME_ORIGIN,
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert r.headers["location"] == "/"
    data = client.get("/_consent").json()
    assert data["granted"] == []


@pytest.mark.parametrize(
    ("body", "headers", "page"),
    [
        # a query string may hold personal data (a search, an address): the path only
        ({"json": {"accept": [], "page": "/search?q=hiv+test&email=a@b.example#r"}}, {}, "/search"),
        ({"json": {"accept": [], "page": "https://evil.example/x"}}, {}, None),
        ({"json": {"accept": [], "page": "//evil.example/x"}}, {}, None),
        (
            {"data": {"accept": "none", "next": "/articles/1?email=a@b.example"}},
            {},
            "/articles/1",
        ),
        # a form whose next leads elsewhere: the page it was sent from, by its Referer
        (
            {"data": {"accept": "none", "next": "https://evil.example/"}},
            {"Referer": HOST + "/contact?name=Ann"},
            "/contact",
        ),
    ],
)
def test_the_page_recorded_is_a_path_of_the_site_without_its_query(
    client: TestClient, body: dict[str, Any], headers: dict[str, str], page: str | None
) -> None:
    response = client.post(
        "/_consent", headers={**SAME_ORIGIN, **headers}, follow_redirects=False, **body
    )
    assert response.status_code in (200, 303)
    assert client.get("/_consent/receipt").json()["receipt"]["page"] == page


ALL_OPTIONAL = ["analytics", "embedded", "marketing", "preferences"]


def test_form_accept_all(client: TestClient) -> None:
    client.post("/_consent", data={"accept": "all"}, headers=SAME_ORIGIN, follow_redirects=False)
    assert client.get("/_consent").json()["granted"] == ALL_OPTIONAL


@pytest.mark.parametrize(("button", "granted"), [("none", []), ("all", ALL_OPTIONAL)])
def test_a_form_button_overrides_the_ticked_boxes(
    client: TestClient, button: str, granted: list[str]
) -> None:
    """The form's boxes come before its buttons: a visitor who ticked Analytics and then
    pressed "Reject all" (or "Accept all") sends both, and the button is what they chose."""
    response = client.post(
        "/_consent",
        content=f"accept=analytics&accept={button}".encode(),
        headers={**SAME_ORIGIN, "content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert client.get("/_consent").json()["granted"] == granted


# --------------------------------------------------------------------------- bad requests record nothing


@pytest.mark.parametrize(
    ("kwargs", "status", "fragment"),
    [
        ({"json": {"accept": ["analytics", "profiling"]}}, 422, "unknown category: 'profiling'"),
        ({"json": {"accept": ["analytics\r\nX: y"]}}, 422, "unknown category"),
        ({"json": {"accept": ["a;b"]}}, 422, "unknown category"),
        (
            {"json": {"accept": [], "refuse": ["necessary"]}},
            422,
            "necessary categories cannot be refused",
        ),
        ({"json": {"accept": 5}}, 422, "'accept' must be"),
        ({"json": {"grant": []}}, 422, "'accept' field"),
        ({"json": ["analytics"]}, 422, "'accept' field"),
        (
            {"content": b'{"accept": [', "headers": {"content-type": "application/json"}},
            400,
            "malformed JSON",
        ),
        (
            {"content": b"accept=all", "headers": {"content-type": "text/plain"}},
            415,
            "unsupported content type",
        ),
        (
            {"content": b"x" * 20000, "headers": {"content-type": "application/json"}},
            413,
            "too large",
        ),
        ({"data": {"accept": "telemetry"}}, 422, "unknown category: 'telemetry'"),
        ({"data": {"accept": ["all", "none"]}}, 422, "cannot be both"),
        (
            {
                "content": b"accept=%ff",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            400,
            "form body is not UTF-8",
        ),
    ],
)
def test_bad_bodies_get_clear_4xx_and_record_nothing(
    client: TestClient, db: str, kwargs: dict[str, object], status: int, fragment: str
) -> None:
    headers = {**SAME_ORIGIN, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    response = client.post("/_consent", headers=headers, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status
    assert fragment in response.json()["error"]
    assert "set-cookie" not in response.headers
    assert receipts_in(db) == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://sub.testserver"},
        {},
    ],
)
def test_cross_site_posts_are_refused(client: TestClient, db: str, headers: dict[str, str]) -> None:
    response = client.post("/_consent", json={"accept": "all"}, headers=headers)
    assert response.status_code == 403
    assert response.json()["error"] == "cross-site request refused"
    assert "set-cookie" not in response.headers
    assert client.delete("/_consent", headers=headers).status_code == 403
    assert receipts_in(db) == 0


def test_an_http_page_cannot_decide_for_the_https_site(db: str) -> None:
    """A network attacker can write a plain-http page on the site's host; behind a proxy that
    ends TLS, an https page's request may arrive as http, which stays allowed."""
    mw = ConsentMiddleware(site, policy=EXAMPLE_POLICY, secret_key=KEY, store=db)
    with TestClient(mw, base_url="https://testserver") as c:
        refused = c.post(
            "/_consent", json={"accept": "all"}, headers={"Origin": "http://testserver"}
        )
        assert refused.status_code == 403
        assert c.delete("/_consent", headers={"Origin": "http://testserver"}).status_code == 403
        assert receipts_in(db) == 0
        same = c.post("/_consent", json={"accept": []}, headers={"Origin": "https://testserver"})
        assert same.status_code == 200
    with TestClient(mw, base_url="http://testserver") as c:
        proxied = c.post("/_consent", json={"accept": []}, headers={"Origin": "https://testserver"})
        assert proxied.status_code == 200
    assert receipts_in(db) == 2


def test_same_origin_fetch_metadata_and_trusted_origins(db: str) -> None:
    mw = ConsentMiddleware(
        site,
        policy=EXAMPLE_POLICY,
        secret_key=KEY,
        store=db,
        trusted_origins=["https://www.lindenhof.example"],
    )
    with TestClient(mw, base_url=HOST) as c:
        assert (
            c.post(
                "/_consent", json={"accept": []}, headers={"Sec-Fetch-Site": "same-origin"}
            ).status_code
            == 200
        )
        assert (
            c.post(
                "/_consent",
                json={"accept": []},
                headers={"Origin": "https://www.lindenhof.example"},
            ).status_code
            == 200
        )
    assert receipts_in(db) == 2


def test_method_not_allowed_and_unknown_paths(client: TestClient) -> None:
    response = client.put("/_consent", json={})
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]
    assert client.get("/_consent/nothing-here").status_code == 404
    assert client.post("/_consent/receipt").status_code == 405


# --------------------------------------------------------------------------- store unavailable


def test_store_unavailable_gives_503_sets_nothing_and_recording_resumes(tmp_path: Path) -> None:
    db_path = tmp_path / "consent.db"
    url = f"sqlite:///{db_path}"
    first = ConsentMiddleware(site, policy=EXAMPLE_POLICY, secret_key=KEY, store=url)
    with TestClient(first, base_url=HOST) as c:
        answer = c.post("/_consent", json={"accept": []}, headers=SAME_ORIGIN)
        assert answer.status_code == 200
        first_seq = answer.json()["receipt"]["seq"]

    # The database goes away (a directory now stands where the file was): works as root too.
    backup = tmp_path / "consent.db.moved"
    db_path.rename(backup)
    db_path.mkdir()
    mw = ConsentMiddleware(site, policy=EXAMPLE_POLICY, secret_key=KEY, store=url)
    with TestClient(mw, base_url=HOST) as c:
        response = c.post("/_consent", json={"accept": "all"}, headers=SAME_ORIGIN)
        assert response.status_code == 503
        assert response.json()["error"] == "consent could not be recorded"
        assert "nothing was recorded" in response.json()["detail"]
        assert "set-cookie" not in response.headers
        page_response = c.get("/")
        assert page_response.status_code == 200
        assert [h.split("=")[0] for h in page_response.headers.get_list("set-cookie")] == [
            "session"
        ]

        # The store comes back: the same running middleware records again.
        db_path.rmdir()
        backup.rename(db_path)
        again = c.post("/_consent", json={"accept": "all"}, headers=SAME_ORIGIN)
        assert again.status_code == 200, again.text
        assert again.json()["receipt"]["seq"] == first_seq + 1
    assert receipts_in(url) == 2


def test_store_unreachable_url_gives_503(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the database folder should be")
    url = f"sqlite:///{blocker / 'consent.db'}"
    mw = ConsentMiddleware(site, policy=EXAMPLE_POLICY, secret_key=KEY, store=url)
    with TestClient(mw, base_url=HOST) as c:
        response = c.post("/_consent", json={"accept": "all"}, headers=SAME_ORIGIN)
        assert response.status_code == 503
        assert response.json()["error"] == "consent could not be recorded"
        assert "set-cookie" not in response.headers
        assert c.get("/").status_code == 200


@pytest.mark.parametrize(("timeout", "expected"), [(0.3, 503), (30, 200)])
def test_receipts_timeout_is_how_long_a_decision_waits_for_the_store(
    tmp_path: Path, timeout: float, expected: int
) -> None:
    """``[receipts] timeout``: another program holds the SQLite write lock for a second. With
    a short timeout the decision is refused (and records nothing); with a long one it waits and
    is recorded once the lock is free."""
    policy = copy_policy(tmp_path)
    site_toml = policy / "site.toml"
    site_toml.write_text(
        site_toml.read_text().replace("[receipts]\n", f"[receipts]\ntimeout = {timeout}\n", 1)
    )
    db_path = tmp_path / "consent.db"
    url = f"sqlite:///{db_path}"
    mw = ConsentMiddleware(site, policy=policy, secret_key=KEY, store=url)
    assert mw.policy.site.receipts.timeout == timeout
    with TestClient(mw, base_url=HOST) as c:
        assert c.post("/_consent", json={"accept": []}, headers=SAME_ORIGIN).status_code == 200
        holder = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        release = threading.Timer(1.0, holder.execute, ("COMMIT",))
        release.start()
        try:
            response = c.post("/_consent", json={"accept": "all"}, headers=SAME_ORIGIN)
        finally:
            release.join()
            holder.close()
        assert response.status_code == expected, response.text
        assert ("set-cookie" in response.headers) == (expected == 200)
    assert receipts_in(url) == (2 if expected == 200 else 1)


# --------------------------------------------------------------------------- receipts


def test_receipt_json_and_html(client: TestClient, db: str) -> None:
    assert client.get("/_consent/receipt").status_code == 404
    posted = client.post("/_consent", json={"accept": ["analytics"]}, headers=SAME_ORIGIN).json()
    response = client.get("/_consent/receipt")
    assert response.status_code == 200
    data = response.json()
    assert data["receipt"]["receipt_id"] == posted["receipt_id"]
    assert data["kantara"]["version"] == "KI-CR-v1.1.0"
    assert data["kantara"]["consentReceiptID"] == posted["receipt_id"]
    html = client.get("/_consent/receipt", headers={"Accept": "text/html"})
    assert html.headers["content-type"].startswith("text/html")
    assert posted["receipt_id"] in html.text
    assert "Your consent receipt" in html.text
    assert verify_store(open_store(db, ReceiptSigner([KEY])), ReceiptSigner([KEY])).ok


# --------------------------------------------------------------------------- declaration, assets, root_path


def test_answers_chosen_by_accept_vary_on_it(client: TestClient, mw: ConsentMiddleware) -> None:
    """The declaration and a revision's text are HTML for a browser and JSON otherwise: a
    shared cache must not hand one to the other."""
    revision = mw.policy.revision
    for path in ("/_consent/declaration", f"/_consent/revision/{revision}"):
        for accept in ("text/html", "application/json"):
            response = client.get(path, headers={"Accept": accept})
            assert response.status_code == 200
            tokens = [t.strip().lower() for t in response.headers["vary"].split(",")]
            assert "accept" in tokens, (path, accept, tokens)
            assert len(tokens) == len(set(tokens)), tokens


def test_declaration_html_has_a_no_js_form(client: TestClient) -> None:
    response = client.get("/_consent/declaration", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert '<form method="post" action="/_consent"' in response.text
    assert 'name="accept" value="analytics"' in response.text
    assert "stats_vid" in response.text
    data = client.get("/_consent/declaration?format=json").json()
    assert data["categories"][2]["key"] == "marketing"


def test_banner_assets_served_with_etag(client: TestClient) -> None:
    js = client.get("/_consent/banner.js")
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    assert (
        client.get("/_consent/banner.js", headers={"If-None-Match": js.headers["etag"]}).status_code
        == 304
    )
    assert client.get("/_consent/banner.css").status_code == 200
    strings = client.get("/_consent/i18n/de.json").json()
    assert strings["accept_all"]


def test_prefix_resolved_against_root_path(db: str) -> None:
    mw = ConsentMiddleware(
        site, policy=EXAMPLE_POLICY, secret_key=KEY, store=db, prefix="/privacy/consent/"
    )
    with TestClient(mw, base_url=HOST, root_path="/shop") as c:
        data = c.get("/shop/privacy/consent").json()
        assert data["prefix"] == "/shop/privacy/consent"
        assert (
            c.post("/shop/privacy/consent", json={"accept": []}, headers=SAME_ORIGIN).status_code
            == 200
        )


def test_the_signed_body_says_what_the_answer_says(client: TestClient) -> None:
    posted = client.post("/_consent", json={"accept": ["analytics"]}, headers=SAME_ORIGIN).json()
    receipt = posted["receipt"]
    body = json.loads(receipt["body"])
    for field in ("receipt_id", "subject_id", "event", "granted", "refused", "revision", "method"):
        assert body[field] == receipt[field], field
    assert body["granted"] == ["analytics"]


# --------------------------------------------------------------------------- languages


def test_notice_and_texts_follow_the_language(client: TestClient) -> None:
    german = client.get("/_consent?lang=de").json()
    assert german["notice"].startswith("Die Lindenhof-Klinik verwendet Cookies")
    english = client.get("/_consent").json()
    assert english["notice"].startswith("The Lindenhof Clinic uses cookies")
    by_header = client.get(
        "/_consent", headers={"Accept-Language": "fr-CH, fr;q=0.9, en;q=0.5"}
    ).json()
    assert by_header["language"] == "fr"
    assert by_header["notice"].startswith("La Clinique Lindenhof")
    # A language the site has no text in is not the one the visitor reads (nor what a receipt
    # should record): the site's default is.
    for asked in ("it", "%E4%B8%AD%E6%96%87", "x1"):
        answer = client.get(f"/_consent?lang={asked}").json()
        assert answer["language"] == "en", asked
        assert answer["notice"] == english["notice"]
    italian_first = client.get("/_consent", headers={"Accept-Language": "it, de;q=0.8"}).json()
    assert italian_first["language"] == "de"


def test_a_language_of_the_policy_counts_without_a_bundled_translation(
    tmp_path: Path, db: str
) -> None:
    policy = copy_policy(tmp_path)
    with (policy / "analytics.toml").open("a") as fh:
        fh.write(
            '\n[translations.it]\ntitle = "Statistiche"\ndescription = "Misurano le visite."\n'
        )
    mw = ConsentMiddleware(site, policy=policy, secret_key=KEY, store=db)
    with TestClient(mw, base_url=HOST) as c:
        answer = c.get("/_consent?lang=it").json()
        assert answer["language"] == "it"
        titles = {cat["key"]: cat["title"] for cat in answer["categories"]}
        assert titles["analytics"] == "Statistiche"


def test_declaration_page_and_form_in_german(client: TestClient) -> None:
    page = client.get("/_consent/declaration?lang=de", headers={"Accept": "text/html"}).text
    assert "<h1>Cookie-Erklärung</h1>" in page
    assert "<legend>Ihre Cookie-Auswahl</legend>" in page
    assert ">Alle akzeptieren</button>" in page
    assert "Statistik</label>" in page


def test_a_decision_in_german_is_recorded_and_shown_in_german(client: TestClient) -> None:
    """The receipt keeps what the visitor read (the German titles) and who receives data; the
    receipt page speaks the visitor's language."""
    posted = client.post(
        "/_consent?lang=de", json={"accept": ["analytics", "marketing"]}, headers=SAME_ORIGIN
    ).json()
    receipt = posted["receipt"]
    assert receipt["language"] == "de"
    purposes = {p["key"]: p for p in receipt["purposes"]}
    assert purposes["analytics"]["title"] == "Statistik"
    assert purposes["embedded"]["title"] == "Eingebettete Videos"
    assert purposes["marketing"]["third_parties"] == [
        "AdPixel Networks",
        "Meta Platforms",
        "Google Ads",
    ]
    assert purposes["embedded"]["third_parties"] == ["Google (YouTube)"]
    assert purposes["analytics"]["third_parties"] == []
    kantara = client.get("/_consent/receipt").json()["kantara"]
    services = {p["purposeCategory"][0]: p for p in kantara["services"][0]["purposes"]}
    assert services["marketing"]["thirdPartyDisclosure"] is True
    assert services["marketing"]["thirdPartyName"] == "AdPixel Networks, Meta Platforms, Google Ads"
    assert services["analytics"]["thirdPartyDisclosure"] is False
    # a policy URL that is a path is made absolute: the receipt is read away from the site
    assert kantara["policyUrl"] == "http://testserver/cookie-policy"

    page = client.get("/_consent/receipt?lang=de", headers={"Accept": "text/html"}).text
    assert '<html lang="de">' in page
    assert '<h1 id="consent-title">Ihr Einwilligungsnachweis</h1>' in page
    assert '<th scope="col">Erlaubt</th>' in page
    assert "<td>erteilt</td><td>Statistik, Marketing</td>" in page  # not "given" (WCAG 3.1.2)
    assert "Your consent receipt" not in page
    english = client.get("/_consent/receipt", headers={"Accept": "text/html"}).text
    assert '<th scope="col">Granted</th>' in english
    assert "<td>given</td><td>Analytics, Marketing</td>" in english


def test_a_refusal_in_french_reads_as_french(client: TestClient) -> None:
    client.post("/_consent?lang=fr", json={"accept": []}, headers=SAME_ORIGIN)
    page = client.get("/_consent/receipt?lang=fr", headers={"Accept": "text/html"}).text
    assert '<th scope="col">Autorisés</th>' in page
    assert "<td>consentement refusé</td><td>aucune catégorie</td>" in page
    declaration = client.get("/_consent/declaration?lang=fr", headers={"Accept": "text/html"})
    assert "Responsable de ce site\u00a0: Lindenhof Clinic gGmbH" in declaration.text
    assert "<td>noms commençant par <code>stats_ses</code></td>" in declaration.text
    assert "stats_ses*" not in declaration.text  # visitors read no globs
    assert "<td><code>_ga</code> et les noms commençant par <code>_ga_</code></td>" in (
        declaration.text
    )


def test_the_declaration_names_who_receives_data(client: TestClient) -> None:
    data = client.get("/_consent/declaration?format=json").json()
    shared = {c["key"]: c["third_parties"] for c in data["categories"]}
    assert shared["embedded"] == ["Google (YouTube)"]
    page = client.get("/_consent/declaration?lang=de", headers={"Accept": "text/html"}).text
    assert "Weitergegeben an: AdPixel Networks, Meta Platforms, Google Ads." in page


def test_cookie_texts_follow_the_language(client: TestClient) -> None:
    german = client.get("/_consent?lang=de").json()
    cookies = {c["name"]: c for cat in german["categories"] for c in cat["cookies"]}
    assert cookies["stats_vid"]["purpose"].startswith("Erkennt einen wiederkehrenden Browser")
    assert cookies["stats_vid"]["duration"] == "13 Monate"
    page = client.get("/_consent/declaration?lang=fr", headers={"Accept": "text/html"}).text
    assert "<td>Mémorise votre langue.</td><td>1 an</td>" in page
    english = client.get("/_consent").json()
    cookies = {c["name"]: c for cat in english["categories"] for c in cat["cookies"]}
    assert cookies["stats_vid"]["duration"] == "13 months"
    # a translation may leave a piece out: it falls back to the rule's own text
    policy = load_policy(EXAMPLE_POLICY)
    rule = policy.categories["preferences"].cookies[1]
    partial = rule.model_copy(update={"translations": {"it": CookieText(purpose="La lingua.")}})
    assert (partial.text("it").purpose, partial.text("it").duration) == ("La lingua.", "1 year")


def test_receipt_page_before_a_decision_is_a_readable_404(client: TestClient) -> None:
    response = client.get("/_consent/receipt", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert 'href="/_consent/declaration"' in response.text
    assert (
        client.get("/_consent/receipt").json()["error"]
        == "no consent decision recorded for this browser"
    )
