"""`python -m mandaact_devstack up|down|status`."""

from __future__ import annotations

import sys

from mandaact_devstack.cli import main

sys.exit(main())
