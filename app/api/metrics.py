"""Prometheus metrics, in two documents, so that no figure is counted twice.

`GET /metrics` is this process's own: its streams, bus traffic and lag, delivery attempts,
crashed loops, request latencies, memory, open files and CPU. Prometheus scrapes it on every
node and every worker (one target each), and `sum()` over them is the cluster's total.

`GET /metrics/cluster` is the cluster's: the delivery backlog and the workers' queue, read
from the store at scrape time, the same on every node. Scrape it once, through the load
balancer or any one node (a job of its own), never per node: a sum over nodes would count the
backlog once per node.

Values are read from the hub's, the bus's and the worker's own counters at scrape time by
collectors, so nothing on the hot paths touches prometheus-client. With several uvicorn
workers in one node each worker reports for itself; run one worker per node (Herald scales by
nodes). With HERALD_METRICS_PORT both documents move to a port of their own (internal,
unlike the API's); `herald worker --metrics-port` serves the same two for a worker process.
"""

from __future__ import annotations

import contextlib
import platform
import socket
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import anyio
import uvicorn
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from herald_server import __version__
from herald_server.bus import LAG_BUCKETS, BusStats, LagHistogram
from herald_server.errors import StoreUnavailable
from herald_server.models import now_ms
from herald_server.services import Services
from herald_server.store import DeliveryStore
from herald_server.supervision import Supervisor

# The metrics server finishes a scrape under way at shutdown, but never holds a stop longer.
STOP_TIMEOUT = 5.0


class NodeCollector(Collector):
    """The streams and the bus of this node, and its supervised loops."""

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
            yield lag_histogram(bus.lag)
        yield from crash_counter(self._services.supervisor)


def lag_histogram(lag: LagHistogram) -> HistogramMetricFamily:
    cumulative, buckets = 0, []
    for bound, count in zip([*map(str, LAG_BUCKETS), "+Inf"], lag.counts, strict=True):
        cumulative += count
        buckets.append((bound, cumulative))
    return HistogramMetricFamily(
        "herald_bus_lag_seconds",
        "Delay from an event's publish on any node to its receipt from the bus on this one",
        buckets=buckets,
        sum_value=lag.total_seconds,
    )


def crash_counter(supervisor: Supervisor) -> Iterator[Metric]:
    crashes = CounterMetricFamily(
        "herald_loop_crashes",
        "Crashes of this node's background loops (each is restarted)",
        labels=["loop"],
    )
    for loop in supervisor.loops():
        crashes.add_metric([loop], supervisor.crashes[loop])
    yield crashes


class AttemptsCollector(Collector):
    def __init__(self, attempts: Counter[tuple[str, str]]) -> None:
        """`attempts`: this process's delivery worker's counter."""
        self._attempts = attempts

    def collect(self) -> Iterator[Metric]:
        attempts = CounterMetricFamily(
            "herald_delivery_attempts",
            "Delivery attempts by this process, per channel and provider answer",
            labels=["channel", "outcome"],
        )
        for (channel, outcome), count in sorted(self._attempts.items()):
            attempts.add_metric([channel, outcome], count)
        yield attempts


class BuildInfoCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "herald_build_info",
            "Always 1: the Herald and Python versions this process runs",
            labels=["version", "python"],
        )
        info.add_metric([__version__, platform.python_version()], 1)
        yield info


@dataclass
class ClusterFigures:
    """What the store says about deliveries, read at scrape time (it is async; `collect`
    runs synchronously and cannot be)."""

    backlog: dict[tuple[str, str], int] = field(default_factory=dict)
    queued: int = 0
    oldest_due_at: int | None = None
    read_at: int = 0


class ClusterCollector(Collector):
    def __init__(self, store: DeliveryStore) -> None:
        self._store = store
        self.figures = ClusterFigures()

    async def refresh(self) -> None:
        """Read the figures; the store being down leaves them empty, not stale."""
        now = now_ms()
        try:
            backlog = await self._store.delivery_backlog()
            queued, oldest = await self._store.delivery_queue(now)
        except StoreUnavailable:
            self.figures = ClusterFigures(read_at=now)
            return
        self.figures = ClusterFigures(backlog, queued, oldest, now)

    def collect(self) -> Iterator[Metric]:
        figures = self.figures
        backlog = GaugeMetricFamily(
            "herald_deliveries",
            "Deliveries held, pending, sending or failed (dead letters), from the store",
            labels=["channel", "status"],
        )
        for (channel, status), count in sorted(figures.backlog.items()):
            backlog.add_metric([channel, status], count)
        yield backlog
        yield GaugeMetricFamily(
            "herald_delivery_queue_depth",
            "Deliveries due now that no worker has taken yet",
            figures.queued,
        )
        oldest = 0 if figures.oldest_due_at is None else figures.read_at - figures.oldest_due_at
        yield GaugeMetricFamily(
            "herald_delivery_queue_oldest_age_seconds",
            "How long the longest-waiting due delivery has waited for a worker (0: none waits)",
            max(0, oldest) / 1000,
        )


@dataclass(frozen=True)
class Metrics:
    """A process's two documents: its own figures, and the cluster's."""

    process: CollectorRegistry
    cluster: CollectorRegistry
    figures: ClusterCollector


def process_registry() -> CollectorRegistry:
    """A registry with what every Herald process reports: memory, open files, CPU, versions.
    The app's own registry, so several apps in one process (tests) never collide."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    registry.register(BuildInfoCollector())
    return registry


def cluster_metrics(store: DeliveryStore) -> tuple[CollectorRegistry, ClusterCollector]:
    registry = CollectorRegistry()
    figures = ClusterCollector(store)
    registry.register(figures)
    return registry, figures


def node_metrics(registry: CollectorRegistry, services: Services) -> Metrics:
    """A node's: `registry` (from process_registry, with the request latencies) gets the
    streams, the bus and, if the node runs one, its delivery worker's attempts."""
    registry.register(NodeCollector(services))
    if services.worker is not None:
        registry.register(AttemptsCollector(services.worker.deliverer.attempts))
    return Metrics(registry, *cluster_metrics(services.store))


def worker_metrics(store: DeliveryStore, attempts: Counter[tuple[str, str]]) -> Metrics:
    """A `herald worker` process's: its attempts, and the cluster's figures."""
    registry = process_registry()
    registry.register(AttemptsCollector(attempts))
    return Metrics(registry, *cluster_metrics(store))


def _text(registry: CollectorRegistry) -> Response:
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def metrics(request: Request) -> Response:
    found: Metrics = request.app.state.metrics
    return _text(found.process)


async def cluster(request: Request) -> Response:
    found: Metrics = request.app.state.metrics
    await found.figures.refresh()
    return _text(found.cluster)


routes = [
    Route("/metrics", metrics, methods=["GET"]),
    Route("/metrics/cluster", cluster, methods=["GET"]),
]


class _MetricsServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave SIGTERM to the process's API server or worker: they stop this one."""
        yield


@contextlib.asynccontextmanager
async def serving_metrics(found: Metrics, host: str, port: int | None) -> AsyncIterator[None]:
    """Serve /metrics and /metrics/cluster on `port` (None: nowhere; the API's port serves
    them) for as long as the block runs. The port is bound before the block starts, so a port
    in use fails the start rather than leaving a process without metrics."""
    if port is None:
        yield
        return
    app = Starlette(routes=routes)
    app.state.metrics = found
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False, ws="none")
    server = _MetricsServer(config)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(server.serve, [sock])
        try:
            yield
        finally:
            server.should_exit = True
            tasks.cancel_scope.deadline = anyio.current_time() + STOP_TIMEOUT
