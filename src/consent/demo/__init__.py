"""The demo site: the Lindenhof Clinic's information pages, wired with ConsentMiddleware.

It sets cookies the way real sites do, so every part of the middleware can be seen working:

* ``session`` and ``csrftoken`` for the newsletter and information-request forms (necessary);
* first-party analytics: ``stats_vid`` set by the server on every page, ``stats_ses`` set by a
  script that is gated with ``<script type="text/plain" data-consent="analytics">``;
* an advertising pixel: ``px_uid`` from a gated ``<img data-src>``, ``_fbp`` from a gated script;
* an embedded video in a gated ``<iframe data-src>``, served by a stand-in "video platform" that
  lives outside the clinic's middleware, as a real third party would;
* ``font_size`` and ``lang`` preference cookies.

The application code sets its cookies without asking: the middleware drops those the visitor has
not allowed. ``consent demo`` serves the site on 127.0.0.1:8000 with the SQLite store;
``uvicorn --factory consent.demo:from_env`` does the same from environment variables (used by the
browser tests). Nothing here loads anything from another host.
"""

from __future__ import annotations

from .app import DemoApp, create_app, from_env
from .content import POLICY_DIR, VIDEO_PREFIX

__all__ = ["POLICY_DIR", "VIDEO_PREFIX", "DemoApp", "create_app", "from_env"]
