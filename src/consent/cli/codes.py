"""Exit codes of the ``consent`` command."""

from __future__ import annotations

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_FINDING", "EXIT_OK", "EXIT_USAGE"]

EXIT_OK, EXIT_FINDING, EXIT_USAGE = 0, 1, 2
EXIT_BROKEN_PIPE = 141  # what a shell reports for a program ended by SIGPIPE
