"""What a visitor of the demo site notices, in a real (headless) Chromium.

Every test opens a fresh browser context against the module's demo server, so cookie jars never
mix; assertions read the jar through ``context.cookies()`` and look at the page as it is shown.
"""

from __future__ import annotations

import re
import secrets
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

from .conftest import TEST_KEY, DemoServer, copy_demo_policy, require_chromium

require_chromium()
pytestmark = pytest.mark.browser

ARTICLE = "/articles/pacing-after-long-covid"
NECESSARY = {"consent", "csrftoken", "session", "sessionid", "__Host-lb"}
ANALYTICS = {"stats_vid", "stats_ses"}
MARKETING = {"px_uid", "_fbp"}
BUTTONS = ("#consent-accept-all", "#consent-reject-all", "#consent-customize")
# Everything that makes two buttons look alike (or not).
STYLE_PROPS = (
    "font-size",
    "font-weight",
    "font-family",
    "padding-top",
    "padding-right",
    "padding-bottom",
    "padding-left",
    "color",
    "background-color",
    "border-top-color",
    "border-top-width",
    "border-top-left-radius",
    "text-decoration-line",
)


def names(context: BrowserContext) -> set[str]:
    return {c["name"] for c in context.cookies()}


def optional_cookies(context: BrowserContext) -> set[str]:
    """Cookies in the jar that are not strictly necessary."""
    return names(context) - NECESSARY


def open_page(context: BrowserContext, url: str) -> Page:
    """A new tab showing ``url``, once the banner has loaded the visitor's state."""
    page = context.new_page()
    page.goto(url)
    page.wait_for_function("() => window.consent && window.consent.state !== null")
    return page


def wait_for_cookies(context: BrowserContext, page: Page, wanted: set[str]) -> None:
    """Wait until every cookie in ``wanted`` is in the jar (set by a script or a response)."""
    for _ in range(100):
        if wanted <= names(context):
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"cookies {sorted(wanted - names(context))} never arrived")


def styles(page: Page, selector: str) -> dict[str, Any]:
    return page.eval_on_selector(
        selector,
        """(e, props) => {
            const s = getComputedStyle(e), r = e.getBoundingClientRect();
            const out = {width: r.width, height: r.height};
            for (const p of props) out[p] = s.getPropertyValue(p);
            return out;
        }""",
        list(STYLE_PROPS),
    )


def gated_nothing_ran(page: Page) -> None:
    assert page.evaluate("typeof window.__statsRan") == "undefined"
    assert page.evaluate("typeof window.__pixelRan") == "undefined"
    assert page.locator('script[data-consent][type="text/plain"]').count() == 2
    # The iframe waits (data-src), showing the placeholder's fallback page until then.
    assert page.get_attribute("iframe[data-consent]", "data-src") is not None
    assert page.get_attribute("iframe[data-consent]", "src") == "/_consent/embed?category=embedded"
    assert page.get_attribute("img[data-consent]", "src") is None


def focused(page: Page) -> dict[str, Any]:
    return page.evaluate(
        """() => {
            const a = document.activeElement, s = getComputedStyle(a);
            return {
                id: a.id, tag: a.tagName,
                inModal: !!a.closest("#consent-preferences"),
                outline: s.outlineStyle, outlineWidth: parseFloat(s.outlineWidth) || 0,
            };
        }"""
    )


def tab_to(page: Page, element_id: str, *, limit: int = 30) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == element_id:
            return
    raise AssertionError(f"Tab never reached #{element_id}")


# --------------------------------------------------------------------------- first visit


def test_first_visit_shows_three_equal_buttons_and_runs_nothing(
    context: BrowserContext, demo: DemoServer, screenshots: Path
) -> None:
    page = open_page(context, demo.url + ARTICLE)
    banner = page.locator("#consent-banner")
    expect(banner).to_be_visible()
    expect(banner).to_have_attribute("role", "dialog")
    for selector in BUTTONS:
        expect(page.locator(selector)).to_be_visible()
    expect(page.locator("#consent-accept-all")).to_have_text("Accept all")
    expect(page.locator("#consent-reject-all")).to_have_text("Reject all")
    expect(page.locator("#consent-customize")).to_have_text("Customize")

    looks = [styles(page, s) for s in BUTTONS]
    for other in looks[1:]:
        for prop in STYLE_PROPS:
            assert other[prop] == looks[0][prop], (prop, looks)
        assert abs(other["width"] - looks[0]["width"]) <= 2, looks
        assert abs(other["height"] - looks[0]["height"]) <= 2, looks

    # The banner sits above the page, inside the viewport, and does not hide the whole text.
    box = banner.bounding_box()
    assert box is not None
    assert box["y"] >= 0
    assert box["y"] + box["height"] <= 800
    assert box["height"] < 400
    # The whole notice fits: no "Read more".
    expect(page.locator("#consent-more")).to_be_hidden()
    expect(page.locator("#consent-banner a.consent-link")).to_be_visible()

    assert optional_cookies(context) == set()
    gated_nothing_ran(page)
    expect(page.locator(".consent-embed")).to_be_visible()
    assert page.locator("#consent-settings").count() == 0
    page.screenshot(path=screenshots / "first-layer.png")


