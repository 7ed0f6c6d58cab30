"""The demo site without a browser: Starlette's TestClient, and ``consent demo`` as a process."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from consent.demo import POLICY_DIR, DemoApp, create_app, from_env

HOST = "http://testserver"
KEY = "demo-test-key-0123456789abcdef"
ARTICLE = "/articles/pacing-after-long-covid"
PAGES = [
    "/",
    ARTICLE,
    "/articles/knee-replacement-recovery",
    "/newsletter",
    "/contact",
    "/contact?topic=trial",
    "/cookie-policy",
    "/?lang=de",
    ARTICLE + "?lang=de",
    "/cookie-policy?lang=de",
]
ASSETS = [
    "/static/site.css",
    "/static/stats.js",
    "/static/pixel.js",
    "/static/favicon.svg",
    "/favicon.ico",
    "/pixel.gif",
    "/video-platform/embed/pacing-in-daily-life",
    "/video-platform/watch/pacing-in-daily-life",
    "/_consent/banner.js",
    "/_consent/banner.css",
]


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """Cookie name -> the whole Set-Cookie header, for every cookie the response sets."""
    out = {}
    for header in response.headers.get_list("set-cookie"):
        out[header.split("=", 1)[0].strip()] = header
    return out


def stored(response: httpx.Response) -> set[str]:
    """Names of cookies the response stores (deletions excluded)."""
    return {
        name
        for name, header in set_cookies(response).items()
        if "max-age=0" not in header.lower() and "1970" not in header
    }


def decide(client: TestClient, accept: list[str] | str, **headers: str) -> httpx.Response:
    response = client.post(
        "/_consent", json={"accept": accept}, headers={"Origin": HOST, **headers}
    )
    assert response.status_code == 200, response.text
    return response


@pytest.fixture
def app() -> DemoApp:
    return create_app(secret_key=KEY, store="memory://")


@pytest.fixture
def client(app: DemoApp) -> Iterator[TestClient]:
    with TestClient(app, base_url=HOST) as c:
        yield c


# --------------------------------------------------------------------------- pages


@pytest.mark.parametrize("path", PAGES)
def test_every_page_answers(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert html.startswith("<!doctype html>")
    assert "/_consent/banner.js" in html  # injected by the middleware
    assert 'class="consent-noscript"' in html  # no decision yet
    assert "http://" not in html.replace('href="http://testserver', "")
    assert "https://" not in html


@pytest.mark.parametrize("path", ASSETS)
def test_every_asset_answers(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 200


def test_unknown_pages_answer_404_in_the_layout(client: TestClient) -> None:
    for path in ("/nowhere", "/articles/nowhere"):
        response = client.get(path)
        assert response.status_code == 404
        assert "Page not found" in response.text
        assert 'href="/"' in response.text


def test_pages_are_in_the_chosen_language(client: TestClient) -> None:
    english = client.get(ARTICLE).text
    assert '<html lang="en">' in english
    assert "Pacing after long COVID" in english
    german = client.get(ARTICLE + "?lang=de").text
    assert '<html lang="de">' in german
    assert "Pacing nach Long COVID" in german
    assert 'href="/newsletter?lang=de"' in german  # links keep the language


def _noscript(html: str) -> str:
    return html.split("<noscript>", 1)[1].split("</noscript>", 1)[0]


def test_the_no_javascript_form_speaks_the_page_language_and_shows_gpc(
    client: TestClient,
) -> None:
    """Without JavaScript a visitor gets what the banner's first layer gives: the notice, the
    policy link, the choices in their language, and Global Privacy Control's effect."""
    english = _noscript(client.get(ARTICLE).text)
    assert 'lang="en"' in english
    assert '<a href="/cookie-policy">Cookie policy</a>' in english
    assert 'name="accept" value="marketing"' in english

    german = _noscript(client.get(ARTICLE + "?lang=de").text)
    assert 'lang="de"' in german
    assert "<legend>Ihre Cookie-Auswahl</legend>" in german
    assert "Statistik</label>" in german
    assert ">Alle ablehnen</button>" in german
    assert ">Cookie-Richtlinie</a>" in german
    assert "Your cookie choices" not in german

    with_gpc = _noscript(client.get(ARTICLE, headers={"Sec-GPC": "1"}).text)
    assert 'value="marketing"' not in with_gpc  # cannot be ticked
    assert "Marketing — Off (Global Privacy Control)</label>" in with_gpc
    assert "Global Privacy Control signal" in with_gpc
    assert 'name="accept" value="analytics"' in with_gpc


