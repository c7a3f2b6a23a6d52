"""The objects one node runs on, built once by `herald_server.main` and shared by every
transport."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from starlette.requests import HTTPConnection

from herald_server.auth import Authenticator
from herald_server.bus import EventBus, RateLimiter
from herald_server.config import Settings
from herald_server.core.audit import Auditor
from herald_server.core.hub import Hub
from herald_server.core.inbox import Inbox
from herald_server.core.publishing import Publisher
from herald_server.core.renderer import TemplateRenderer
from herald_server.store import Backend
from herald_server.supervision import Supervisor
from herald_server.worker import Worker


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    store: Backend
    bus: EventBus
    hub: Hub
    publisher: Publisher
    inbox: Inbox
    auth: Authenticator
    renderer: TemplateRenderer
    limiter: RateLimiter
    audit: Auditor
    # Delivery channels this deployment sends on (the inbox is always there).
    channels: frozenset[str]
    # The application server key browsers subscribe to Web Push with; None when push is off.
    vapid_public_key: str | None = None
    # The in-process delivery worker (the embedded default), if this node runs one.
    worker: Worker | None = None
    # Checks Twilio's signature on a status report (URL, form, signature); None without SMS.
    sms_signature: Callable[[str, Mapping[str, str], str], bool] | None = None
    # The node's background loops and their crashes (for /readyz and /metrics).
    supervisor: Supervisor = field(default_factory=Supervisor)


def services_of(conn: HTTPConnection) -> Services:
    found: Services = conn.app.state.services
    return found
