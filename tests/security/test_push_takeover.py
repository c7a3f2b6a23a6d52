"""Hole 8: a user who learns another user's push endpoint registers it as their own.

The attacker, bob, posts alice's endpoint (with his own keys, or with hers copied). Before the
fix the subscription silently moved to bob: alice's pushes went to whoever posted last. Now
bob gets a 409, alice's subscription is untouched, and her next push reaches her browser
encrypted for her keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from herald_server.config import Settings
from tests.api.bodies import get_json
from tests.conftest import auth
from tests.delivery.conftest import publish
from tests.helpers import assert_problem
from tests.security.delivery_node import delivery_node

pytestmark = pytest.mark.anyio

PATH = "/api/push-subscriptions"


@pytest.mark.parametrize("keys", ["attackers-own", "victims-copied"])
async def test_another_users_push_endpoint_is_refused_and_the_victim_keeps_her_pushes(
    settings: Settings, tmp_path: Path, keys: str
) -> None:
    async with delivery_node(settings, tmp_path) as (node, providers):
        alice, bob = auth(node.settings, "alice"), auth(node.settings, "bob")
        key = (await get_json(node.client, "/api/channels", alice))["push_public_key"]
        victims = providers.push.subscribe(key)
        registered = await node.client.post(PATH, headers=alice, json=victims)
        assert registered.status_code == 201, registered.text
        before = await get_json(node.client, PATH, alice)

        stolen: dict[str, Any] = dict(victims)
        if keys == "attackers-own":
            stolen["keys"] = providers.push.subscribe(key)["keys"]
        attack = await node.client.post(PATH, headers=bob, json=stolen)

        assert_problem(attack, 409, "push-endpoint-taken")
        assert await get_json(node.client, PATH, alice) == before
        assert (await get_json(node.client, PATH, bob))["items"] == []
        await publish(node, ["alice"], title="for alice only")
        (received,) = await providers.push.wait_for(1)
        assert received.endpoint == victims["endpoint"]
        assert received.payload["title"] == "for alice only"