def test_gated_markup_before_consent(client: TestClient) -> None:
    html = client.get(ARTICLE).text
    assert (
        '<script type="text/plain" data-consent="analytics" src="/static/stats.js" nonce="' in html
    )
    assert (
        '<script type="text/plain" data-consent="marketing" src="/static/pixel.js" nonce="' in html
    )
    assert '<iframe data-consent="embedded" data-src="/video-platform/embed/' in html
    assert '<img class="pixel" data-consent="marketing" data-src="/pixel.gif"' in html
    # Without JavaScript the iframe shows the middleware's page with a link to the settings.
    assert 'src="/_consent/embed?category=embedded"' in html


def test_the_video_platform_is_not_behind_the_clinics_middleware(client: TestClient) -> None:
    response = client.get("/video-platform/embed/pacing-in-daily-life")
    assert response.status_code == 200
    assert "banner.js" not in response.text
    assert "consent-noscript" not in response.text
    assert "vary" not in response.headers


# --------------------------------------------------------------------------- cookies


def test_only_necessary_cookies_before_consent(client: TestClient) -> None:
    for path in PAGES:
        assert stored(client.get(path)) <= {"csrftoken"}, path
    assert stored(client.get("/pixel.gif")) == set()
    assert stored(client.get("/?lang=de")) == set()  # the language is a preference


def test_stats_vid_only_after_analytics_consent(client: TestClient) -> None:
    assert "stats_vid" not in stored(client.get("/"))
    decided = decide(client, ["analytics"])
    assert "consent" in set_cookies(decided)
    page = client.get("/")
    assert "stats_vid" in stored(page)
    # The server now un-gates the analytics script but not the marketing one.
    assert '<script data-consent="analytics" src="/static/stats.js" nonce="' in page.text
    assert '<script type="text/plain" data-consent="marketing"' in page.text
    assert 'class="consent-noscript"' not in page.text
    # The visitor id stays the same across pages.
    vid = client.cookies["stats_vid"]
    client.get(ARTICLE)
    assert client.cookies["stats_vid"] == vid


def test_withdrawing_analytics_expires_stats_vid(client: TestClient) -> None:
    decide(client, "all")
    client.get("/")
    assert "stats_vid" in client.cookies
    response = decide(client, ["marketing"])
    header = set_cookies(response)["stats_vid"]
    assert "max-age=0" in header.lower() or "1970" in header
    assert "stats_vid" not in client.cookies


def test_pixel_sets_px_uid_only_with_marketing_consent(client: TestClient) -> None:
    assert "px_uid" not in stored(client.get("/pixel.gif"))
    decide(client, ["analytics", "preferences", "embedded"])
    assert "px_uid" not in stored(client.get("/pixel.gif"))
    decide(client, ["marketing"])
    response = client.get("/pixel.gif")
    assert response.headers["content-type"] == "image/gif"
    assert "px_uid" in stored(response)
    page = client.get("/").text
    assert '<img class="pixel" data-consent="marketing" src="/pixel.gif"' in page


def test_gpc_keeps_the_pixel_quiet(client: TestClient) -> None:
    gpc = {"Sec-GPC": "1"}
    decided = decide(client, "all", **gpc).json()
    assert "marketing" in decided["state"]["denied"]
    assert "px_uid" not in stored(client.get("/pixel.gif", headers=gpc))
    assert "stats_vid" in stored(client.get("/", headers=gpc))


def test_cookie_policy_shows_what_reaches_the_application(client: TestClient) -> None:
    client.cookies.set("stats_vid", "v1")
    client.cookies.set("px_uid", "p1")
    client.cookies.set("session", "s1")
    html = client.get("/cookie-policy").text
    table = html[html.index('class="server-sees"') :]
    table = table[: table.index("</table>")]
    assert "<code>session</code>" in table
    assert "stats_vid" not in table
    assert "px_uid" not in table
    assert "You have not made a choice yet." in html

    decide(client, ["analytics"])
    html = client.get("/cookie-policy").text
    table = html[html.index('class="server-sees"') :]
    table = table[: table.index("</table>")]
    assert "<code>stats_vid</code>" in table
    assert "px_uid" not in table
    assert "You allowed: Analytics." in html
    assert 'href="/_consent/receipt"' in html


# --------------------------------------------------------------------------- forms


