"""The operator's view: a small read-only ASGI app with the statistics, the chart, the latest
receipts, the policy revisions in use and the cookie counters. Off unless the site mounts it,
and it refuses to be built without an authentication hook.

    from consent.admin import create_app, token_auth

    admin = create_app(store="sqlite:///consent.db", policy="policy/", auth=operator_only)
    routes = [..., Mount("/consent-admin", app=admin)]

``auth`` is called with each request (a Starlette ``Request``) and answers whether it may see
the view: the site's own login (a session, a user with a staff flag), or :func:`token_auth`.
"""

from __future__ import annotations

import hmac
import html
import inspect
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .policy import Policy, load_policy
from .receipts import format_time
from .store import StoreUnavailable
from .times import parse_time
from .web.metrics import ConsentMetrics

__all__ = ["AuthHook", "create_app", "token_auth"]

AuthHook = Callable[[Request], "bool | Awaitable[bool]"]
MetricsSource = ConsentMetrics | Callable[[], ConsentMetrics]

_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_BY = ("day", "week", "month")
_PER = ("decision", "visitor")


def token_auth(token: str) -> AuthHook:
    """An auth hook admitting requests with ``Authorization: Bearer <token>`` (compared in
    constant time). The token must be at least 16 characters."""
    if len(token) < 16:
        raise ValueError("the operator's token must be at least 16 characters")
    expected = f"Bearer {token}".encode()

    def check(request: Request) -> bool:
        given = request.headers.get("authorization", "").encode()
        return hmac.compare_digest(given, expected)

    return check


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=_HEADERS)


class _Query:
    """The view's query parameters, checked: since, until, by, per."""

    def __init__(self, request: Request) -> None:
        params = request.query_params
        self.since = self._time(params.get("since"), "since")
        self.until = self._time(params.get("until"), "until")
        self.by = params.get("by", "day")
        self.per = params.get("per", "decision")
        if self.by not in _BY:
            raise ValueError(f"by must be one of {', '.join(_BY)}, not {self.by!r}")
        if self.per not in _PER:
            raise ValueError(f"per must be one of {', '.join(_PER)}, not {self.per!r}")

    @staticmethod
    def _time(value: str | None, name: str) -> int | None:
        if value is None or value == "":
            return None
        try:
            return parse_time(value)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None

    def options(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "by": self.by, "per": self.per}

    def string(self) -> str:
        from urllib.parse import urlencode

        pairs = {
            "since": "" if self.since is None else format_time(self.since),
            "until": "" if self.until is None else format_time(self.until),
            "by": self.by,
            "per": self.per,
        }
        return urlencode({k: v for k, v in pairs.items() if v})


def create_app(
    *,
    store: str,
    auth: AuthHook | None = None,
    policy: str | Path | Policy | None = None,
    metrics: MetricsSource | None = None,
    latest_count: int = 20,
    title: str = "Consent statistics",
) -> Starlette:
    """The operator's view of the receipt store at ``store`` (``sqlite:`` or ``postgresql:``).

    ``auth`` (required): called with each request, returns (or awaits) True to let it in; any
    other answer is a 403. ``policy`` marks the revision in force. ``metrics``: the middleware's
    counters (``middleware.metrics``, or a function returning them), shown as this worker's.
    Raises ValueError when ``auth`` is missing: the view shows visitors' decisions and is never
    served open.
    """
    if auth is None or not callable(auth):
        raise ValueError(
            "consent.admin.create_app needs auth=: a function (request) -> bool (or an async "
            "one) that admits the site's operators, e.g. the site's own login check, or "
            "consent.admin.token_auth(TOKEN). The operator's view is never served without one."
        )
    loaded = load_policy(policy) if isinstance(policy, str | Path) else policy
    current = loaded.revision if loaded is not None else None
    hook = auth

    async def allowed(request: Request) -> bool:
        answer = hook(request)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer is True

    def counters() -> ConsentMetrics | None:
        if metrics is None or isinstance(metrics, ConsentMetrics):
            return metrics
        return metrics()

    async def guarded(
        request: Request, handler: Callable[[Request, _Query], Awaitable[Response]]
    ) -> Response:
        if not await allowed(request):
            return _error(403, "not allowed: the operator's view needs the site's operator login")
        try:
            query = _Query(request)
        except ValueError as exc:
            return _error(400, str(exc))
        try:
            return await handler(request, query)
        except StoreUnavailable as exc:
            return _error(503, f"the receipt store is unavailable: {exc}")

    async def page(request: Request) -> Response:
        async def render(request: Request, query: _Query) -> Response:
            from .stats.query import collect, latest
            from .stats.render import as_table

            stats = await anyio.to_thread.run_sync(lambda: collect(store, **query.options()))
            recent = await anyio.to_thread.run_sync(lambda: latest(store, latest_count))
            chart = str(request.url_for("chart")) + "?" + query.string()
            body = _page(
                title, query, as_table(stats), stats.revisions, current, recent, counters(), chart
            )
            return HTMLResponse(body, headers=_HEADERS)

        return await guarded(request, render)

    async def chart(request: Request) -> Response:
        async def render(request: Request, query: _Query) -> Response:
            from .stats.query import collect

            try:
                from .stats.chart import render_chart
            except ImportError as exc:
                return _error(501, str(exc))
            stats = await anyio.to_thread.run_sync(lambda: collect(store, **query.options()))
            svg = await anyio.to_thread.run_sync(lambda: render_chart(stats, "svg", title=title))
            return Response(svg, media_type="image/svg+xml", headers=_HEADERS)

        return await guarded(request, render)

    async def data(request: Request) -> Response:
        async def render(request: Request, query: _Query) -> Response:
            from .stats.query import collect
            from .stats.render import as_json

            stats = await anyio.to_thread.run_sync(lambda: collect(store, **query.options()))
            return Response(as_json(stats), media_type="application/json", headers=_HEADERS)

        return await guarded(request, render)

    return Starlette(
        routes=[
            Route("/", page, methods=["GET"], name="page"),
            Route("/chart.svg", chart, methods=["GET"], name="chart"),
            Route("/stats.json", data, methods=["GET"], name="data"),
        ]
    )


