"""The visitor's history page in a real (headless) Chromium: three decisions across two policy
revisions, Reject all after Accept all recorded as ``withdrawn``, the links to each revision's
text, and what assistive technology and a phone get (checked offline: the page's accessibility
tree as Chromium builds it, and our own measurements of contrast, landmarks and reflow)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, Page, expect

from .conftest import DemoServer, copy_demo_policy, require_chromium

require_chromium()

ARTICLE = "/articles/pacing-after-long-covid"

# WCAG 2.2 1.4.3 (text 4.5:1, large text 3:1): the contrast of every text node against the
# background it is drawn on, computed as the specification defines relative luminance.
CONTRAST = """() => {
  const rgb = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (!node.textContent.trim()) continue;
    const el = node.parentElement;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || style.display === 'none') continue;
    const fg = lum(rgb(style.color)), bg = lum(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight) >= 700;
    const large = size >= 24 || (bold && size >= 18.66);
    out.push({text: node.textContent.trim().slice(0, 40), ratio, need: large ? 3 : 4.5});
  }
  return out;
}"""


def open_page(context: BrowserContext, url: str) -> Page:
    page = context.new_page()
    page.goto(url)
    page.evaluate("window.consent && window.consent.ready")
    return page


def history(page: Page, url: str) -> dict[str, Any]:
    data: dict[str, Any] = page.evaluate(
        "(url) => fetch(url, {headers: {Accept: 'application/json'}}).then((r) => r.json())",
        url,
    )
    return data


def check_accessibility(page: Page, width: int) -> None:
    """What a screen reader, a keyboard and a small screen get from the history page."""
    snapshot = page.locator("body").aria_snapshot()
    # one main landmark named by the page's heading, headings in order, a named table
    assert '- main "Your consent receipt":' in snapshot, snapshot
    assert '- heading "Your consent receipt" [level=1]' in snapshot
    assert '- heading "Your choices on record" [level=2]' in snapshot
    assert '- region "Your recorded cookie choices, newest first"' in snapshot
    assert '- table "Your recorded cookie choices, newest first"' in snapshot
    assert '- columnheader "Time (UTC)"' in snapshot
    assert '- link "Download your receipts (JSON)"' in snapshot
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.evaluate("document.querySelectorAll('main').length") == 1
    assert page.evaluate("document.querySelectorAll('h1').length") == 1
    headers = page.evaluate(
        "[...document.querySelectorAll('th')].every((th) => th.scope === 'col' || th.scope === 'row')"
    )
    assert headers is True
    unnamed = page.evaluate(
        "[...document.querySelectorAll('a')].filter((a) => !a.textContent.trim()).length"
    )
    assert unnamed == 0
    low = [c for c in page.evaluate(CONTRAST) if c["ratio"] < c["need"]]
    assert not low, low
    # reflow (WCAG 1.4.10): the page never scrolls sideways; only the table's own region may
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    # the table's region can be reached and scrolled with the keyboard
    region = page.locator(".consent-table")
    assert region.get_attribute("tabindex") == "0"
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('consent-table')"):
            break
    else:
        raise AssertionError("the table's region is not reachable with Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"


def test_three_decisions_across_two_revisions(
    make_context: Callable[..., BrowserContext],
    demo_factory: Callable[..., DemoServer],
    tmp_path: Path,
    screenshots: Path,
) -> None:
    first = demo_factory("site")
    context = make_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    page = open_page(context, first.url + ARTICLE)
    page.click("#consent-accept-all")
    expect(page.locator("#consent-settings")).to_be_visible()
    page.click("#consent-settings")
    expect(page.locator("#consent-preferences")).to_be_visible()
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("#consent-prefs-reject-all")
    assert posted.value.status == 200
    assert posted.value.json()["event"] == "withdrawn"  # Reject all after Accept all
    page.close()

    policy = copy_demo_policy(tmp_path / "changed-policy")
    analytics = policy / "analytics.toml"
    text = analytics.read_text(encoding="utf-8")
    assert "deleted after 13 months" in text
    analytics.write_text(
        text.replace("deleted after 13 months", "deleted after 25 months", 1), encoding="utf-8"
    )
    # Same key, same receipt store (the same directory), and the browser's jar carries over.
    second = demo_factory("site", policy=policy)
    page = open_page(context, second.url + ARTICLE)
    expect(page.locator("#consent-banner")).to_be_visible()  # asked again
    page.click("#consent-accept-all")
    expect(page.locator("#consent-settings")).to_be_visible()

    data = history(page, second.url + "/_consent/receipt")
    events = [r["event"] for r in data["receipts"]]
    assert events == ["given", "withdrawn", "given"]
    revisions = [r["revision"] for r in data["receipts"]]
    assert revisions[1] == revisions[2] != revisions[0]
    assert len({r["subject_id"] for r in data["receipts"]}) == 1

    page.goto(second.url + "/_consent/receipt")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(3)
    for row, receipt in zip(rows.all(), data["receipts"], strict=True):
        expect(row).to_contain_text(receipt["receipt_id"])
    expect(page.locator("body")).to_contain_text(data["subject_id"])
    expect(page.locator(".consent-status")).to_contain_text("in effect")
    page.screenshot(path=str(screenshots / "history-375.png"), full_page=True)
    check_accessibility(page, 375)

    # each entry links to the text of its revision: the current one is served in full
    links = page.locator("tbody tr td a")
    expect(links).to_have_count(3)
    hrefs = [link.get_attribute("href") for link in links.all()]
    assert hrefs == [f"/_consent/revision/{rev}" for rev in revisions]
    links.first.click()
    expect(page.locator("h1")).to_contain_text("Cookie policy text, revision")
    expect(page.locator("main")).to_contain_text("deleted after 25 months")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    # the earlier revision's text, as visitors were shown it, from the store's policy archive
    page.goto(second.url + hrefs[2])
    expect(page.locator("h1")).to_contain_text("Cookie policy text, revision")
    expect(page.locator("main")).to_contain_text("deleted after 13 months")
    expect(page.locator("main")).not_to_contain_text("deleted after 25 months")
    expect(page.locator("main")).to_contain_text("kept in the site")

    # the download is the same history as JSON
    page.goto(second.url + "/_consent/receipt")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download your receipts (JSON)").click()
    saved = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert [r["receipt_id"] for r in saved["receipts"]] == [
        r["receipt_id"] for r in data["receipts"]
    ]
    page.close()


def test_the_page_when_the_choice_no_longer_counts(
    make_context: Callable[..., BrowserContext],
    demo_factory: Callable[..., DemoServer],
    tmp_path: Path,
) -> None:
    first = demo_factory("site")
    context = make_context(viewport={"width": 320, "height": 640}, is_mobile=True)
    page = open_page(context, first.url + ARTICLE)
    page.click("#consent-reject-all")
    expect(page.locator("#consent-settings")).to_be_visible()
    policy = copy_demo_policy(tmp_path / "changed-policy")
    analytics = policy / "analytics.toml"
    analytics.write_text(
        analytics.read_text(encoding="utf-8").replace("13 months", "25 months", 1),
        encoding="utf-8",
    )
    second = demo_factory("site", policy=policy)  # the same receipt store
    page.goto(second.url + "/_consent/receipt")
    expect(page.locator(".consent-status")).to_contain_text("no longer applies")
    expect(page.locator("tbody tr")).to_have_count(1)
    check_accessibility(page, 320)
    page.close()
