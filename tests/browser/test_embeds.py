"""Placeholders of embedded content and the site's own banner words, in a real Chromium.

A small Starlette site behind ConsentMiddleware (the demo's policy, a real SQLite store) runs
under uvicorn in a thread; its page holds two gated iframes of the "embedded" category.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import BrowserContext, Page, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from consent import ConsentMiddleware
from consent.demo import POLICY_DIR

from ..helpers import run_consent
from .conftest import TEST_KEY, copy_demo_policy, require_chromium

require_chromium()
pytestmark = pytest.mark.browser

PAGE = """<!doctype html>
<html{lang}><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Two videos</title></head>
<body><main><h1>Two videos</h1>
<p><a href="/elsewhere">A link before the videos</a></p>
<iframe id="a" data-consent="embedded" data-src="/frame/a"
  src="/_consent/embed?category=embedded" title="Video A"></iframe>
<iframe id="b" data-consent="embedded" data-src="/frame/b"
  src="/_consent/embed?category=embedded" title="Video B"></iframe>
</main></body></html>"""


class Site:
    def __init__(self, url: str, store: str) -> None:
        self.url = url
        self.store = store

    def receipts(self) -> list[dict[str, Any]]:
        """The receipts in the store, through ``consent export`` (and ``consent verify``)."""
        verified = run_consent("verify", "--store", self.store, key=TEST_KEY)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        out = run_consent("export", "--store", self.store, key=TEST_KEY)
        assert out.returncode == 0, out.stderr
        rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        # Receipts only: not the chain head line, nor the log's own records (the policy
        # archive's, the keyed chain's).
        events = ("given", "refused", "updated", "withdrawn", "once")
        return [row for row in rows if row.get("event") in events]


@pytest.fixture
def start_site(tmp_path: Path) -> Iterator[Callable[..., Site]]:
    servers: list[tuple[uvicorn.Server, threading.Thread, socket.socket]] = []

    def start(policy: Path = POLICY_DIR, *, lang: str = "en") -> Site:
        async def two(request: Request) -> HTMLResponse:
            return HTMLResponse(PAGE.format(lang=f' lang="{lang}"' if lang else ""))

        async def frame(request: Request) -> HTMLResponse:
            name = request.path_params["name"]
            return HTMLResponse(f'<!doctype html><p id="player">Player {name}</p>')

        store = f"sqlite:///{tmp_path / f'consent-{len(servers)}.db'}"
        app = ConsentMiddleware(
            Starlette(
                routes=[
                    Route("/two", two),
                    Route("/frame/{name}", frame),
                    Route("/favicon.ico", lambda request: Response(status_code=204)),
                ]
            ),
            policy=policy,
            secret_key=TEST_KEY,
            store=store,
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        servers.append((server, thread, sock))
        for _ in range(400):
            if server.started or not thread.is_alive():
                break
            time.sleep(0.05)
        assert server.started, "the site did not start"
        return Site(f"http://127.0.0.1:{sock.getsockname()[1]}", store)

    try:
        yield start
    finally:
        for server, thread, sock in servers:
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()


def open_two(context: BrowserContext, site: Site) -> Page:
    page = context.new_page()
    page.goto(site.url + "/two")
    expect(page.locator(".consent-embed")).to_have_count(2)
    return page


def player(page: Page, frame_id: str) -> None:
    page.frame_locator(f"iframe#{frame_id}").locator("#player").wait_for()


def jar(context: BrowserContext) -> set[str]:
    return {c["name"] for c in context.cookies()}


def test_placeholder_says_what_and_from_whom(
    context: BrowserContext, start_site: Callable[..., Site], screenshots: Path
) -> None:
    page = open_two(context, start_site())
    first = page.locator(".consent-embed").first
    expect(first).to_have_attribute("role", "group")
    expect(first.locator(".consent-embed-title")).to_have_text("Video A")
    expect(first.locator(".consent-embed-text")).to_contain_text("Google (YouTube)")
    expect(first.locator(".consent-embed-text")).to_contain_text("Embedded videos")
    expect(first.locator("button.consent-embed-once")).to_have_text("Load this once")
    expect(first.locator("button.consent-embed-always")).to_have_text(
        "Always allow Embedded videos"
    )
    # The group is named by the title; each button is described by the title and the text
    # (two "Load this once" buttons on a page are told apart).
    labelled = first.get_attribute("aria-labelledby")
    assert labelled
    assert page.locator(f"#{labelled}").inner_text() == "Video A"
    described = first.locator("button.consent-embed-once").get_attribute("aria-describedby")
    assert described is not None
    assert labelled in described.split()
    # The iframes wait, hidden, behind their placeholders.
    expect(page.locator("iframe#a")).to_be_hidden()
    expect(page.locator("iframe#b")).to_be_hidden()
    page.screenshot(path=screenshots / "embed-placeholders.png")


def test_load_once_loads_only_that_embed_and_records_a_receipt(
    context: BrowserContext, start_site: Callable[..., Site]
) -> None:
    site = start_site()
    page = open_two(context, site)
    page.locator(".consent-embed").first.locator("button.consent-embed-once").click()
    player(page, "a")
    # Only that one: the other still waits behind its placeholder.
    assert page.get_attribute("iframe#a", "src") == "/frame/a"
    assert page.get_attribute("iframe#b", "data-src") == "/frame/b"
    expect(page.locator(".consent-embed")).to_have_count(1)
    expect(page.locator("iframe#b")).to_be_hidden()
    # The standing choice did not change: no consent cookie, the banner still asks.
    assert "consent" not in jar(context)
    assert page.evaluate("window.consent.state.decided") is False
    expect(page.locator("#consent-banner")).to_be_visible()

    [receipt] = site.receipts()
    assert receipt["event"] == "once"
    assert receipt["method"] == "embed"
    assert receipt["granted"] == ["embedded"]
    assert receipt["refused"] == []
    assert receipt["page"] == "/two"
    [purpose] = receipt["purposes"]
    assert purpose["key"] == "embedded"
    assert purpose["granted"] is True
    assert purpose["third_parties"] == [site.url.removeprefix("http://")]

    # Once is for this page view: the next one asks again.
    page.reload()
    expect(page.locator(".consent-embed")).to_have_count(2)


def test_always_allow_grants_the_category_and_loads_every_embed(
    context: BrowserContext, start_site: Callable[..., Site]
) -> None:
    site = start_site()
    page = open_two(context, site)
    page.locator(".consent-embed").nth(1).locator("button.consent-embed-always").click()
    player(page, "a")
    player(page, "b")
    expect(page.locator(".consent-embed")).to_have_count(0)
    assert "consent" in jar(context)
    assert page.evaluate("window.consent.state.granted") == ["embedded"]
    expect(page.locator("#consent-banner")).to_have_count(0)
    expect(page.locator("#consent-settings")).to_be_visible()

    [receipt] = site.receipts()
    assert receipt["event"] == "given"
    assert receipt["method"] == "embed"
    assert receipt["granted"] == ["embedded"]
    assert "analytics" in receipt["refused"]

    # From now on the server activates them: no placeholder, no embed.js.
    page.reload()
    player(page, "a")
    assert page.get_attribute("iframe#b", "src") == "/frame/b"
    assert page.locator(".consent-embed").count() == 0
    assert page.locator('script[src$="/embed.js"]').count() == 0


def test_always_allow_keeps_the_other_categories_granted(
    context: BrowserContext, start_site: Callable[..., Site]
) -> None:
    site = start_site()
    page = context.new_page()
    page.goto(site.url + "/two")
    page.click("#consent-customize")
    page.click("#consent-toggle-analytics")
    page.click("#consent-save")
    page.locator(".consent-embed").first.locator("button.consent-embed-always").click()
    player(page, "b")
    assert sorted(page.evaluate("window.consent.state.granted")) == ["analytics", "embedded"]
    assert [r["event"] for r in site.receipts()] == ["given", "updated"]


def test_keyboard_only(context: BrowserContext, start_site: Callable[..., Site]) -> None:
    page = open_two(context, start_site())
    once_a = page.locator("#consent-embed-1-once")
    always_b = page.locator("#consent-embed-2-always")
    for _ in range(30):
        page.keyboard.press("Tab")
        if once_a.evaluate("(b) => b === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reached the first 'Load this once'")
    page.keyboard.press("Enter")
    player(page, "a")
    # The focus moves to what was loaded, not back to the top of the page.
    assert page.evaluate("document.activeElement.id") == "a"
    for _ in range(10):
        page.keyboard.press("Tab")
        if always_b.evaluate("(b) => b === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reached 'Always allow'")
    page.keyboard.press("Space")
    player(page, "b")
    assert page.evaluate("document.activeElement.id") == "b"
    assert page.evaluate("window.consent.state.granted") == ["embedded"]


def test_without_javascript_the_frame_links_to_the_settings(
    make_context: Callable[..., BrowserContext], start_site: Callable[..., Site]
) -> None:
    site = start_site()
    context = make_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(site.url + "/two")
    link = page.frame_locator("iframe#a").locator("a.consent-embed-settings")
    expect(link).to_have_text("Cookie settings")
    assert link.get_attribute("href") == "/_consent/declaration?next=%2Ftwo"
    assert link.get_attribute("target") == "_top"
    link.click()
    page.wait_for_url("**/_consent/declaration**")
    page.click('form.consent-form button[value="all"]')
    page.wait_for_url(site.url + "/two")
    player(page, "a")
    player(page, "b")


# ---------------------------------------------------------------------- the site's words


def spanish_policy(tmp_path: Path, languages: str) -> Path:
    policy = copy_demo_policy(tmp_path / "policy")
    site = policy / "site.toml"
    text = site.read_text(encoding="utf-8")
    site.write_text(text.replace("[banner]\n", f"[banner]\nlanguages = {languages}\n", 1))
    (policy / "banner").mkdir()
    (policy / "banner" / "es.json").write_text(
        json.dumps(
            {
                "accept_all": "Aceptar todo",
                "reject_all": "Rechazar todo",
                "customize": "Personalizar",
                "embed_once": "Cargar solo esta vez",
            }
        ),
        encoding="utf-8",
    )
    (policy / "banner" / "en.json").write_text(
        json.dumps({"accept_all": "Yes to all"}), encoding="utf-8"
    )
    return policy


def test_the_banner_shows_the_sites_words(
    make_context: Callable[..., BrowserContext],
    start_site: Callable[..., Site],
    tmp_path: Path,
) -> None:
    site = start_site(spanish_policy(tmp_path, '["en", "es"]'), lang="")
    # A Spanish browser: the site's Spanish words, English for the keys it leaves out.
    spanish = make_context(locale="es-ES").new_page()
    spanish.goto(site.url + "/two")
    expect(spanish.locator("#consent-accept-all")).to_have_text("Aceptar todo")
    expect(spanish.locator("#consent-reject-all")).to_have_text("Rechazar todo")
    expect(spanish.locator("#consent-customize")).to_have_text("Personalizar")
    expect(spanish.locator("button.consent-embed-once").first).to_have_text("Cargar solo esta vez")
    expect(spanish.locator("#consent-banner")).to_have_attribute("lang", "es")
    # German is bundled but not among the site's languages: English, with its override.
    german = make_context(locale="de-DE").new_page()
    german.goto(site.url + "/two")
    expect(german.locator("#consent-accept-all")).to_have_text("Yes to all")
    expect(german.locator("#consent-reject-all")).to_have_text("Reject all")
    # A German page on that site: the banner follows the state's language, not the page's.
    german_page = start_site(spanish_policy(tmp_path / "de", '["en", "es"]'), lang="de")
    german.goto(german_page.url + "/two")
    expect(german.locator("#consent-accept-all")).to_have_text("Yes to all")
    expect(german.locator("#consent-banner")).to_have_attribute("lang", "en")
