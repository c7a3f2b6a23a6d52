"""The delivery worker: a dispatcher loop, and up to `concurrency` attempts at once from the
job queue. `herald worker` runs one per process; on the embedded default `herald serve` runs
one in-process. Any number may run against one store and queue.

Stopping is graceful: no new job is taken, attempts under way finish (each is bounded by the
provider timeout), and anything not finished is left unacked for another worker.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

import anyio

from herald_server.auth import issue_unsubscribe_token
from herald_server.bus import Job, JobQueue
from herald_server.channels import Channel
from herald_server.config import Settings
from herald_server.core.delivery import Deliverer, Dispatcher, RetryPolicy
from herald_server.core.routing import Router
from herald_server.errors import BusUnavailable, StoreUnavailable
from herald_server.store import DeliveryStore

log = logging.getLogger(__name__)

# A take waits this long for a job before looking again (and noticing a stop).
TAKE_WAIT = 1.0
# After the queue or the store failed, wait this long before trying again.
PAUSE_AFTER_FAILURE = 1.0


def build_worker(
    settings: Settings, store: DeliveryStore, queue: JobQueue, channels: Mapping[str, Channel]
) -> Worker:
    visibility = int(settings.job_visibility_seconds * 1000)

    def unsubscribe_link(user: str, notification_type: str) -> str:
        token = issue_unsubscribe_token(settings, user, notification_type)
        return f"{settings.base_url}/api/unsubscribe?token={token}"

    dispatcher = Dispatcher(
        store,
        queue,
        Router(frozenset(channels)),
        # Past the visibility timeout: a job a worker still holds is reclaimed through the
        # queue first; only one that is truly lost is queued again from the store.
        requeue_after=2 * visibility,
        per_user=settings.max_deliveries_in_flight_per_user,
    )
    policy = RetryPolicy(settings.delivery_backoff)
    deliverer = Deliverer(store, channels, policy, unsubscribe_link, lease=visibility)
    return Worker(
        queue, dispatcher, deliverer, settings.worker_concurrency, settings.dispatch_interval
    )


def consumer_name() -> str:
    """Unique per process, stable for its life: the consumer group's name for this worker."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    def __init__(
        self,
        queue: JobQueue,
        dispatcher: Dispatcher,
        deliverer: Deliverer,
        concurrency: int,
        interval: float,
        name: str | None = None,
    ) -> None:
        self._queue = queue
        self._dispatcher = dispatcher
        self._deliverer = deliverer
        self._concurrency = concurrency
        self._interval = interval
        self._name = name or consumer_name()
        self._in_flight = 0
        self._slot_freed = anyio.Event()
        self._wake = anyio.Event()
        self._stopping = False
        self._taking = anyio.CancelScope()
        self.finished = anyio.Event()

    @property
    def deliverer(self) -> Deliverer:
        return self._deliverer

    @property
    def dispatcher(self) -> Dispatcher:
        return self._dispatcher

    async def aclose(self) -> None:
        """Close what the worker sends through; call after `run` has returned."""
        for channel in self._deliverer.channels.values():
            await channel.aclose()
        await self._queue.aclose()

    def wake(self) -> None:
        """Run the dispatcher now rather than at its next interval (a publish in this process
        has deliveries to plan)."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._taking.cancel()
        self._wake.set()
        self._slot_freed.set()

    async def run(self) -> None:
        try:
            # Attempts outlive the loops: stopping ends the loops, then waits for attempts. The
            # dispatcher is not cancelled but left to see `_stopping` after its tick: a store
            # query cancelled halfway leaves its connection closing in a task of its own, which
            # the event loop's shutdown then waits on for ever (a SIGTERM right after start hung).
            async with (
                anyio.create_task_group() as attempts,
                anyio.create_task_group() as loops,
            ):
                loops.start_soon(self._dispatch_loop)
                await self._consume(attempts)
        finally:
            self.finished.set()

    async def _dispatch_loop(self) -> None:
        while not self._stopping:
            moved = 0
            try:
                moved = await self._dispatcher.tick()
            except StoreUnavailable as exc:
                log.warning("dispatcher: store unavailable (%s); retrying", exc)
            if moved == 0 or self._stopping:
                with anyio.move_on_after(self._interval):
                    await self._wake.wait()
                self._wake = anyio.Event()

    async def _consume(self, attempts: anyio.abc.TaskGroup) -> None:
        while not self._stopping:
            free = self._concurrency - self._in_flight
            if free == 0:
                await self._slot_freed.wait()
                self._slot_freed = anyio.Event()
                continue
            jobs = []
            try:
                # `stop` cancels a take that is waiting: a job it would have handed over
                # stays with the queue (or is reclaimed after the visibility timeout).
                with anyio.CancelScope() as self._taking:
                    jobs = await self._queue.take(self._name, free, TAKE_WAIT)
            except BusUnavailable as exc:
                log.warning("worker: job queue unavailable (%s); retrying", exc)
                await anyio.sleep(PAUSE_AFTER_FAILURE)
                continue
            for job in jobs:
                self._in_flight += 1
                attempts.start_soon(self._attempt, job)

    async def _attempt(self, job: Job) -> None:
        try:
            done = await self._deliverer.attempt(job.delivery_id)
            if done:
                await self._queue.ack([job])
        except (StoreUnavailable, BusUnavailable) as exc:
            # Unacked, the job comes back after the visibility timeout.
            log.warning("worker: delivery %s left for later: %s", job.delivery_id, exc)
        except Exception:
            log.exception("worker: delivery %s failed; its job comes back", job.delivery_id)
        finally:
            self._in_flight -= 1
            self._slot_freed.set()