@pytest.mark.parametrize(
    ("path", "fields", "thanks"),
    [
        ("/newsletter", {"email": "reader@example.org"}, "confirm the link"),
        (
            "/contact",
            {"name": "A. Reader", "email": "reader@example.org", "topic": "trial", "question": "?"},
            "patient service",
        ),
    ],
)
def test_forms_work_with_the_csrf_cookie(
    client: TestClient, path: str, fields: dict[str, str], thanks: str
) -> None:
    page = client.get(path)
    assert "csrftoken" in stored(page)
    token = client.cookies["csrftoken"]
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match is not None
    assert match.group(1) == token

    sent = client.post(path, data={"csrf": token, **fields})
    assert sent.status_code == 200
    assert thanks in sent.text
    assert "session" in stored(sent)  # necessary: set without consent

    forged = client.post(path, data={"csrf": "forged", **fields})
    assert forged.status_code == 400
    assert "The form expired" in forged.text

    client.cookies.clear()
    assert client.post(path, data={"csrf": token, **fields}).status_code == 400


def test_a_german_form_posts_back_in_german(client: TestClient) -> None:
    page = client.get("/newsletter?lang=de")
    assert 'action="/newsletter?lang=de"' in page.text
    token = client.cookies["csrftoken"]
    sent = client.post("/newsletter?lang=de", data={"csrf": token, "email": "a@example.org"})
    assert "Vielen Dank" in sent.text


def test_text_size_needs_preference_consent(client: TestClient) -> None:
    refused = client.get(
        "/preferences?font=large", headers={"referer": HOST + ARTICLE}, follow_redirects=False
    )
    assert refused.status_code == 303
    assert refused.headers["location"] == ARTICLE + "?pref=blocked"
    assert "font_size" not in stored(refused)
    explained = client.get(refused.headers["location"]).text
    assert 'class="site-notice"' in explained
    assert "preference cookies" in explained

    decide(client, ["preferences"])
    allowed = client.get(
        "/preferences?font=large", headers={"referer": HOST + ARTICLE}, follow_redirects=False
    )
    assert allowed.headers["location"] == ARTICLE
    assert "font_size" in stored(allowed)
    assert '<body class="font-large">' in client.get(ARTICLE).text


def test_preferences_never_redirect_off_site(client: TestClient) -> None:
    for referer in ("https://elsewhere.example/x", "//elsewhere.example/x", "javascript:x"):
        response = client.get(
            "/preferences?font=large", headers={"referer": referer}, follow_redirects=False
        )
        assert response.headers["location"].startswith("/"), referer
        assert not response.headers["location"].startswith("//"), referer


def test_language_cookie_only_with_preference_consent(client: TestClient) -> None:
    assert "lang" not in stored(client.get("/?lang=de"))
    decide(client, ["preferences"])
    assert "lang" in stored(client.get("/?lang=de"))
    assert '<html lang="de">' in client.get("/").text  # remembered


def test_receipt_page_after_a_decision(client: TestClient) -> None:
    decide(client, ["analytics"])
    page = client.get("/_consent/receipt", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "Your consent receipt" in page.text


def test_from_env_reads_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONSENT_SECRET_KEY", KEY)
    monkeypatch.setenv("CONSENT_DEMO_STORE", "memory://")
    policy = tmp_path / "policy"
    policy.symlink_to(POLICY_DIR, target_is_directory=True)
    monkeypatch.setenv("CONSENT_DEMO_POLICY", str(policy))
    app = from_env()
    assert app.consent.policy.source is not None
    with TestClient(app, base_url=HOST) as client:
        assert client.get("/").status_code == 200


# --------------------------------------------------------------------------- consent demo


def consent_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consent.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        timeout=60,
    )


def test_consent_demo_help() -> None:
    result = consent_cli("demo", "--help")
    assert result.returncode == 0, result.stderr
    assert "--port" in result.stdout
    assert "Lindenhof Clinic" in result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_consent_demo_serves_on_the_given_port(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "CONSENT_SECRET_KEY"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "consent.cli",
            "demo",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=tmp_path,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 20
        page = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                page = httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert page is not None, "the demo did not answer within 20 s"
        assert page.status_code == 200
        assert "Lindenhof Clinic" in page.text
        assert "/_consent/banner.js" in page.text
        state = httpx.get(url + "_consent", timeout=5).json()
        assert state["decided"] is False
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert f"http://127.0.0.1:{port}/" in output, output
    assert "generated for this run" in output, output