def test_first_layer_in_german(
    make_context: Callable[..., BrowserContext], demo: DemoServer, screenshots: Path
) -> None:
    context = make_context(viewport={"width": 1280, "height": 800}, locale="de-DE")
    page = open_page(context, demo.url + ARTICLE + "?lang=de")
    assert page.get_attribute("html", "lang") == "de"
    expect(page.locator("#consent-banner")).to_have_attribute("lang", "de")
    expect(page.locator("#consent-accept-all")).to_have_text("Alle akzeptieren")
    expect(page.locator("#consent-reject-all")).to_have_text("Alle ablehnen")
    expect(page.locator("#consent-customize")).to_have_text("Anpassen")
    page.screenshot(path=screenshots / "first-layer-de.png")
    page.click("#consent-customize")
    expect(page.locator("#consent-preferences")).to_be_visible()
    expect(page.locator("#consent-toggle-analytics-label")).to_have_text("Statistik")
    expect(page.locator("#consent-toggle-embedded-label")).to_have_text("Eingebettete Videos")
    page.screenshot(path=screenshots / "second-layer-de.png")

    # The decision keeps the language: the dialog stays German, the receipt records it.
    page.click("#consent-toggle-analytics")
    page.click("#consent-save")
    expect(page.locator("#consent-settings")).to_have_text("Cookie-Einstellungen")
    page.click("#consent-settings")
    expect(page.locator("#consent-toggle-analytics-label")).to_have_text("Statistik")
    expect(page.locator("#consent-toggle-analytics")).to_be_checked()
    receipt = page.evaluate(
        "fetch('/_consent/receipt', {headers: {Accept: 'application/json'}}).then((r) => r.json())"
    )["receipt"]
    assert receipt["language"] == "de"
    assert receipt["granted"] == ["analytics"]
    page.close()


def test_german_banner_shows_a_german_notice(
    make_context: Callable[..., BrowserContext], demo: DemoServer
) -> None:
    context = make_context(locale="de-DE")
    page = open_page(context, demo.url + "/?lang=de")
    expect(page.locator("#consent-banner-notice")).to_contain_text("Einwilligung", timeout=1000)


def test_mobile_first_layer_fits(
    make_context: Callable[..., BrowserContext], demo: DemoServer, screenshots: Path
) -> None:
    context = make_context(viewport={"width": 375, "height": 667}, is_mobile=True)
    page = open_page(context, demo.url + "/")
    banner = page.locator("#consent-banner")
    expect(banner).to_be_visible()
    box = banner.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= 375
    for selector in BUTTONS:  # every button reachable without scrolling the banner
        button = page.locator(selector).bounding_box()
        assert button is not None
        assert button["y"] + button["height"] <= 667
    page.screenshot(path=screenshots / "first-layer-mobile.png")
    page.close()


PHONE = {"width": 375, "height": 667}


def in_view(page: Page, selector: str) -> bool:
    """Whether the element is inside the viewport and is what a tap on its centre would hit
    (not cut off by a scrolled or clipped container, not covered by anything)."""
    return bool(
        page.eval_on_selector(
            selector,
            """(e) => {
                const r = e.getBoundingClientRect();
                const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
                return r.width > 0 && r.height > 0 && r.top >= 0 && r.left >= 0
                    && r.bottom <= innerHeight && r.right <= innerWidth && !!hit && e.contains(hit);
            }""",
        )
    )


def screen_share(page: Page, selector: str) -> float:
    box = page.locator(selector).bounding_box()
    assert box is not None
    size = page.viewport_size
    assert size is not None
    return box["width"] * box["height"] / (size["width"] * size["height"])


def clipped(page: Page, selector: str) -> bool:
    return bool(page.eval_on_selector(selector, "(e) => e.scrollHeight > e.clientHeight + 1"))


