"""A Herald node whose channels point at real local providers, for the attacks on delivery:
the same node as tests/delivery's, with settings an attack test may tighten."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from herald_server.config import Settings
from herald_server.main import create_app
from tests.conftest import run_server
from tests.delivery.conftest import Node, Providers, delivery_settings
from tests.servers.push import push_service
from tests.servers.smtp import smtp_server
from tests.servers.twilio import fake_twilio
from tests.servers.webhook import webhook_receiver


@asynccontextmanager
async def delivery_node(
    settings: Settings, tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[Node, Providers]]:
    async with AsyncExitStack() as stack:
        providers = Providers(
            await stack.enter_async_context(smtp_server(tmp_path=tmp_path)),
            await stack.enter_async_context(push_service()),
            await stack.enter_async_context(webhook_receiver()),
            await stack.enter_async_context(fake_twilio()),
        )
        configured = replace(delivery_settings(settings, providers, tmp_path), **overrides)
        app = create_app(configured)
        live = await stack.enter_async_context(run_server(app))
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=live.url, timeout=10))
        yield Node(client, configured, app), providers
