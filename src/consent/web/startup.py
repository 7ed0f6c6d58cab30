"""A middleware that cannot be configured: wrong argument types raised at once, configuration
errors kept as one line, and the answers given instead (the lifespan startup fails with it)."""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

from starlette.types import Receive, Send

from ..policy import Policy, PolicyError
from ..state import check_secret_key_type

__all__ = ["StartupFailed", "check_arguments", "one_line", "refuse"]

logger = logging.getLogger("consent")


class StartupFailed(RuntimeError):
    """Raised from the lifespan call after ``lifespan.startup.failed`` is sent, as Starlette's
    own router does: servers have stopped listening by then (uvicorn exits quietly), and a
    caller that waits for the call to end, such as Starlette's ``TestClient``, raises it instead
    of going on with an application that cannot work."""


def one_line(exc: Exception) -> str:
    """An error's message on one line (a :class:`PolicyError` lists one problem a line)."""
    if isinstance(exc, PolicyError):
        return "invalid cookie policy: " + "; ".join(exc.errors)
    return " ".join(str(exc).split())


def check_arguments(
    app: object,
    policy: object,
    secret_key: object,
    store: object,
    prefix: object,
    inject_banner: object,
    trusted_origins: object,
) -> None:
    """Raise ``TypeError`` for an argument of the wrong type: a mistake in the code, not in the
    configuration, said at once (configuration errors fail the server's start instead)."""
    if not callable(app):
        raise TypeError(f"app must be an ASGI application, not {type(app).__name__}")
    if not isinstance(policy, str | Path | Policy):
        raise TypeError(
            "policy must be the path of a policy directory (str or Path) or a Policy, "
            f"not {type(policy).__name__}"
        )
    check_secret_key_type(secret_key)
    if store is not None and not isinstance(store, str) and not hasattr(store, "append"):
        raise TypeError(
            f"store must be a receipt-store URL (str) or a store object, not {type(store).__name__}"
        )
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a string, not {type(prefix).__name__}")
    if inject_banner is not None and not isinstance(inject_banner, bool):
        raise TypeError(f"inject_banner must be True, False or None, not {inject_banner!r}")
    if isinstance(trusted_origins, str | bytes) or (
        isinstance(trusted_origins, Collection)
        and not all(isinstance(o, str) for o in trusted_origins)
    ):
        raise TypeError("trusted_origins must be a sequence of origin strings")


async def refuse(error: str, kind: str, receive: Receive, send: Send) -> None:
    """Answer for a middleware that could not be configured: the lifespan startup fails with
    the reason, then :class:`StartupFailed` is raised (servers then exit; the app below is not
    started, so it has nothing to shut down); an HTTP request gets a plain 500, a WebSocket is
    closed (1011), each with one log line."""
    if kind == "lifespan":
        message = await receive()
        if message.get("type") == "lifespan.startup":
            await send({"type": "lifespan.startup.failed", "message": error})
            raise StartupFailed(error)
        else:  # (a shutdown without a startup: nothing was started)
            await send({"type": "lifespan.shutdown.complete"})
        return
    if kind == "http":
        logger.error("%s (answered 500)", error)
        await send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", b"21"),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"Internal Server Error"})
    elif kind == "websocket":
        logger.error("%s (WebSocket closed)", error)
        await send({"type": "websocket.close", "code": 1011})