@pytest.mark.parametrize("lang", ["en", "de"])  # the languages of the demo's pages
def test_on_a_phone_the_first_layer_is_short_and_the_full_notice_one_tap_away(
    make_context: Callable[..., BrowserContext], demo: DemoServer, lang: str
) -> None:
    """At 375 x 667 the first layer covers at most 40 % of the screen: the notice is cut short,
    while the policy link and the three buttons stay in view; "Read more" shows all of it."""
    context = make_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = open_page(context, demo.url + f"/?lang={lang}")
    banner = page.locator("#consent-banner")
    expect(banner).to_have_attribute("lang", lang)
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    share = screen_share(page, "#consent-banner")
    assert share <= 0.40, f"the first layer covers {share:.0%} of the screen"
    for selector in (*BUTTONS, "#consent-banner a.consent-link", "#consent-more"):
        assert in_view(page, selector), selector

    more = page.locator("#consent-more")
    expect(more).to_have_attribute("aria-expanded", "false")
    expect(more).to_have_attribute("aria-controls", "consent-banner-notice")
    assert clipped(page, "#consent-banner-notice")
    more.tap()
    expect(more).to_have_attribute("aria-expanded", "true")
    assert not clipped(page, "#consent-banner-notice")
    assert in_view(page, "#consent-banner-notice")
    for selector in (*BUTTONS, "#consent-more"):  # scrolled into the banner, still reachable
        page.locator(selector).scroll_into_view_if_needed()
        assert in_view(page, selector), selector

    more.tap()  # and back
    expect(more).to_have_attribute("aria-expanded", "false")
    expect(more).to_be_focused()
    assert clipped(page, "#consent-banner-notice")
    assert screen_share(page, "#consent-banner") <= 0.40
    page.close()


def test_a_notice_that_fits_has_no_read_more(
    make_context: Callable[..., BrowserContext],
    demo_factory: Callable[..., DemoServer],
    tmp_path: Path,
) -> None:
    """A short notice is shown whole on a phone, without a disclosure that would reveal nothing."""
    policy = copy_demo_policy(tmp_path / "policy")
    site = policy / "site.toml"
    text = site.read_text(encoding="utf-8")
    text = re.sub(r'(?s)\nnotice = """.*?"""', '\nnotice = "We use cookies."', text, count=1)
    site.write_text(text, encoding="utf-8")
    server = demo_factory("short-notice", policy=policy)
    context = make_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = open_page(context, server.url + "/")
    expect(page.locator("#consent-banner-notice")).to_contain_text("We use cookies.")
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    expect(page.locator("#consent-more")).to_be_hidden()
    assert not clipped(page, "#consent-banner-notice")
    assert in_view(page, "#consent-banner a.consent-link")
    page.close()


@pytest.mark.parametrize(("width", "height"), [(375, 667), (320, 256)])
def test_on_a_phone_the_settings_dialog_opens_at_its_title(
    make_context: Callable[..., BrowserContext], demo: DemoServer, width: int, height: int
) -> None:
    """From Customize and, after a decision, from the Cookie settings button the dialog opens
    with its title and Close button in view, and the focus on the dialog itself (so a screen
    reader announces its name); at 320 x 256 too (400 % zoom)."""
    context = make_context(
        viewport={"width": width, "height": height}, is_mobile=True, has_touch=True
    )
    page = open_page(context, demo.url + "/")
    dialog = page.locator("#consent-preferences")

    def opens_at_its_title() -> None:
        expect(dialog).to_be_visible()
        assert dialog.evaluate("(e) => e.scrollTop") == 0
        for selector in ("#consent-prefs-title", "#consent-close"):
            assert in_view(page, selector), selector
        expect(dialog).to_be_focused()

    page.tap("#consent-customize")
    opens_at_its_title()
    page.keyboard.press("Tab")  # then on to the controls, inside the dialog
    assert focused(page)["inModal"]
    assert focused(page)["id"] != "consent-preferences"
    page.tap("#consent-close")
    expect(dialog).to_have_count(0)

    page.tap("#consent-reject-all")
    expect(page.locator("#consent-settings")).to_be_visible()
    page.tap("#consent-settings")
    opens_at_its_title()
    page.close()


# --------------------------------------------------------------------------- reject / accept


def test_reject_all_stays_rejected_after_reload(context: BrowserContext, demo: DemoServer) -> None:
    page = open_page(context, demo.url + ARTICLE)
    page.click("#consent-reject-all")
    expect(page.locator("#consent-settings")).to_be_visible()
    expect(page.locator("#consent-banner")).to_have_count(0)
    assert "consent" in names(context)

    page.reload()
    page.evaluate("window.consent.ready")
    expect(page.locator("#consent-settings")).to_be_visible()
    expect(page.locator("#consent-banner")).to_have_count(0)
    assert optional_cookies(context) == set()
    gated_nothing_ran(page)
    assert page.evaluate("window.consent.allows('analytics')") is False
    assert page.evaluate("window.consent.allows('necessary')") is True


