"""GET /metrics: Prometheus text format, one node's view.

Values are read from the hub's and the bus's own counters at scrape time by a collector, so
nothing on the hot paths touches prometheus-client. With several uvicorn workers in one node
each worker reports for itself; run one worker per node (Herald scales by nodes).

Deliveries: the attempts this process's delivery worker made, per channel and provider answer,
and the backlog per channel and status read from the store at scrape time (the same on every
node: it is the cluster's). `herald worker --metrics-port` serves the same delivery figures.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from herald_server.bus import BusStats
from herald_server.errors import StoreUnavailable
from herald_server.services import Services
from herald_server.store import DeliveryStore


class HeraldCollector(Collector):
    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterator[Metric]:
        hub = self._services.hub
        yield GaugeMetricFamily(
            "herald_connections", "Open SSE and WebSocket streams on this node", hub.connections
        )
        yield CounterMetricFamily(
            "herald_stream_events", "Events written to this node's streams", hub.frames_out
        )
        yield CounterMetricFamily(
            "herald_resume_replays", "Catch-ups read from the store (resumes, gaps)", hub.replays
        )
        yield CounterMetricFamily(
            "herald_resets",
            "Streams told to refetch: more missed than the replay limit",
            hub.resets,
        )
        bus = self._services.bus
        if isinstance(bus, BusStats):
            yield CounterMetricFamily(
                "herald_bus_events_in", "Events received from the bus", bus.events_in
            )
            yield CounterMetricFamily(
                "herald_bus_events_out", "Events published to the bus", bus.events_out
            )
            yield GaugeMetricFamily(
                "herald_bus_lag_milliseconds",
                "Publish-to-receipt delay of the latest bus event",
                bus.lag_ms,
            )


class DeliveryCollector(Collector):
    def __init__(self, store: DeliveryStore, attempts: Counter[tuple[str, str]] | None) -> None:
        """`attempts`: this process's worker's counter, None when it runs no worker."""
        self._store = store
        self._attempts = attempts
        self.backlog: dict[tuple[str, str], int] = {}

    async def refresh(self) -> None:
        """Read the backlog from the store; `collect` runs synchronously and cannot."""
        self.backlog = await self._store.delivery_backlog()

    def collect(self) -> Iterator[Metric]:
        backlog = GaugeMetricFamily(
            "herald_deliveries",
            "Deliveries held, pending, sending or failed (dead letters), from the store",
            labels=["channel", "status"],
        )
        for (channel, status), count in sorted(self.backlog.items()):
            backlog.add_metric([channel, status], count)
        yield backlog
        if self._attempts is not None:
            attempts = CounterMetricFamily(
                "herald_delivery_attempts",
                "Delivery attempts by this process, per channel and provider answer",
                labels=["channel", "outcome"],
            )
            for (channel, outcome), count in sorted(self._attempts.items()):
                attempts.add_metric([channel, outcome], count)
            yield attempts


def register_collectors(registry: CollectorRegistry, services: Services) -> DeliveryCollector:
    """Read this node's figures into `registry` at scrape time; the app's own registry, so
    several apps in one process (tests) never collide."""
    registry.register(HeraldCollector(services))
    worker = services.worker
    deliveries = DeliveryCollector(
        services.store, None if worker is None else worker.deliverer.attempts
    )
    registry.register(deliveries)
    return deliveries


async def scrape(registry: CollectorRegistry, deliveries: DeliveryCollector) -> Response:
    try:
        await deliveries.refresh()
    except StoreUnavailable:
        deliveries.backlog = {}  # the process's own figures are still worth a scrape
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def metrics(request: Request) -> Response:
    registry, deliveries = request.app.state.metrics
    return await scrape(registry, deliveries)


routes = [Route("/metrics", metrics, methods=["GET"])]
