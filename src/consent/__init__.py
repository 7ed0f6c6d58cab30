"""Server-side cookie consent for ASGI sites.

``ConsentMiddleware`` wraps any ASGI app; the visitor's choice is at ``scope["state"]["consent"]``
(``request.state.consent``) and in :data:`current_consent`.

Names are imported lazily, so the ``consent`` command does not load the web stack it does not use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .classify import Classifier
    from .policy import Policy, PolicyError, load_policy
    from .state import ConsentState, current_consent
    from .web import ConsentMetrics, ConsentMiddleware

__version__ = "0.1.0"

_LAZY = {
    "Classifier": ".classify",
    "ConsentMetrics": ".web",
    "ConsentMiddleware": ".web",
    "ConsentState": ".state",
    "Policy": ".policy",
    "PolicyError": ".policy",
    "current_consent": ".state",
    "load_policy": ".policy",
}

__all__ = [
    "Classifier",
    "ConsentMetrics",
    "ConsentMiddleware",
    "ConsentState",
    "Policy",
    "PolicyError",
    "__version__",
    "current_consent",
    "load_policy",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'consent' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value
