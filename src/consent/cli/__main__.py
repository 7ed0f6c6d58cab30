"""``python -m consent.cli``: the ``consent`` command."""

from __future__ import annotations

import sys

from .main import main

sys.exit(main())
