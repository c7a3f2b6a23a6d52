"""The objects one node runs on, built once by `app.main` and shared by every transport."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from app.auth import Authenticator
from app.bus import EventBus
from app.config import Settings
from app.core.hub import Hub
from app.core.inbox import Inbox
from app.core.publishing import Publisher
from app.store import Store


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    store: Store
    bus: EventBus
    hub: Hub
    publisher: Publisher
    inbox: Inbox
    auth: Authenticator


def services_of(conn: HTTPConnection) -> Services:
    found: Services = conn.app.state.services
    return found
