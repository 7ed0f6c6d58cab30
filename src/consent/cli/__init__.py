"""The ``consent`` command line: :func:`main` (the console script), one module per command group.

:mod:`.main` builds the parser and dispatches; :mod:`.policy` (init, check, declaration),
:mod:`.audit` (export, verify, incident, purge, create-store) and :mod:`.demo` add their
commands, as do :mod:`consent.catalog.command` and :mod:`consent.scanner.command`.
"""

from __future__ import annotations

from .main import build_parser, main

__all__ = ["build_parser", "main"]
