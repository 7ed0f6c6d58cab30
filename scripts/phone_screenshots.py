"""Screenshots of the banner on a 375 x 667 phone, for docs/banner.md.

Starts the demo site under uvicorn on a free loopback port, opens it in headless Chromium
(Debian's /usr/bin/chromium unless CHROMIUM is set) and writes into docs/images/:

    phone-first-layer.png   the first layer as a visitor sees it on arrival
    phone-settings.png      the settings dialog, just opened from Customize

Run from a checkout: python3 scripts/phone_screenshots.py
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
PHONE = {"width": 375, "height": 667}


def start_demo(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = {
        **os.environ,
        "CONSENT_SECRET_KEY": secrets.token_urlsafe(32),
        "CONSENT_DEMO_STORE": f"sqlite:///{directory / 'consent.db'}",
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "consent.demo:from_env"]
    command += ["--fd", str(sock.fileno()), "--log-level", "warning"]
    server = subprocess.Popen(command, pass_fds=[sock.fileno()], env=env, cwd=directory)
    sock.close()
    for _ in range(200):
        try:
            with urllib.request.urlopen(url + "/_consent", timeout=1):
                return server, url
        except OSError:
            time.sleep(0.05)
    server.terminate()
    raise SystemExit("the demo did not start")


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server, url = start_demo(Path(tmp))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                    args=["--no-sandbox", "--disable-gpu"],
                )
                context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
                page = context.new_page()
                page.goto(url + "/")
                page.wait_for_selector("#consent-banner")
                page.wait_for_timeout(300)  # the banner settles ("Read more" shown or not)
                page.screenshot(path=IMAGES / "phone-first-layer.png")
                page.tap("#consent-customize")
                page.wait_for_selector("#consent-preferences")
                page.screenshot(path=IMAGES / "phone-settings.png")
                browser.close()
        finally:
            server.terminate()
            server.wait()
    for name in ("phone-first-layer.png", "phone-settings.png"):
        print(IMAGES / name, (IMAGES / name).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