def test_accept_all_runs_gated_content_without_reload(
    context: BrowserContext, demo: DemoServer, screenshots: Path
) -> None:
    page = open_page(context, demo.url + ARTICLE)
    page.evaluate(
        "window.__changes = [];"
        "document.addEventListener('consent:change', (e) => window.__changes.push(e.detail))"
    )
    page.click("#consent-accept-all")

    # Without a reload: the gated scripts ran once, the iframe and the pixel got their src.
    page.wait_for_function("() => window.__statsRan === 1 && window.__pixelRan === 1")
    expect(page.locator("#consent-banner")).to_have_count(0)
    expect(page.locator("#consent-settings")).to_be_visible()
    assert page.get_attribute("iframe[data-consent]", "src") == (
        "/video-platform/embed/pacing-in-daily-life"
    )
    expect(page.locator(".consent-embed")).to_have_count(0)
    wait_for_cookies(context, page, {"stats_ses", "_fbp", "px_uid"})
    assert "stats_vid" not in names(context)  # the server sets it on the next response
    assert page.evaluate("window.consent.allows('marketing')") is True
    changes = page.evaluate("window.__changes")
    assert len(changes) == 1
    assert set(changes[0]["granted"]) == {"analytics", "marketing", "preferences", "embedded"}
    assert changes[0]["receipt_id"]
    page.frame_locator("iframe[data-consent]").locator("#player").wait_for()
    page.locator(".video").scroll_into_view_if_needed()
    page.screenshot(path=screenshots / "after-accept-all.png")

    # After a reload the server has already un-gated the scripts, and they ran exactly once.
    response = page.reload()
    assert response is not None
    source = response.text()
    assert re.search(r'<script data-consent="analytics" src="/static/stats.js"', source), source
    assert 'type="text/plain"' not in source
    assert 'src="/video-platform/embed/pacing-in-daily-life"' in source
    page.wait_for_function("() => window.__statsRan === 1")
    page.evaluate("window.consent.ready")
    expect(page.locator("#consent-banner")).to_have_count(0)
    expect(page.locator("#consent-settings")).to_be_visible()
    assert {"stats_vid", "stats_ses", "px_uid", "_fbp"} <= names(context)


def test_withdrawing_analytics_expires_its_cookies(
    context: BrowserContext, demo: DemoServer
) -> None:
    page = open_page(context, demo.url + ARTICLE)
    page.click("#consent-accept-all")
    page.wait_for_function("() => window.__statsRan === 1")
    page.reload()  # the server now sets stats_vid too
    wait_for_cookies(context, page, ANALYTICS)

    page.click("#consent-settings")
    dialog = page.locator("#consent-preferences")
    expect(dialog).to_be_visible()
    toggle = page.locator("#consent-toggle-analytics")
    expect(toggle).to_be_checked()
    expect(page.locator("#consent-toggle-marketing")).to_be_checked()
    expect(page.locator("#consent-toggle-necessary")).to_be_disabled()
    toggle.click()
    expect(toggle).not_to_be_checked()
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("#consent-save")
    assert posted.value.status == 200
    expect(dialog).to_have_count(0)

    # The decision's own response expired the analytics cookies; marketing ones stay.
    left = names(context)
    assert not (ANALYTICS & left), left
    assert left >= MARKETING
    assert page.evaluate("window.consent.allows('analytics')") is False

    page.reload()
    assert not (ANALYTICS & names(context))
    assert page.evaluate("typeof window.__statsRan") == "undefined"
    assert page.evaluate("window.__pixelRan") == 1


# --------------------------------------------------------------------------- keyboard only


def test_keyboard_only(context: BrowserContext, demo: DemoServer, screenshots: Path) -> None:
    page = open_page(context, demo.url + ARTICLE)
    expect(page.locator("#consent-banner")).to_be_visible()

    # Tab reaches the banner's buttons early, with a visible focus ring.
    for button in ("consent-accept-all", "consent-reject-all", "consent-customize"):
        tab_to(page, button, limit=12)
        state = focused(page)
        assert state["outline"] != "none", state
        assert state["outlineWidth"] >= 2, state

    # Enter on Customize opens the dialog with the focus on the dialog itself, at its title.
    page.keyboard.press("Enter")
    dialog = page.locator("#consent-preferences")
    expect(dialog).to_be_visible()
    expect(dialog).to_have_attribute("aria-modal", "true")
    assert focused(page)["id"] == "consent-preferences"
    page.screenshot(path=screenshots / "second-layer.png")

    # The focus stays trapped inside, forwards and backwards.
    count = page.evaluate(
        """() => Array.from(document.querySelectorAll('#consent-preferences :is(button, input, summary, a[href])'))
            .filter((x) => !x.disabled && x.getClientRects().length).length"""
    )
    seen = set()
    for _ in range(count + 2):
        page.keyboard.press("Tab")
        state = focused(page)
        assert state["inModal"], state
        seen.add(state["id"] or state["tag"])
    assert {"consent-save", "consent-close", "consent-toggle-marketing"} <= seen
    for _ in range(count + 2):
        page.keyboard.press("Shift+Tab")
        assert focused(page)["inModal"]

    # Space toggles a switch; Esc closes the dialog and the focus returns to Customize.
    tab_to(page, "consent-toggle-analytics")
    page.keyboard.press("Space")
    expect(page.locator("#consent-toggle-analytics")).to_be_checked()
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(page.locator("#consent-banner")).to_be_visible()
    assert focused(page)["id"] == "consent-customize"
    assert optional_cookies(context) == set()  # closing is not consenting

    # Open again, choose analytics only and save with Enter.
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    expect(page.locator("#consent-toggle-analytics")).not_to_be_checked()
    tab_to(page, "consent-toggle-analytics")
    page.keyboard.press("Space")
    expect(page.locator("#consent-toggle-analytics")).to_be_checked()
    tab_to(page, "consent-save")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.keyboard.press("Enter")
    assert posted.value.status == 200
    expect(dialog).to_have_count(0)
    assert focused(page)["id"] == "consent-settings"  # the focus is not lost
    page.wait_for_function("() => window.__statsRan === 1")
    assert page.evaluate("typeof window.__pixelRan") == "undefined"

    receipt = page.evaluate(
        "fetch('/_consent/receipt', {headers: {Accept: 'application/json'}}).then((r) => r.json())"
    )["receipt"]
    assert receipt["granted"] == ["analytics"]
    assert set(receipt["refused"]) == {"marketing", "preferences", "embedded"}
    assert receipt["method"] == "banner"
    assert receipt["event"] == "given"


