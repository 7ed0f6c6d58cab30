"""Drives a real, headless Chromium through Playwright: finds the site's consent endpoint and
banner, then makes each decision in a fresh browser profile and visits the site's pages as a
visitor would, recording what the browser stores and which hosts it contacts.

A decision is made by clicking the site's banner (Accept all, Reject all, or Customize with one
switch on) when the page carries it, otherwise by posting it to the consent endpoint with the
profile's own cookie jar. Every page is loaded, then given time for the network to settle (no
request under way for half a second, at most ``settle`` seconds), and the jar and the storage of
every frame are read; so after a decision, once the banner has applied it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Request,
    Response,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError

from ..cookies import is_deletion, set_cookie_name
from .model import CookieSeen, Decision, DecisionRun, PageVisit, StorageKind, StorageSeen
from .site import Site, same_site

__all__ = ["BrowserUnavailable", "ScanOptions", "Scanner", "Unreachable"]

Progress = Callable[[str], None]

# Links to these are files, not pages.
#: Seconds without a request after which a page counts as settled (as Playwright's networkidle).
QUIET = 0.5
_CALL = re.compile(r"^[A-Z][A-Za-z]*\.[a-z][A-Za-z_]*: ")
_FILE_TYPES = """pdf zip gz tgz 7z rar dmg exe msi apk jpg jpeg png gif webp avif svg ico bmp tif
tiff mp3 mp4 m4a webm ogg wav avi mov css js mjs json xml rss atom txt csv woff woff2 ttf otf eot
doc docx xls xlsx ppt pptx odt"""
_NOT_PAGES = frozenset(_FILE_TYPES.split())
_PREFIX_JS = (
    "() => { const s = document.querySelector('script[data-consent-prefix]');"
    " return s ? s.getAttribute('data-consent-prefix') : null; }"
)
_BANNER_READY_JS = (
    "() => window.consent && window.consent.asgiConsent"
    " ? window.consent.ready.then((s) => !!s) : false"
)
_DECIDED_JS = "() => !!(window.consent && window.consent.state && window.consent.state.decided)"
_STORAGE_JS = """() => {
  const out = {origin: location.origin, local: [], session: []};
  try { out.local = Object.keys(window.localStorage); } catch (e) { /* refused */ }
  try { out.session = Object.keys(window.sessionStorage); } catch (e) { /* refused */ }
  return out;
}"""
# Links in document order, but not those of the banner itself (shown only before a decision,
# they would make the pages visited differ from decision to decision).
_LINKS_JS = (
    "(links) => links.filter((a) => !a.closest('.consent-root, .consent-noscript'))"
    ".map((a) => a.href)"
)
_GPC_JS = (
    "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl',"
    " {get: () => true, configurable: true});"
)


class BrowserUnavailable(Exception):
    """The browser could not be started."""


class Unreachable(Exception):
    """The start URL could not be loaded, or answered an error."""


@dataclass(frozen=True, slots=True)
class ScanOptions:
    browser: str
    pages: int = 10
    #: where the consent endpoint answers when the page does not say (``/_consent``)
    prefix: str | None = None
    #: decisions scanned at the same time, each in its own browser profile
    jobs: int = 4
    #: seconds a page may take to load
    timeout: float = 30.0
    #: seconds at most to wait for the network to settle after a page has loaded
    settle: float = 10.0


def _reason(exc: BaseException) -> str:
    """The first line of a Playwright error (the rest is its call log), without the name of
    the call (``Page.goto: ``)."""
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return _CALL.sub("", text.strip().splitlines()[0])


class Scanner:
    """A running browser: ``async with Scanner(options) as scanner: ...``."""

    def __init__(self, options: ScanOptions, progress: Progress | None = None) -> None:
        self.options = options
        self.progress = progress or (lambda line: None)
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None

    async def __aenter__(self) -> Scanner:
        self._playwright = await async_playwright().start()
        args = ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to sandbox itself as root
        try:
            self._browser = await self._playwright.chromium.launch(
                executable_path=self.options.browser, headless=True, args=args
            )
        except PlaywrightError as exc:
            await self._playwright.stop()
            raise BrowserUnavailable(_reason(exc)) from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._browser is not None:
            await self._browser.close()
        if self._playwright is not None:
            await self._playwright.stop()

    @property
    def browser(self) -> Browser:
        assert self._browser is not None, "use the scanner in 'async with'"
        return self._browser

    async def _context(self, *, gpc: bool = False) -> BrowserContext:
        context = await self.browser.new_context(
            viewport={"width": 1280, "height": 800},
            accept_downloads=False,
            # Requests a service worker would answer are then seen on the network.
            service_workers="block",
            extra_http_headers={"Sec-GPC": "1"} if gpc else None,
        )
        context.set_default_timeout(self.options.timeout * 1000)
        if gpc:
            await context.add_init_script(_GPC_JS)
        return context

    # ------------------------------------------------------------------ the site

    async def probe(self, url: str) -> tuple[Site, dict[str, Any] | None]:
        """Load the start page; find the banner and the consent endpoint; fetch the site's
        declaration (JSON) when there is an endpoint."""
        context = await self._context()
        try:
            page = await context.new_page()
            try:
                response = await page.goto(url, wait_until="load")
            except PlaywrightError as exc:
                reason = _reason(exc).removesuffix(f" at {url}")
                raise Unreachable(f"{url}: {reason}") from None
            if response is None:
                raise Unreachable(f"{url}: no response")
            if response.status >= 400:
                raise Unreachable(
                    f"{url}: the site answered {response.status} {response.status_text}".rstrip()
                )
            found = await page.evaluate(_PREFIX_JS)
            banner = isinstance(found, str) and found.startswith("/")
            path = (found if banner else self.options.prefix or "/_consent").rstrip("/")
            parts = urlsplit(page.url)
            origin = f"{parts.scheme}://{parts.netloc}"
            state = await _json(context, origin + path)
            if not (
                isinstance(state, dict)
                and "decided" in state
                and isinstance(state.get("categories"), list)
            ):
                site = Site(page.url, None, False, [], frozenset(), frozenset())
                return site, None
            categories = [c for c in state["categories"] if isinstance(c, dict) and "key" in c]
            site = Site(
                url=page.url,
                prefix=path,
                banner=banner,
                categories=[str(c["key"]) for c in categories],
                necessary=frozenset(str(c["key"]) for c in categories if c.get("necessary")),
                sale_or_share=frozenset(
                    str(c["key"]) for c in categories if c.get("sale_or_share")
                ),
            )
            declaration = await _json(context, origin + path + "/declaration?format=json")
            return site, declaration if isinstance(declaration, dict) else None
        finally:
            await context.close()

    # ------------------------------------------------------------------ the decisions

    async def run_all(self, site: Site, decisions: Sequence[Decision]) -> list[DecisionRun]:
        """Every decision, ``jobs`` at a time, each in a fresh browser profile."""
        limit = asyncio.Semaphore(max(1, self.options.jobs))

        async def one(decision: Decision) -> DecisionRun:
            async with limit:
                return await self.run(site, decision)

        return list(await asyncio.gather(*(one(d) for d in decisions)))

    async def run(self, site: Site, decision: Decision) -> DecisionRun:
        run = DecisionRun(decision)
        context = await self._context(gpc=decision.gpc)
        try:
            visitor = _Visitor(self, site, run, context)
            await visitor.browse()
        except PlaywrightError as exc:
            run.error = run.error or _reason(exc)
        finally:
            await context.close()
        return run


class _Visitor:
    """One decision's profile: makes the decision, visits pages, records what it sees."""

    def __init__(
        self, scanner: Scanner, site: Site, run: DecisionRun, context: BrowserContext
    ) -> None:
        self.options = scanner.options
        self.say = scanner.progress
        self.site = site
        self.run = run
        self.context = context
        self.page_url = site.url
        # Set-Cookie names seen, with the hosts whose responses carried them
        self.server_set: dict[str, set[str]] = {}
        self.pending: list[asyncio.Future[None]] = []
        self.cookie_keys: set[tuple[str, str, str]] = set()
        self.storage_keys: set[tuple[str, str, str]] = set()
        # Requests under way, and when the last one started or ended (see _settle)
        self.in_flight: set[Request] = set()
        self.last_activity = 0.0
        context.on("request", self._on_request)
        context.on("response", self._on_response)
        context.on("requestfinished", self._on_request_done)
        context.on("requestfailed", self._on_request_done)

    # ---------------------------------------------------------------- events

    def _on_request(self, request: Request) -> None:
        self.in_flight.add(request)
        self.last_activity = asyncio.get_running_loop().time()
        parts = urlsplit(request.url)
        host = parts.hostname
        if parts.scheme not in ("http", "https", "ws", "wss") or not host:
            return
        if host != self.site.host and host not in self.run.hosts:
            self.run.hosts[host] = (self.page_url, not same_site(host, self.site.host))

    def _on_request_done(self, request: Request) -> None:
        self.in_flight.discard(request)
        self.last_activity = asyncio.get_running_loop().time()

    def _on_response(self, response: Response) -> None:
        self.pending.append(asyncio.ensure_future(self._read_set_cookie(response)))

    async def _read_set_cookie(self, response: Response) -> None:
        try:
            values = await response.header_values("set-cookie")
            method = response.request.method
        except PlaywrightError:
            return  # the page went away first
        self._note_set_cookies(response.url, method, values)

    def _note_set_cookies(self, url: str, method: str, values: Sequence[str]) -> None:
        parts = urlsplit(url)
        host = parts.hostname or ""
        decision = method == "POST" and host == self.site.host and parts.path == self.site.prefix
        for value in values:
            for line in value.split("\n"):
                raw = line.strip().encode("latin-1", "replace")
                name = set_cookie_name(raw)
                self.server_set.setdefault(name, set()).add(host)
                if decision and not is_deletion(raw):
                    self.run.consent_cookies.add(name)

    async def _settle(self) -> None:
        """Wait until no request has been under way for half a second (at most ``settle``
        seconds: a page that never goes quiet, polling or streaming, is read as it is), then
        for the Set-Cookie headers of the responses seen to be read. Unlike Playwright's
        ``networkidle``, which a page reaches once, this also waits for what a click started."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.settle
        while loop.time() < deadline:
            if not self.in_flight and loop.time() - self.last_activity >= QUIET:
                break
            await asyncio.sleep(0.05)
        while self.pending:
            waiting, self.pending = self.pending, []
            await asyncio.gather(*waiting, return_exceptions=True)

    # ---------------------------------------------------------------- recording

    async def _record(self, page: Page) -> None:
        for c in await self.context.cookies():
            key = (c.get("name", ""), c.get("domain", ""), c.get("path", "/"))
            if key in self.cookie_keys:
                continue
            self.cookie_keys.add(key)
            name, domain, path = key
            host = domain.lstrip(".")
            setters = self.server_set.get(name, ())
            expires = c.get("expires", -1)
            self.run.cookies.append(
                CookieSeen(
                    name=name,
                    domain=domain,
                    path=path,
                    expires=None if expires is None or expires < 0 else float(expires),
                    http_only=bool(c.get("httpOnly")),
                    secure=bool(c.get("secure")),
                    same_site=str(c.get("sameSite", "")),
                    third_party=not same_site(domain, self.site.host),
                    set_by="server"
                    if any(h == host or h.endswith("." + host) for h in setters)
                    else "script",
                    page=self.page_url,
                )
            )
        for frame in page.frames:
            try:
                found = await frame.evaluate(_STORAGE_JS)
            except PlaywrightError:
                continue  # a frame that went away, or refuses script
            origin = str(found.get("origin", "null"))
            if origin == "null":
                continue
            third = not same_site(urlsplit(origin).hostname or "", self.site.host)
            kinds: tuple[tuple[StorageKind, Any], ...] = (
                ("localStorage", found.get("local")),
                ("sessionStorage", found.get("session")),
            )
            for kind, keys in kinds:
                for key in keys if isinstance(keys, list) else ():
                    seen = (kind, origin, str(key))
                    if seen not in self.storage_keys:
                        self.storage_keys.add(seen)
                        self.run.storage.append(
                            StorageSeen(kind, origin, str(key), third, self.page_url)
                        )

    # ---------------------------------------------------------------- browsing

    async def browse(self) -> None:
        decision = self.run.decision
        banner = decision.accept is not None and self.site.banner
        if decision.accept is not None and not banner:
            await self._decide_by_endpoint()
            if self.run.error:
                return
        page = await self.context.new_page()
        limit = self.options.pages
        queue: deque[tuple[str, str | None]] = deque([(self.site.url, None)])
        queued = {_page_key(self.site.url)}
        while queue and len(self.run.pages) < limit:
            url, referer = queue.popleft()
            self.say(f"{decision.name}: page {len(self.run.pages) + 1}/{limit} {url}")
            visit, html = await self._visit(page, url, referer)
            self.run.pages.append(visit)
            if banner:
                banner = False
                await self._decide_by_banner(page)
                if self.run.error:
                    return
            if not html:
                continue
            for link in await self._links(page):
                key = _page_key(link)
                if key not in queued and self._follows(key):
                    queued.add(key)
                    queue.append((key, url))

    async def _visit(self, page: Page, url: str, referer: str | None) -> tuple[PageVisit, bool]:
        self.page_url = url
        visit = PageVisit(url)
        html = False
        try:
            response = await page.goto(url, referer=referer, wait_until="load")
            if response is not None:
                visit.status = response.status
                html = "html" in (await response.header_value("content-type") or "")
        except PlaywrightError as exc:
            visit.error = _reason(exc)
        await self._settle()
        await self._record(page)
        return visit, html

    async def _links(self, page: Page) -> list[str]:
        try:
            links = await page.eval_on_selector_all("a[href]", _LINKS_JS)
        except PlaywrightError:
            return []
        return [str(link) for link in links]

    def _follows(self, link: str) -> bool:
        """A page of the same origin, not the consent endpoint's and not a file."""
        parts = urlsplit(link)
        site = urlsplit(self.site.url)
        if parts.scheme != site.scheme or parts.netloc.lower() != site.netloc.lower():
            return False
        path = parts.path or "/"
        prefix = self.site.prefix
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            return False
        if path.startswith("/.well-known/"):
            return False
        last = path.rsplit("/", 1)[-1]
        return "." not in last or last.rsplit(".", 1)[-1].lower() not in _NOT_PAGES

    # ---------------------------------------------------------------- deciding

    async def _decide_by_banner(self, page: Page) -> None:
        """Click the banner as a visitor would; fall back to the endpoint if it fails."""
        decision = self.run.decision
        accept = decision.accept
        name = decision.name
        try:
            if not await page.evaluate(_BANNER_READY_JS):
                raise _BannerFailed("the banner did not load the visitor's state")
            await page.locator("#consent-banner").wait_for(state="visible")
            prefix = self.site.prefix

            def is_decision(response: Response) -> bool:
                return response.request.method == "POST" and urlsplit(response.url).path == prefix

            async with page.expect_response(is_decision) as answer:
                if accept == "all":
                    await page.click("#consent-accept-all")
                elif not isinstance(accept, list) or not accept:
                    await page.click("#consent-reject-all")
                else:
                    await page.click("#consent-customize")
                    switches = page.locator("#consent-preferences input.consent-switch")
                    offered = set()
                    for i in range(await switches.count()):
                        switch = switches.nth(i)
                        key = await switch.get_attribute("data-key")
                        if await switch.is_disabled():
                            continue
                        offered.add(key)
                        await switch.set_checked(key in accept)
                    missing = sorted(set(accept) - offered)
                    if missing:
                        raise _BannerFailed(f"the banner offers no switch for {', '.join(missing)}")
                    await page.click("#consent-save")
            response = await answer.value
            if response.status != 200:
                raise _BannerFailed(f"the consent endpoint answered {response.status}")
            # The banner has applied the answer (gated scripts activated, consent:change sent)
            # once its state says so: it sets the state and applies it in one go.
            await page.wait_for_function(_DECIDED_JS)
        except (PlaywrightError, _BannerFailed) as exc:
            self.say(f"{name}: the banner could not be used ({_reason(exc)}); posting instead")
            self.run.banner_error = _reason(exc)
            await self._decide_by_endpoint()
            if not self.run.error:
                await page.reload(wait_until="load")
                await self._settle()
                await self._record(page)
            return
        self.run.via = "banner"
        self.say(f"{name}: decided through the banner")
        await self._settle()
        await self._record(page)

    async def _decide_by_endpoint(self) -> None:
        """POST the decision to the consent endpoint with this profile's cookie jar."""
        decision = self.run.decision
        url = self.site.origin + (self.site.prefix or "")
        headers = {
            "Origin": self.site.origin,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        if decision.gpc:
            headers["Sec-GPC"] = "1"
        body = json.dumps({"accept": decision.accept, "method": "api"})
        try:
            response = await self.context.request.post(url, data=body, headers=headers)
        except PlaywrightError as exc:
            self.run.error = f"POST {url}: {_reason(exc)}"
            return
        if response.status != 200:
            text = (await response.text())[:200]
            self.run.error = f"POST {url} answered {response.status}: {text}"
            return
        values = [h["value"] for h in response.headers_array if h["name"].lower() == "set-cookie"]
        self._note_set_cookies(url, "POST", values)
        self.run.via = "endpoint"
        self.say(f"{decision.name}: decided through {url}")


class _BannerFailed(Exception):
    pass


def _page_key(url: str) -> str:
    """A page's address without its fragment (``/a#top`` is ``/a``)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.lower(), parts.path or "/", parts.query, ""))


async def _json(context: BrowserContext, url: str) -> Any:
    """``GET url`` as JSON with the profile's cookies, or ``None``."""
    try:
        response = await context.request.get(url, headers={"Accept": "application/json"})
        if not response.ok:
            return None
        return await response.json()
    except (PlaywrightError, ValueError):
        return None
