"""Views of the Lindenhof Clinic example site."""

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from consent import ConsentState, current_consent


class WaitingTimes:
    """Live waiting times of the emergency department (a stand-in for the hospital system)."""

    def current(self, tick: int = 0) -> dict[str, int]:
        return {
            "emergency": 35 + (tick % 4) * 5,
            "radiology": 20 + (tick % 3) * 10,
            "paediatrics": 15 + (tick % 2) * 5,
        }


WAITING_TIMES = WaitingTimes()


def consent_of(request: HttpRequest) -> ConsentState:
    """The visitor's consent state, set by ConsentMiddleware for the request being handled.

    The context variable works in sync and async views alike (Django copies the context into
    the thread that runs a sync view).
    """
    state = current_consent.get()
    if state is None:
        raise ImproperlyConfigured(
            "ConsentMiddleware does not wrap this site: serve lindenhof.asgi:application with an "
            "ASGI server such as uvicorn (manage.py runserver bypasses it)"
        )
    return state


def visitor_report(cookies: dict[str, str], state: ConsentState) -> dict[str, Any]:
    """What the app knows about the visitor: the cookies it received and the consent state."""
    return {
        "cookies": cookies,
        "decided": state.decided,
        "granted": sorted(state.granted),
        "denied": sorted(state.denied),
        "gpc": state.gpc,
        "allows": {key: state.allows(key) for key in ("analytics", "marketing", "preferences")},
    }


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The home page: the session, a CSRF token (the form), analytics and marketing cookies."""
    consent = consent_of(request)
    request.session["visits"] = request.session.get("visits", 0) + 1
    response = render(
        request,
        "lindenhof/home.html",
        {
            "analytics_on": consent.allows("analytics"),
            "emergency_wait": WAITING_TIMES.current()["emergency"],
        },
    )
    # The app sets these unconditionally; the middleware drops them until the visitor agrees.
    response.set_cookie("stats_vid", secrets.token_hex(8), max_age=395 * 24 * 3600)
    response.set_cookie("px_uid", secrets.token_hex(8), max_age=90 * 24 * 3600)
    return response


@require_POST
def newsletter(request: HttpRequest) -> HttpResponse:
    """The newsletter form (CSRF-protected: the csrftoken cookie must reach Django)."""
    email = request.POST.get("email", "")
    return render(request, "lindenhof/thanks.html", {"email": email})


@require_GET
def visitor(request: HttpRequest) -> HttpResponse:
    """JSON: what this app sees of the visitor (only the cookies they allowed)."""
    return JsonResponse(visitor_report(dict(request.COOKIES), consent_of(request)))


@require_GET
async def waiting_times(request: HttpRequest) -> StreamingHttpResponse:
    """Server-sent events with the waiting times (``?updates=N&interval=SECONDS``)."""
    updates = max(1, min(int(request.GET.get("updates", "5")), 60))
    interval = max(0.0, min(float(request.GET.get("interval", "1")), 10.0))

    async def events() -> AsyncIterator[str]:
        for tick in range(updates):
            if tick:
                await asyncio.sleep(interval)
            yield f"event: waiting-times\ndata: {json.dumps(WAITING_TIMES.current(tick))}\n\n"

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response.set_cookie("stats_ses_live", secrets.token_hex(4), max_age=1800)
    return response