# --------------------------------------------------------------------------- without JavaScript


def test_without_javascript_the_form_records_a_choice(
    make_context: Callable[..., BrowserContext], demo: DemoServer, screenshots: Path
) -> None:
    context = make_context(viewport={"width": 1280, "height": 800}, java_script_enabled=False)
    page = context.new_page()
    page.goto(demo.url + ARTICLE)
    form = page.locator(".consent-noscript form")
    expect(form).to_be_visible()
    expect(page.locator("#consent-banner")).to_have_count(0)
    buttons = [styles(page, f".consent-noscript button >> nth={i}") for i in range(3)]
    for other in buttons[1:]:
        for prop in STYLE_PROPS:
            assert other[prop] == buttons[0][prop], (prop, buttons)
    page.screenshot(path=screenshots / "no-javascript.png")
    form.get_by_label("Analytics").check()
    with page.expect_navigation():
        form.get_by_role("button", name="Save choices").click()
    assert page.url == demo.url + ARTICLE  # back where the visitor was
    assert "consent" in names(context)
    expect(page.locator(".consent-noscript")).to_have_count(0)
    # The redirected page was already served with analytics allowed.
    assert "stats_vid" in names(context)
    assert not (MARKETING & names(context))

    page.reload()
    expect(page.locator(".consent-noscript")).to_have_count(0)
    source = page.content()
    assert '<script data-consent="analytics" src="/static/stats.js"' in source
    assert '<script type="text/plain" data-consent="marketing"' in source
    page.close()


def test_without_javascript_accept_all(
    make_context: Callable[..., BrowserContext], demo: DemoServer
) -> None:
    context = make_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(demo.url + "/")
    with page.expect_navigation():
        page.locator(".consent-noscript").get_by_role("button", name="Accept all").click()
    assert page.url == demo.url + "/"
    assert {"consent", "stats_vid"} <= names(context)
    expect(page.locator(".consent-noscript")).to_have_count(0)
    page.close()


def test_without_javascript_reject_all_refuses_the_ticked_boxes(
    make_context: Callable[..., BrowserContext], demo: DemoServer
) -> None:
    context = make_context(java_script_enabled=False)
    page = context.new_page()

    def granted() -> list[str]:
        answer: list[str] = context.request.get(demo.url + "/_consent").json()["granted"]
        return answer

    page.goto(demo.url + ARTICLE)
    form = page.locator(".consent-noscript form")
    form.get_by_label("Analytics").check()
    with page.expect_navigation():
        form.get_by_role("button", name="Reject all").click()
    assert "consent" in names(context)
    assert granted() == []
    assert not (ANALYTICS & names(context))

    # On the settings page the visitor's granted categories come ticked: after accepting
    # everything, "Reject all" there must still refuse everything (a withdrawal).
    page.goto(demo.url + "/_consent/declaration")
    with page.expect_navigation():
        page.get_by_role("button", name="Accept all").click()
    assert "stats_vid" in names(context)
    page.goto(demo.url + "/_consent/declaration")
    expect(page.get_by_label("Analytics")).to_be_checked()
    with page.expect_navigation():
        page.get_by_role("button", name="Reject all").click()
    assert granted() == []
    assert not (ANALYTICS & names(context))
    page.close()


# --------------------------------------------------------------------------- policy change