_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#222}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.9rem}td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left}
th{background:#f4f4f4}pre{background:#f8f8f8;padding:.75rem;overflow:auto;font-size:.85rem}
img{max-width:100%;height:auto}form label{margin-right:1rem}.note{color:#555;font-size:.9rem}
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _page(
    title: str,
    query: _Query,
    table: str,
    revisions: list[Any],
    current: str | None,
    recent: list[Any],
    metrics: ConsentMetrics | None,
    chart: str,
) -> str:
    def option(name: str, value: str, chosen: str) -> str:
        return f'<option value="{_esc(value)}"{" selected" if value == chosen else ""}>{_esc(value)}</option>'

    since = "" if query.since is None else format_time(query.since)
    until = "" if query.until is None else format_time(query.until)
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_esc(title)}</title>",
        f"<meta name=viewport content='width=device-width'><style>{_STYLE}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        "<form method=get>",
        f"<label>since <input name=since value='{_esc(since)}' placeholder=YYYY-MM-DD></label>",
        f"<label>until <input name=until value='{_esc(until)}' placeholder=YYYY-MM-DD></label>",
        "<label>by <select name=by>"
        + "".join(option("by", v, query.by) for v in _BY)
        + "</select></label>",
        "<label>per <select name=per>"
        + "".join(option("per", v, query.per) for v in _PER)
        + "</select></label>",
        "<button>Show</button></form>",
        f"<h2>Opt-in rate per category</h2><img id=chart src='{_esc(chart)}' alt='Opt-in rate per category over time, with the policy revision changes marked'>",
        f"<h2>Decisions</h2><pre id=stats>{_esc(table)}</pre>",
        "<h2>Policy revisions in use</h2><table id=revisions><tr><th>revision</th><th>first recorded</th><th>last recorded</th><th>decisions</th><th></th></tr>",
    ]
    for r in revisions:
        mark = "in force" if current is not None and r.revision == current else ""
        parts.append(
            f"<tr><td><code>{_esc(r.revision[:16])}</code></td><td>{_esc(format_time(r.first))}</td>"
            f"<td>{_esc(format_time(r.last))}</td><td>{r.decisions}</td><td>{mark}</td></tr>"
        )
    parts.append("</table>")
    parts.append(
        "<h2>Latest receipts</h2><table id=latest><tr><th>seq</th><th>receipt</th><th>time</th>"
        "<th>event</th><th>granted</th><th>refused</th><th>method</th><th>language</th>"
        "<th>GPC</th><th>revision</th></tr>"
    )
    for item in recent:
        parts.append(
            f"<tr><td>{item.seq}</td><td><code>{_esc(item.receipt_id)}</code></td>"
            f"<td>{_esc(format_time(item.timestamp))}</td><td>{_esc(item.event)}</td>"
            f"<td>{_esc(', '.join(item.granted) or '-')}</td><td>{_esc(', '.join(item.refused) or '-')}</td>"
            f"<td>{_esc(item.method)}</td><td>{_esc(item.language)}</td><td>{'yes' if item.gpc else 'no'}</td>"
            f"<td><code>{_esc(item.revision[:16])}</code></td></tr>"
        )
    parts.append("</table>")
    parts.append(
        f"<h2>Cookies blocked and undeclared</h2><p class=note id=worker>Counted by this worker (process {os.getpid()}) since it started; other workers count their own (the <code>[metrics]</code> extra sums them).</p>"
    )
    if metrics is None:
        parts.append(
            "<p class=note>Pass <code>metrics=middleware.metrics</code> to create_app to show them.</p>"
        )
    else:
        parts.append(
            "<table id=blocked><tr><th>category</th><th>blocked in requests</th><th>blocked in responses</th></tr>"
        )
        for category in sorted(set(metrics.blocked_request) | set(metrics.blocked_response)):
            parts.append(
                f"<tr><td>{_esc(category)}</td><td>{metrics.blocked_request.get(category, 0)}</td>"
                f"<td>{metrics.blocked_response.get(category, 0)}</td></tr>"
            )
        parts.append(
            "</table><table id=undeclared><tr><th>undeclared cookie</th><th>seen</th></tr>"
        )
        for name, seen in metrics.undeclared.most_common(50):
            parts.append(f"<tr><td><code>{_esc(name)}</code></td><td>{seen}</td></tr>")
        parts.append("</table>")
        parts.append(f"<p class=note>requests: {metrics.requests}</p>")
    parts.append("</body></html>")
    return "".join(parts)
