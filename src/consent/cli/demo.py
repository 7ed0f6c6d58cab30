"""``consent demo``: serve the demo site."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..store.base import redact_url
from .codes import EXIT_OK, EXIT_USAGE

__all__ = ["cmd_demo", "register"]


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        print("consent demo needs uvicorn: pip install 'asgi-consent[demo]'", file=sys.stderr)
        return EXIT_USAGE
    import secrets

    from ..demo import create_app

    key = os.environ.get("CONSENT_SECRET_KEY") or secrets.token_urlsafe(32)
    generated = "CONSENT_SECRET_KEY" not in os.environ
    app = create_app(secret_key=key, store=args.store)
    if app.consent.startup_error is not None:  # a --store no backend knows
        print(app.consent.startup_error, file=sys.stderr)
        return EXIT_USAGE
    print(f"Lindenhof Clinic demo: http://{args.host}:{args.port}/")
    print(
        "  secret key: "
        + (
            "generated for this run (cookies and receipts verify only until you stop it)"
            if generated
            else "from CONSENT_SECRET_KEY"
        )
    )
    print(f"  receipts:   {redact_url(args.store)}")
    print(f"  export:     consent export --store {redact_url(args.store)}")
    sys.stdout.flush()
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``demo`` to the ``consent`` command."""
    p = subparsers.add_parser(
        "demo",
        help="serve the demo site",
        description=(
            "Serve the Lindenhof Clinic demo site with the middleware, the banner and the SQLite "
            "receipt store. Uses CONSENT_SECRET_KEY when set, otherwise generates a key for the run."
        ),
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--store", default="sqlite:///consent-demo.db", help="receipt store URL")
    p.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    p.set_defaults(func=cmd_demo)
