"""A Herald node with every channel pointed at a real local provider, on both backends.

The node runs its delivery worker in-process on both backends (on the production one through
the Redis job queue), with short backoffs so retries are quick to watch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from herald_server.config import Settings, with_dev_vapid_key
from herald_server.main import create_app
from herald_server.models import SCOPE_PUBLISH
from herald_server.services import Services
from tests.conftest import auth, run_server
from tests.servers.push import PushService, push_service
from tests.servers.smtp import SmtpServer, smtp_server
from tests.servers.twilio import FakeTwilio, fake_twilio
from tests.servers.webhook import WebhookReceiver, webhook_receiver

BACKOFF = (0.2, 0.4, 0.6)


@dataclass
class Providers:
    smtp: SmtpServer
    push: PushService
    webhooks: WebhookReceiver
    twilio: FakeTwilio


@dataclass
class Node:
    client: httpx.AsyncClient
    settings: Settings
    app: Starlette

    @property
    def services(self) -> Services:
        found: Services = self.app.state.services
        return found


@pytest.fixture
async def providers(tmp_path: Path) -> AsyncIterator[Providers]:
    async with AsyncExitStack() as stack:
        yield Providers(
            await stack.enter_async_context(smtp_server(tmp_path=tmp_path)),
            await stack.enter_async_context(push_service()),
            await stack.enter_async_context(webhook_receiver()),
            await stack.enter_async_context(fake_twilio()),
        )


def delivery_settings(settings: Settings, providers: Providers, tmp_path: Path) -> Settings:
    return with_dev_vapid_key(
        replace(
            settings,
            smtp_url=providers.smtp.url,
            sms_url=providers.twilio.url,
            dev_vapid_file=str(tmp_path / "vapid"),
            public_url="https://herald.example.com",
            allow_private_targets=True,
            delivery_backoff=BACKOFF,
            provider_timeout_seconds=2,
            job_visibility_seconds=5,
            dispatch_interval=0.05,
            in_process_worker=True,
        )
    )


@pytest.fixture
async def node(settings: Settings, providers: Providers, tmp_path: Path) -> AsyncIterator[Node]:
    configured = delivery_settings(settings, providers, tmp_path)
    app = create_app(configured)
    async with (
        run_server(app) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as client,
    ):
        yield Node(client, configured, app)


async def call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
    body: Any = None,
) -> Any:
    response = await client.request(method, path, headers=headers, json=body)
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def register_webhook(node: Node, providers: Providers, user: str) -> None:
    """A webhook for `user` at the receiver's hook of the same name."""
    hook = await call(
        node.client,
        "POST",
        "/api/webhooks",
        auth(node.settings, user),
        201,
        {"url": providers.webhooks.url(user)},
    )
    providers.webhooks.set_secret(user, hook["secret"])


async def subscribe_browser(node: Node, providers: Providers, user: str) -> str:
    """A browser of `user`'s subscribed to Web Push at the local push service; its endpoint."""
    own = auth(node.settings, user)
    channels = await call(node.client, "GET", "/api/channels", own, 200)
    subscription = providers.push.subscribe(channels["push_public_key"])
    await call(node.client, "POST", "/api/push-subscriptions", own, 201, subscription)
    return str(subscription["endpoint"])


async def publish(node: Node, recipients: list[str], **fields: Any) -> str:
    """Publish as a backend service; the notification's id."""
    body = {"recipients": recipients, **fields}
    if "template" not in body:
        body.setdefault("title", "Build failed")
    publisher = auth(node.settings, "shop", SCOPE_PUBLISH)
    published = await call(node.client, "POST", "/api/notifications", publisher, 202, body)
    return str(published["id"])
