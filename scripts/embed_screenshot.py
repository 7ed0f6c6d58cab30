"""A screenshot of an embed placeholder, for docs/banner.md.

Starts the demo site (as scripts/phone_screenshots.py does), opens its article with the video in
headless Chromium (Debian's /usr/bin/chromium unless CHROMIUM is set) and writes
docs/images/embed-placeholder.png: the video's figure while it waits for consent.

Run from a checkout: python3 scripts/embed_screenshot.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from phone_screenshots import IMAGES, start_demo

ARTICLE = "/articles/pacing-after-long-covid"


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    target = IMAGES / "embed-placeholder.png"
    with tempfile.TemporaryDirectory() as tmp:
        server, url = start_demo(Path(tmp))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                    args=["--no-sandbox", "--disable-gpu"],
                )
                page = browser.new_page(viewport={"width": 900, "height": 1600})
                page.goto(url + ARTICLE)
                figure = page.locator("figure.video")
                page.locator(".consent-embed").wait_for()
                figure.scroll_into_view_if_needed()
                page.evaluate("window.scrollBy(0, -40)")
                page.locator(".consent-embed-once").focus()  # the focus ring shows too
                figure.screenshot(path=target)
                browser.close()
        finally:
            server.terminate()
            server.wait()
    print(target, target.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
