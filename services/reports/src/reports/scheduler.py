"""The worker's background job: every poll, write the reports that are due (Monday 06:00 local).

All its state is in MongoDB (`report_jobs`: due time, claim, done), so a restart loses nothing,
and any number of workers can run it: each user-week is claimed before it is worked on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from mandaact_common.worker import WorkerDeps
from reports.generation import Clock, ReportGenerator, system_clock
from reports.llm import make_writer
from reports.settings import Settings

log = logging.getLogger(__name__)

BackgroundJob = Callable[[WorkerDeps, asyncio.Event], Coroutine[Any, Any, None]]


def reports_settings(deps: WorkerDeps) -> Settings:
    """The worker's settings as the reports service's own class."""
    if isinstance(deps.settings, Settings):
        return deps.settings
    return Settings.model_validate(deps.settings.model_dump())


def generator_for(settings: Settings, deps: WorkerDeps) -> ReportGenerator:
    """A report generator over the worker's clients, with the writer its settings ask for."""
    return ReportGenerator.from_settings(
        settings, deps.client, deps.db, make_writer(settings, deps.db)
    )


async def run_scheduler(
    generator: ReportGenerator, clock: Clock, poll_seconds: float, stop: asyncio.Event
) -> None:
    """Write due reports every `poll_seconds` until `stop` is set; errors are logged, retried."""
    while not stop.is_set():
        try:
            written = await generator.run_due(clock())
            if written:
                log.info("wrote %d weekly report(s)", written)
        except Exception:
            log.exception("report scheduler pass failed; retrying next poll")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=poll_seconds)


def scheduler_job(clock: Clock = system_clock) -> BackgroundJob:
    """The background job for WorkerSpec (tests pass their own clock)."""

    async def job(deps: WorkerDeps, stop: asyncio.Event) -> None:
        settings = reports_settings(deps)
        generator = generator_for(settings, deps)
        try:
            await run_scheduler(generator, clock, settings.scheduler_poll_seconds, stop)
        finally:
            await generator.aclose()

    return job