def test_a_changed_policy_asks_again(
    context: BrowserContext,
    demo: DemoServer,
    demo_factory: Callable[..., DemoServer],
    tmp_path: Path,
) -> None:
    page = open_page(context, demo.url + "/")
    page.click("#consent-accept-all")
    expect(page.locator("#consent-settings")).to_be_visible()
    page.close()

    policy = copy_demo_policy(tmp_path / "changed-policy")
    analytics = policy / "analytics.toml"
    text = analytics.read_text(encoding="utf-8")
    analytics.write_text(
        text.replace("deleted after 13 months", "deleted after 25 months", 1), encoding="utf-8"
    )
    changed = demo_factory("changed", policy=policy)  # same key, same host: the jar carries over

    page = open_page(context, changed.url + ARTICLE)
    expect(page.locator("#consent-banner")).to_be_visible()
    expect(page.locator("#consent-banner-changed")).to_contain_text("policy has changed")
    gated_nothing_ran(page)
    assert page.evaluate("window.consent.state.decided") is False
    page.click("#consent-customize")
    expect(page.locator("#consent-preferences .consent-changed")).to_be_visible()
    expect(page.locator("#consent-toggle-analytics")).not_to_be_checked()


# --------------------------------------------------------------------------- Global Privacy Control


def test_gpc_keeps_marketing_refused(
    make_context: Callable[..., BrowserContext], demo: DemoServer
) -> None:
    context = make_context(extra_http_headers={"Sec-GPC": "1"})
    page = open_page(context, demo.url + ARTICLE)
    assert page.evaluate("window.consent.state.gpc") is True
    # The first layer says so before "Accept all" is pressed.
    expect(page.locator("#consent-banner .consent-gpc")).to_contain_text("Global Privacy Control")
    page.click("#consent-accept-all")
    page.wait_for_function("() => window.__statsRan === 1")
    page.reload()
    page.evaluate("window.consent.ready")
    left = names(context)
    assert "stats_vid" in left
    assert not (MARKETING & left), left
    assert page.evaluate("typeof window.__pixelRan") == "undefined"
    assert page.evaluate("window.consent.allows('marketing')") is False

    page.click("#consent-settings")
    expect(page.locator("#consent-preferences .consent-gpc")).to_be_visible()
    marketing = page.locator("#consent-toggle-marketing")
    expect(marketing).not_to_be_checked()
    expect(marketing).to_be_disabled()
    expect(page.locator("#consent-toggle-analytics")).to_be_checked()

    receipt = page.evaluate(
        "fetch('/_consent/receipt', {headers: {Accept: 'application/json'}}).then((r) => r.json())"
    )["receipt"]
    assert receipt["gpc"] is True
    assert "marketing" in receipt["refused"]
    page.close()


# --------------------------------------------------------------------------- receipt page


def test_receipt_page_after_a_decision(context: BrowserContext, demo: DemoServer) -> None:
    page = open_page(context, demo.url + "/cookie-policy")
    expect(page.locator("#your-choice")).to_contain_text("not made a choice")
    page.click("#consent-accept-all")
    expect(page.locator("#consent-settings")).to_be_visible()
    receipt_id = page.evaluate("window.consent.state.receipt_id")

    page.reload()
    expect(page.locator("#your-choice")).to_contain_text("Analytics")
    with page.expect_navigation():
        page.get_by_role("link", name="Show your consent receipt").click()
    assert page.url.endswith("/_consent/receipt")
    expect(page.locator("h1")).to_have_text("Your consent receipt")
    expect(page.locator("body")).to_contain_text(receipt_id)
    expect(page.locator("body")).to_contain_text("Lindenhof Clinic gGmbH")


def test_footer_link_opens_the_settings(context: BrowserContext, demo: DemoServer) -> None:
    page = open_page(context, demo.url + "/")
    page.click("#consent-reject-all")
    # The decision is answered (a dialog opened while it is on its way would close with it).
    expect(page.locator("#consent-settings")).to_be_visible()
    page.locator(".site-footer").get_by_role("link", name="Cookie settings").click()
    expect(page.locator("#consent-preferences")).to_be_visible()
    assert page.url == demo.url + "/"  # the link did not navigate


def test_the_demo_never_contacts_another_host(context: BrowserContext, demo: DemoServer) -> None:
    hosts: set[str] = set()
    context.on("request", lambda r: hosts.add(r.url.split("/")[2] if "://" in r.url else r.url))
    page = open_page(context, demo.url + ARTICLE)
    page.click("#consent-accept-all")
    page.wait_for_function("() => window.__statsRan === 1 && window.__pixelRan === 1")
    page.frame_locator("iframe[data-consent]").locator("#player").wait_for()
    for path in ("/", "/newsletter", "/contact", "/cookie-policy"):
        page.goto(demo.url + path)
    assert hosts == {demo.url.split("/")[2]}


