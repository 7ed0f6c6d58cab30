"""The consent endpoints under the prefix (default ``/_consent``) and ``/.well-known/gpc.json``.

* :mod:`consent.endpoints.routes`: the routing table and a handler per route
  (:class:`ConsentEndpoints`, which the middleware calls);
* :mod:`consent.endpoints.decision`: a posted decision checked and parsed;
* :mod:`consent.endpoints.embed`: a posted "Load this once" checked and parsed;
* :mod:`consent.endpoints.history`: the visitor's history of receipts and a policy revision's text;
* :mod:`consent.endpoints.responses`: JSON answers, client errors, banner assets.

The pages they answer a browser with are in :mod:`consent.pages`.
"""

from __future__ import annotations

from .decision import MAX_BODY
from .routes import ConsentEndpoints

__all__ = ["MAX_BODY", "ConsentEndpoints"]
