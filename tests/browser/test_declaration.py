"""What a visitor reads about each cookie, in a real (headless) Chromium: the declaration page
and the banner's settings dialog describe globs and regexes in words ("names starting with
_ga_"), or show the rule's ``display`` text; no regex, no framework names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext

from .conftest import DemoServer, copy_demo_policy, require_chromium

require_chromium()
pytestmark = pytest.mark.browser

REGEX = "_ga(_[A-Z0-9]+)?"


def name_cells(context: BrowserContext, url: str) -> list[str]:
    page = context.new_page()
    page.goto(url)
    cells = page.locator("section.consent-declaration tbody tr td:first-child").all_inner_texts()
    text = page.locator("body").inner_text()
    for jargon in (REGEX, "stats_ses*", "Starlette", "FastAPI", "Django", "request forgery"):
        assert jargon not in text, jargon
    page.close()
    return cells


def test_the_declaration_page_describes_patterns_in_words(
    context: BrowserContext, demo: DemoServer
) -> None:
    cells = name_cells(context, demo.url + "/_consent/declaration")
    assert "stats_vid" in cells
    assert "names starting with stats_ses" in cells
    assert "_ga and names starting with _ga_" in cells
    assert "names starting with _gcl_" in cells
    german = name_cells(context, demo.url + "/_consent/declaration?lang=de")
    assert "Namen, die mit stats_ses beginnen" in german
    assert "_ga und Namen, die mit _ga_ beginnen" in german


def test_the_settings_dialog_describes_patterns_in_words(
    context: BrowserContext, demo: DemoServer
) -> None:
    page = context.new_page()
    page.goto(demo.url + "/")
    page.wait_for_function("() => window.consent && window.consent.state !== null")
    page.click("#consent-customize")
    dialog = page.locator("#consent-preferences")
    dialog.locator("details.consent-cookies summary").nth(1).click()  # analytics
    cells = dialog.locator("details.consent-cookies[open] tbody td:first-child").all_inner_texts()
    assert cells == [
        "stats_vid",
        "names starting with stats_ses",
        "_ga and names starting with _ga_",
    ]
    assert REGEX not in dialog.inner_text()


def test_a_display_text_is_what_visitors_read(
    context: BrowserContext, demo_factory: Callable[..., DemoServer], tmp_path: Path
) -> None:
    policy = copy_demo_policy(tmp_path / "policy")
    analytics = policy / "analytics.toml"
    rule = f'regex = "{REGEX}"\n'
    text = analytics.read_text()
    assert rule in text
    analytics.write_text(
        text.replace(rule, rule + 'display = "Google Analytics cookies (_ga, _ga_<id>)"\n')
    )
    server = demo_factory("display", policy=policy)
    cells = name_cells(context, server.url + "/_consent/declaration")
    assert "Google Analytics cookies (_ga, _ga_<id>)" in cells
    # (no German display text: the rule's own is shown)
    german = name_cells(context, server.url + "/_consent/declaration?lang=de")
    assert "Google Analytics cookies (_ga, _ga_<id>)" in german