def test_forms_work_with_only_necessary_cookies(context: BrowserContext, demo: DemoServer) -> None:
    page = open_page(context, demo.url + "/newsletter")
    page.click("#consent-reject-all")
    expect(page.locator("#consent-settings")).to_be_visible()
    page.get_by_label("E-mail").fill("reader@example.org")
    with page.expect_navigation():
        page.get_by_role("button", name="Subscribe").click()
    expect(page.locator("main [role=status]")).to_contain_text("confirm the link")
    assert names(context) == {"consent", "csrftoken", "session"}


def test_strict_content_security_policy_lets_the_injected_tags_run(
    demo: DemoServer, context: BrowserContext
) -> None:
    """The clinic sends a nonce-based CSP with every page; the middleware gives the tags it
    injects that nonce, so the inline Consent Mode default runs and nothing is refused."""
    page = context.new_page()
    page.add_init_script(
        "window.__cspViolations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " e => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    response = page.goto(demo.url + ARTICLE)
    assert response is not None
    policy = response.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce, policy
    page.wait_for_function("() => window.consent && window.consent.state !== null")
    # The injected inline script and the banner's tags carry this response's nonce.
    carried = page.eval_on_selector_all(
        "script[nonce], link[nonce]", "els => els.map(e => e.nonce || e.getAttribute('nonce'))"
    )
    assert len(carried) >= 3, carried
    assert set(carried) == {nonce.group(1)}
    # The inline Consent Mode default ran: everything denied until the visitor decides.
    default = page.evaluate(
        "() => Array.from(window.dataLayer || []).map(a => Array.from(a))"
        ".find(a => a[0] === 'consent' && a[1] === 'default')"
    )
    assert default is not None
    assert default[2]["analytics_storage"] == "denied"
    page.click("#consent-accept-all")
    page.wait_for_function("() => window.__statsRan === 1 && window.__pixelRan === 1")
    assert page.evaluate("() => window.__cspViolations") == []


# --------------------------------------------------------------------------- injected markup


# A page with a 'strict-dynamic' CSP: only scripts with the response's nonce run, and whatever
# they add. The comment stands for markup an injection bug lets through: the server leaves it
# inert (it compares the raw bytes, `text&#47;plain` is not `text/plain`), the browser decodes it.
STRICT_CSP = "script-src 'nonce-{nonce}' 'strict-dynamic'; object-src 'none'; base-uri 'none'"
STRICT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Comments</title><link rel="icon" href="data:,"></head>
<body>
<main><h1>Comments</h1>
<script type="text/plain" data-consent="analytics" nonce="{nonce}">
  window.__gatedRan = (window.__gatedRan || 0) + 1;
</script>
<div class="comment">{comment}</div>
</main>
</body>
</html>"""
RAN = "(window.__injected = window.__injected || []).push({!r});"
INJECTED = (
    f'<script type="text&#47;plain" data-consent="necessary">{RAN.format("entity")}</script>'
    f'<script type="text/plain" data-consent="necessary&nbsp;necessary">{RAN.format("nbsp")}</script>'
    f'<script type="text&#47;plain" data-consent="analytics">{RAN.format("analytics")}</script>'
)
# A script file of the site's own origin (a JSONP endpoint, an upload...) that injected markup
# points at: under 'strict-dynamic' the CSP's source list would not stop it.
GADGET = '<script type="text&#47;plain" data-consent="analytics" src="/gadget.js"></script>'


@pytest.fixture
def strict_site(tmp_path: Path) -> Iterator[str]:
    """A small site behind ConsentMiddleware with a strict-dynamic CSP, served by uvicorn in a
    thread on a loopback socket; its base URL."""

    async def comments(request: Request) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        return HTMLResponse(
            STRICT_PAGE.format(nonce=nonce, comment=INJECTED + GADGET),
            headers={"Content-Security-Policy": STRICT_CSP.format(nonce=nonce)},
        )

    async def gadget(request: Request) -> Response:
        return Response(RAN.format("file"), media_type="text/javascript")

    async def without_csp(request: Request) -> HTMLResponse:
        return HTMLResponse(STRICT_PAGE.format(nonce="", comment=INJECTED))

    app = ConsentMiddleware(
        Starlette(
            routes=[
                Route("/", comments),
                Route("/without-csp", without_csp),
                Route("/gadget.js", gadget),
            ]
        ),
        policy=POLICY_DIR,
        secret_key=TEST_KEY,
        store=f"sqlite:///{tmp_path / 'consent.db'}",
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(400):
            if server.started or not thread.is_alive():
                break
            time.sleep(0.05)
        assert server.started, "the strict site did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_strict_dynamic_csp_runs_only_the_gated_scripts_with_the_nonce(
    context: BrowserContext, strict_site: str
) -> None:
    page = open_page(context, strict_site + "/")
    expect(page.locator("#consent-banner")).to_be_visible()
    inert = 'script[type="text/plain"][data-consent]'
    assert page.locator(inert).count() == 5
    page.click("#consent-accept-all")

    # The page's own gated script runs without a reload; the injected ones never do.
    page.wait_for_function("() => window.__gatedRan === 1")
    expect(page.locator("#consent-settings")).to_be_visible()
    assert page.evaluate("typeof window.__injected") == "undefined"
    assert page.locator(inert).count() == 4  # (one pass: the gadget file was left inert)

    # Next page: the server activated the gated script (it ran once), the banner nothing more.
    page.reload()
    expect(page.locator("#consent-settings")).to_be_visible()
    assert page.evaluate("window.__gatedRan") == 1
    assert page.evaluate("typeof window.__injected") == "undefined"
    assert page.locator(inert).count() == 4


# --------------------------------------------------------------------------- room for the banner


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (375, 667)])
def test_the_banner_leaves_room_for_the_footer(
    make_context: Callable[..., BrowserContext], demo: DemoServer, width: int, height: int
) -> None:
    context = make_context(viewport={"width": width, "height": height}, is_mobile=width < 600)
    page = open_page(context, demo.url + "/")
    banner = page.locator("#consent-banner")
    expect(banner).to_be_visible()
    next_frame = "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
    page.evaluate(next_frame)

    # Scrolled to the end, every footer link (the last one included) is above the banner.
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    page.evaluate(next_frame)
    top = banner.bounding_box()
    assert top is not None
    links = page.locator(".site-footer a")
    assert links.count() >= 3
    for i in range(links.count()):
        box = links.nth(i).bounding_box()
        assert box is not None
        assert box["y"] + box["height"] <= top["y"], (i, box, top)

    # Moving the focus back to the top and then by keyboard onto a footer link scrolls it into
    # view above the banner, not under it (WCAG 2.4.11).
    page.evaluate("window.scrollTo(0, 0)")
    page.evaluate(next_frame)
    last = links.nth(links.count() - 1)
    last.evaluate("(a) => a.focus()")
    page.evaluate(next_frame)
    box = last.bounding_box()
    top = banner.bounding_box()
    assert box is not None
    assert top is not None
    assert box["y"] + box["height"] <= top["y"] + 1, (box, top)

    # Once the visitor has decided, the page gets its own padding back.
    page.click("#consent-reject-all")
    expect(banner).to_have_count(0)
    assert page.evaluate("document.body.style.paddingBottom") == ""
    assert page.evaluate("getComputedStyle(document.body).paddingBottom") == "0px"
    page.close()


def test_on_a_short_screen_the_dialog_actions_do_not_cover_the_focused_switch(
    make_context: Callable[..., BrowserContext], demo: DemoServer
) -> None:
    """WCAG 2.4.11 at 400 % zoom (320 x 256 CSS pixels): the dialog's sticky button bar would
    hide the switches it keeps in reach; on a short screen it scrolls with them."""
    context = make_context(viewport={"width": 320, "height": 256}, is_mobile=True)
    page = open_page(context, demo.url + "/")
    page.click("#consent-customize")
    dialog = page.locator("#consent-preferences")
    expect(dialog).to_be_visible()
    bar = page.locator("#consent-preferences .consent-actions")
    for key in ("analytics", "marketing", "preferences", "embedded"):
        switch = page.locator(f"#consent-toggle-{key}")
        switch.focus()
        box, covering = switch.bounding_box(), bar.bounding_box()
        assert box is not None
        assert covering is not None
        overlap = (
            box["y"] + box["height"] > covering["y"]
            and covering["y"] + covering["height"] > box["y"]
        )
        assert not overlap, (key, box, covering)
    page.close()


def test_the_receipt_page_reflows_on_a_narrow_screen(
    make_context: Callable[..., BrowserContext], demo: DemoServer
) -> None:
    """WCAG 1.4.10: at 320 CSS pixels the receipt (64-digit hashes) and the declaration (its
    cookie tables) do not make the page scroll sideways."""
    context = make_context(viewport={"width": 320, "height": 640}, is_mobile=True)
    page = open_page(context, demo.url + "/?lang=de")
    page.click("#consent-reject-all")
    expect(page.locator("#consent-settings")).to_be_visible()
    for path in ("/_consent/receipt?lang=de", "/_consent/declaration?lang=de"):
        page.goto(demo.url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 320, (path, width)
    page.close()


def test_only_granted_category_keys_activate_gated_scripts(
    context: BrowserContext, strict_site: str
) -> None:
    """Without a CSP nonce, data-consent is read as the server reads it: category keys separated
    by ASCII whitespace, and gating on necessary categories alone activates nothing."""
    page = open_page(context, strict_site + "/without-csp")
    page.click("#consent-accept-all")
    page.wait_for_function("() => window.__gatedRan === 1")
    assert page.evaluate("window.__injected") == ["analytics"]
    assert page.evaluate("window.consent.allows('necessary')") is True
