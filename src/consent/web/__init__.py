"""The request path: :class:`ConsentMiddleware` and the parts it runs on every request.

* :mod:`consent.web.middleware`: ``ConsentMiddleware`` (read headers, pick the state, route,
  wrap ``send``);
* :mod:`consent.web.filtering`: the cookie filter, both directions;
* :mod:`consent.web.metrics`: what it counts;
* :mod:`consent.web.cache`: the bounded cache the filter keeps header views in.
* :mod:`consent.web.startup`: what a middleware that could not be configured answers.

Nothing outside this package imports it but the package root, the old ``consent.middleware``
name and the demo.
"""

from __future__ import annotations

from .metrics import ConsentMetrics
from .middleware import ConsentMiddleware

__all__ = ["ConsentMetrics", "ConsentMiddleware"]
