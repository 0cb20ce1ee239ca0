"""The worker's background loop: every poll, fire the timers that are due.

All its state is in MongoDB (`timers`: fire time and lease), so a restart loses nothing and
any number of workers can run it: each row is claimed with a lease before it is fired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from notifications.service import NotificationsService

log = logging.getLogger(__name__)


async def run_timers(
    service: NotificationsService, poll_seconds: float, stop: asyncio.Event
) -> None:
    """Fire due timers every `poll_seconds` until `stop` is set; errors are logged, retried."""
    while not stop.is_set():
        try:
            sent = await service.run_due()
            if sent:
                log.info("sent %d notification(s)", sent)
        except Exception:
            log.exception("notification timers pass failed; retrying next poll")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=poll_seconds)
