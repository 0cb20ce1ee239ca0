"""`python -m mandaact_cli token|seed|tail`."""

from __future__ import annotations

import sys

from mandaact_cli.cli import main

sys.exit(main())
