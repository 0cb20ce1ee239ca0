"""The worker's background loop: every poll, write the reports that are due (Monday 06:00 local),
then rewrite those whose fold changed and has been quiet for the settle time.

All its state is in MongoDB (`report_jobs`: due time, claim, done, rewrite due time), so a
restart loses nothing, and any number of workers can run it: each user-week is claimed before
it is worked on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from reports.service import ReportsService

log = logging.getLogger(__name__)


async def run_scheduler(service: ReportsService, poll_seconds: float, stop: asyncio.Event) -> None:
    """Write due reports and due rewrites every `poll_seconds` until `stop` is set; errors are
    logged, retried."""
    while not stop.is_set():
        try:
            written = await service.run_due()
            if written:
                log.info("wrote %d weekly report(s)", written)
        except Exception:
            log.exception("report scheduler pass failed; retrying next poll")
        try:
            rewritten = await service.run_rewrites()
            if rewritten:
                log.info("rewrote %d weekly report(s) after late events", rewritten)
        except Exception:
            log.exception("report rewrite pass failed; retrying next poll")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=poll_seconds)
