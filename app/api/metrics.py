"""GET /metrics: Prometheus text format, one node's view.

Values are read from the hub's and the bus's own counters at scrape time by a collector, so
nothing on the hot paths touches prometheus-client. With several uvicorn workers in one node
each worker reports for itself; run one worker per node (Herald scales by nodes).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.bus import BusStats
from app.services import Services


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


def registry_for(services: Services) -> CollectorRegistry:
    """A registry of this app's own: several apps in one process (tests) never collide."""
    registry = CollectorRegistry()
    registry.register(HeraldCollector(services))
    return registry


async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


routes = [Route("/metrics", metrics, methods=["GET"])]
