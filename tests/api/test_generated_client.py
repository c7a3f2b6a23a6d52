"""The document is usable as it is: openapi-python-client generates a Python client from a live
node's /openapi.json without a single warning, and that client's own functions, named after
the operationIds, publish a notification and list it back, conditional request included."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import anyio
import httpx
import pytest

from herald_server.config import Settings
from herald_server.models import SCOPE_PUBLISH
from tests.conftest import token_for

pytestmark = pytest.mark.anyio

PACKAGE = "herald_api_client"
# Generating some sixty operations' modules, on a 2-core machine shared with other runs.
GENERATE_SECONDS = 120
# No formatter run over the output: the client is imported, never read.
CONFIG = "post_hooks: []\n"


@pytest.fixture
def importable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for the generated package, forgotten again after the test so
    that the next backend's run imports its own."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
        del sys.modules[name]


async def generate(server: str, into: Path) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=10) as http:
        document = await http.get("/openapi.json")
    assert document.status_code == 200
    (into / "openapi.json").write_bytes(document.content)
    (into / "config.yaml").write_text(CONFIG)
    command = [
        sys.executable,
        "-m",
        "openapi_python_client",
        "generate",
        *("--path", str(into / "openapi.json")),
        *("--config", str(into / "config.yaml")),
        *("--output-path", str(into / PACKAGE)),
        *("--meta", "none"),
        "--fail-on-warning",
    ]
    with anyio.fail_after(GENERATE_SECONDS):
        done = await anyio.run_process(command, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr).decode()


def operation(tag: str, operation_id: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.api.{tag}.{operation_id}")


# The document is the same on both backends; the round trip through each is tested elsewhere.
@pytest.mark.parametrize("settings", ["embedded"], indirect=True)
async def test_a_generated_client_publishes_and_lists_a_notification(
    server: str, settings: Settings, importable: Path
) -> None:
    await generate(server, importable)
    client_module = importlib.import_module(f"{PACKAGE}.client")
    models = importlib.import_module(f"{PACKAGE}.models")
    publisher = client_module.AuthenticatedClient(
        base_url=server, token=token_for(settings, "shop", SCOPE_PUBLISH)
    )
    alice = client_module.AuthenticatedClient(base_url=server, token=token_for(settings, "alice"))
    async with publisher, alice:
        await round_trip(publisher, alice, models)


async def round_trip(publisher: object, alice: object, models: ModuleType) -> None:
    """Publish with the publisher's client, list with alice's, then poll with the ETag."""
    body = models.PublishBody(recipients=["alice"], title="Your order shipped")
    sent = await operation("publishing", "publish_notification").asyncio_detailed(
        client=publisher, body=body
    )
    assert sent.status_code == 202
    assert isinstance(sent.parsed, models.PublishResult)
    assert sent.parsed.recipients == 1

    listing = operation("inbox", "list_notifications")
    page = await listing.asyncio_detailed(client=alice, limit=10)
    assert page.status_code == 200
    assert isinstance(page.parsed, models.NotificationPage)
    assert [(item.id, item.title) for item in page.parsed.items] == [
        (sent.parsed.id, "Your order shipped")
    ]
    assert page.parsed.unread_count == 1

    unchanged = await listing.asyncio_detailed(
        client=alice, limit=10, if_none_match=page.headers["etag"]
    )
    assert unchanged.status_code == 304
