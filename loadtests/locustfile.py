"""Locust scenarios for Herald: the real paths of browsers, mobiles, backends and operators.

    pip install -r loadtests/requirements.txt           # in a venv of its own, not Herald's
    HERALD_JWT_SECRET=... locust -f loadtests/locustfile.py --headless -u 200 -r 50 -t 60s \
        --host http://127.0.0.1:8000

- `BrowserUser` (most users): trades its API token for a stream token, holds a real
  `GET /api/stream` (SSE) open in a greenlet of its own, subscribes to a topic, reads its
  notification panel and marks items read. Every `notification` event it receives is reported
  as the custom metric `SSE receive latency`: from the moment the publisher started its
  `POST /api/notifications` (the `sent_at` it put in `data`) to the moment the event was read
  off the stream.
- `MobileUser`: polls `GET /api/notifications?after=<cursor>` with `If-None-Match` every
  `LOAD_POLL_SECONDS` (±25 %; a `304` is a success), advances its cursor, opens some
  items.
- `PublisherService` (a few): each makes `LOAD_PUBLISH_RATE` publishes per second
  (default 1), each with an `Idempotency-Key`: 60 % to one to three online browsers (and maybe
  a mobile) by name, 30 % to a topic the browsers subscribe to, 10 % retries of its last
  publish with the same key (Herald must answer the first result and send nothing); and, all
  publishers together, one broadcast (admin scope) every `LOAD_BROADCAST_SECONDS`
  (default 30; the first ten seconds in).
- `AdminUser` (one): reads this node's stats, deliveries, dead letters, the audit log, the
  recent notifications and `/metrics`, at a low rate.

Users are named from deterministic pools (`load-user-N`, `load-mobile-N`, `load-publisher-N`,
`load-admin`), so publishers address users that exist and reruns reuse the same users. Tokens
are HS256 JWTs signed here with `HERALD_JWT_SECRET` (the node's; the development secret file
`HERALD_DEV_SECRET_FILE`, default `./.herald-dev-secret`, when it is unset), with `aud`/`iss`
from `HERALD_JWT_AUDIENCE`/`HERALD_JWT_ISSUER` when set.

The default pacing stays far inside the node's default rate limits (500 publishes/s per
publisher, 10 notifications/s per recipient by name): a publisher makes one publish a second,
and a targeted publish names at most four of the two hundred or so users online.

Each locust process numbers its own users (with `--processes` or workers, names carry the
worker's index) and its publishers address only the users of the same process.
"""

from __future__ import annotations

import codecs
import json
import os
import random
import time
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent  # type: ignore[import-untyped]
from joserfc import jwk, jwt
from locust import HttpUser, between, constant_throughput, events, task
from locust.clients import ResponseContextManager
from locust.env import Environment
from locust.runners import WorkerRunner
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

SCOPE_PUBLISH = "notifications:publish"
SCOPE_ADMIN = "notifications:admin"
TOKEN_TTL_SECONDS = 3600
TOPICS = 4
PUBLISH_RATE = float(os.environ.get("LOAD_PUBLISH_RATE", "1"))
POLL_SECONDS = float(os.environ.get("LOAD_POLL_SECONDS", "10"))
# Broadcasts are announcements: one every this many seconds from all publishers together.
BROADCAST_SECONDS = float(os.environ.get("LOAD_BROADCAST_SECONDS", "30"))
STREAM_READ_TIMEOUT = 60.0  # seconds without a byte; the node sends a heartbeat every 15 s
STREAM_RETRY_SECONDS = 2.0  # until the stream's own `retry:` hint says otherwise

_rng = random.Random()  # noqa: S311 - picks load, not secrets


def _secret() -> str:
    secret = os.environ.get("HERALD_JWT_SECRET")
    if secret:
        return secret
    path = Path(os.environ.get("HERALD_DEV_SECRET_FILE", "./.herald-dev-secret"))
    if path.exists():
        return path.read_text().strip()
    raise SystemExit(
        "locustfile: set HERALD_JWT_SECRET to the node's secret (or run from the directory "
        "holding the development node's .herald-dev-secret)"
    )


_KEY = jwk.OctKey.import_key(_secret())


def mint_token(sub: str, scope: str = "") -> str:
    """An API token as the node's own backend (or `herald token`) would sign it."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + TOKEN_TTL_SECONDS}
    if scope:
        claims["scope"] = scope
    if audience := os.environ.get("HERALD_JWT_AUDIENCE"):
        claims["aud"] = audience
    if issuer := os.environ.get("HERALD_JWT_ISSUER"):
        claims["iss"] = issuer
    return jwt.encode({"alg": "HS256", "typ": "JWT"}, claims, _KEY)


class _Token:
    """A user's API token, minted again well before it expires (long runs outlive one)."""

    def __init__(self, sub: str, scope: str = "") -> None:
        self.sub, self.scope = sub, scope
        self._token, self._minted = "", 0.0

    @property
    def headers(self) -> dict[str, str]:
        if time.time() - self._minted > TOKEN_TTL_SECONDS / 2:
            self._token, self._minted = mint_token(self.sub, self.scope), time.time()
        return {"Authorization": f"Bearer {self._token}"}


class _Pool:
    """Deterministic user names (`load-user-0`, `load-user-1`...), and which are online.

    Each new user takes the next index, so reruns reuse the same users. Under `--processes`
    or a distributed run each worker numbers its own users, inside a name of its own.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._next = 0
        self._online: dict[str, None] = {}  # an ordered set

    def take(self, environment: Environment) -> tuple[int, str]:
        index, self._next = self._next, self._next + 1
        runner = environment.runner
        if isinstance(runner, WorkerRunner):
            return index, f"{self.prefix}-w{runner.worker_index}-{index}"
        return index, f"{self.prefix}-{index}"

    def arrive(self, name: str) -> None:
        self._online[name] = None

    def leave(self, name: str) -> None:
        self._online.pop(name, None)

    def sample(self, most: int) -> list[str]:
        return _rng.sample(list(self._online), min(most, len(self._online)))


# When the next broadcast is due (time.monotonic()): the first once the users are in.
_next_broadcast = time.monotonic() + min(10.0, BROADCAST_SECONDS)
BROWSERS = _Pool("load-user")
MOBILES = _Pool("load-mobile")
PUBLISHERS = _Pool("load-publisher")


def _report(name: str, ms: float, length: int, error: Exception | None = None) -> None:
    """A row of the SSE type in locust's statistics (and a failure when `error` is given)."""
    events.request.fire(  # type: ignore[no-untyped-call]
        request_type="SSE",
        name=name,
        response_time=ms,
        response_length=length,
        exception=error,
        context={},
    )


def _topic(index: int) -> str:
    return f"load-topic-{index % TOPICS}"


class _SseParser:
    """Server-Sent Events framing (the WHATWG rules this needs): lines end in CR, LF or
    CRLF; `:` starts a comment; a blank line dispatches the event being built."""

    def __init__(self) -> None:
        self._buffer = ""
        self._event, self._id = "", ""
        self._data: list[str] = []
        self.retry_ms: int | None = None

    def feed(self, text: str) -> Iterator[tuple[str, str | None, str]]:
        """(event, id or None, data) of every event completed by `text`."""
        self._buffer += text
        while True:
            cut = min(
                (i for i in (self._buffer.find("\r"), self._buffer.find("\n")) if i >= 0),
                default=-1,
            )
            if cut < 0 or (self._buffer[cut] == "\r" and cut == len(self._buffer) - 1):
                return  # no full line yet (a final CR may be half of a CRLF)
            line = self._buffer[:cut]
            skip = 2 if self._buffer.startswith("\r\n", cut) else 1
            self._buffer = self._buffer[cut + skip :]
            if not line:
                if self._data:
                    yield self._event or "message", self._id or None, "\n".join(self._data)
                self._event, self._data = "", []
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                self._event = value
            elif field == "data":
                self._data.append(value)
            elif field == "id":
                self._id = value
            elif field == "retry" and value.isdigit():
                self.retry_ms = int(value)


def _problem(response: ResponseContextManager) -> str:
    """Why a response failed: the connection error, or the status and the problem document."""
    if response.status_code == 0:
        return repr(response.error)
    return f"{response.status_code}: {response.text[:200]}"


class _HeraldUser(HttpUser):
    """An HTTP client that, like browsers and mobile HTTP stacks, tries a request once more
    when a pooled keep-alive connection turns out to be closed under it.

    uvicorn closes connections idle for 5 s; a request sent on one at that moment is reset
    before any answer (the keep-alive race), which Chrome and OkHttp retry by themselves.
    Retrying is safe here: reads and marks are idempotent and publishes carry an
    `Idempotency-Key`. A 4xx or 5xx answer is never retried.
    """

    abstract = True

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)  # type: ignore[no-untyped-call]
        retry = Retry(
            total=1, connect=1, read=1, redirect=0, status=0, other=0, allowed_methods=None
        )
        for adapter in self.client.adapters.values():
            if isinstance(adapter, HTTPAdapter):
                adapter.max_retries = retry


class BrowserUser(_HeraldUser):
    """A page with the notification bell: one live SSE stream, a panel, marks read."""

    weight = 60
    wait_time = between(2, 6)

    def on_start(self) -> None:
        index, self.user_name = BROWSERS.take(self.environment)
        self.token = _Token(self.user_name)
        self.topic = _topic(index)
        self.cursor: str | None = None
        self.to_read: deque[str] = deque(maxlen=50)
        self.client.put(
            f"/api/topics/{self.topic}/subscription",
            headers=self.token.headers,
            name="/api/topics/[name]/subscription",
        )
        self.stream = gevent.spawn(self._listen)

    def on_stop(self) -> None:
        BROWSERS.leave(self.user_name)
        stream = getattr(self, "stream", None)  # None when stopped before on_start ended
        if stream is not None:
            stream.kill(block=True, timeout=5)

    # The stream: its own greenlet, so a read that waits never blocks this user's tasks
    # or any other user.

    def _listen(self) -> None:
        while True:
            retry = STREAM_RETRY_SECONDS
            try:
                retry = self._stream_once()
            except (OSError, ValueError, KeyError) as error:  # requests' errors are OSErrors
                _report("stream read", 0, 0, error)
            finally:
                BROWSERS.leave(self.user_name)
            gevent.sleep(retry)

    def _stream_once(self) -> float:
        """Hold one stream until it ends or asks to be renewed; the seconds to wait after."""
        answer = self.client.post(
            "/api/stream/token", headers=self.token.headers, name="/api/stream/token"
        )
        if answer.status_code != 201:
            return STREAM_RETRY_SECONDS
        params = {"token": answer.json()["token"]}
        if self.cursor is not None:
            params["last_event_id"] = self.cursor
        response = self.client.get(
            "/api/stream",
            params=params,
            headers={"Accept": "text/event-stream", "Cache-Control": "no-cache"},
            name="/api/stream (connect)",
            stream=True,
            timeout=(10, STREAM_READ_TIMEOUT),
        )
        parser = _SseParser()
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            if response.status_code != 200:
                return STREAM_RETRY_SECONDS
            for chunk in response.iter_content(chunk_size=None, decode_unicode=False):
                for event, event_id, data in parser.feed(decoder.decode(chunk)):
                    if event_id is not None:
                        self.cursor = event_id
                    if not self._on_event(event, data):
                        return 0.0  # renew the stream token now, resume from the cursor
        finally:
            response.close()
        # The node ended the stream (it is shutting down): come back as EventSource would.
        _report("reconnect", 0, 0)
        return (parser.retry_ms or STREAM_RETRY_SECONDS * 1000) / 1000

    def _on_event(self, event: str, data: str) -> bool:
        """Handle one event; False to reconnect."""
        received = time.time()
        # The stream is live once its first event (`unread_count`) is out: from then on
        # publishers may address this user and every notification reaches the stream.
        BROWSERS.arrive(self.user_name)
        if event == "notification":
            notification = json.loads(data)
            sent_at = (notification.get("data") or {}).get("sent_at")
            if isinstance(sent_at, int | float):
                _report("receive latency", max(0.0, (received - sent_at) * 1000), len(data))
            self.to_read.append(notification["id"])
        elif event == "reset":
            # More was missed than the replay limit: refetch the panel, go on from the head.
            self.cursor = json.loads(data)["cursor"]
            self.read_panel()
        elif event in ("token_expiring", "revoked"):
            return False
        return True

    # The page.

    @task(4)
    def read_panel(self) -> None:
        with self.client.get(
            "/api/notifications",
            params={"limit": 20},
            headers=self.token.headers,
            name="/api/notifications (panel)",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(_problem(response))
                return
            page = response.json()
            if "unread_count" not in page:
                response.failure("no unread_count in the inbox page")
                return
            for item in page["items"]:
                if item["read_at"] is None and item["id"] not in self.to_read:
                    self.to_read.append(item["id"])

    @task(3)
    def mark_read(self) -> None:
        if self.to_read:
            self.client.post(
                f"/api/notifications/{self.to_read.popleft()}/read",
                headers=self.token.headers,
                name="/api/notifications/[id]/read",
            )

    @task(1)
    def unread_count(self) -> None:
        self.client.get(
            "/api/notifications/unread-count",
            headers=self.token.headers,
            name="/api/notifications/unread-count",
        )

    @task(1)
    def read_all(self) -> None:
        if len(self.to_read) > 10:
            self.client.post(
                "/api/notifications/read-all",
                json={},
                headers=self.token.headers,
                name="/api/notifications/read-all",
            )
            self.to_read.clear()


class MobileUser(_HeraldUser):
    """An app that polls its inbox forward from a cursor, with ETags."""

    weight = 35
    # Jittered like a real app's timer: a fixed period (locust's constant_pacing) would keep
    # users spawned together polling in the same instant for the whole run.
    wait_time = between(POLL_SECONDS * 0.75, POLL_SECONDS * 1.25)

    def on_start(self) -> None:
        _, self.user_name = MOBILES.take(self.environment)
        self.token = _Token(self.user_name)
        self.etag: str | None = None
        # The first launch: the newest page, then poll forward from the head it was read at.
        answer = self.client.get(
            "/api/notifications",
            params={"limit": 20},
            headers=self.token.headers,
            name="/api/notifications (first page)",
        )
        self.cursor = answer.json()["counts_at"] if answer.status_code == 200 else "0"
        MOBILES.arrive(self.user_name)

    def on_stop(self) -> None:
        MOBILES.leave(self.user_name)

    @task
    def poll(self) -> None:
        headers = self.token.headers
        if self.etag is not None:
            headers["If-None-Match"] = self.etag
        with self.client.get(
            "/api/notifications",
            params={"after": self.cursor, "limit": 100},
            headers=headers,
            name="/api/notifications?after=[cursor]",
            catch_response=True,
        ) as response:
            if response.status_code == 304:
                # Nothing new: counted apart, to show how many polls the ETag saved.
                response.request_meta["name"] = "/api/notifications?after=[cursor] (304)"
                response.success()
                return
            if response.status_code != 200:
                response.failure(_problem(response))
                return
            page = response.json()
            self.etag = response.headers.get("ETag")
            self.cursor = page["next_cursor"]
            items = page["items"]
        if items and _rng.random() < 0.3:
            # The user opens the newest one.
            self.client.post(
                f"/api/notifications/{items[-1]['id']}/read",
                headers=self.token.headers,
                name="/api/notifications/[id]/read",
            )


class PublisherService(_HeraldUser):
    """A backend: targeted, topic and broadcast notifications, each with an idempotency key."""

    weight = 3
    wait_time = constant_throughput(PUBLISH_RATE)

    def on_start(self) -> None:
        _, self.user_name = PUBLISHERS.take(self.environment)
        self.token = _Token(self.user_name, SCOPE_PUBLISH)
        self.admin_token = _Token(self.user_name, f"{SCOPE_PUBLISH} {SCOPE_ADMIN}")
        self.last: tuple[str, dict[str, Any], str, _Token] | None = None

    def _publish(self, kind: str, audience: dict[str, Any], token: _Token) -> None:
        key = str(uuid.uuid4())
        body = {
            "type": f"load.{kind}",
            "title": f"Load test {kind}",
            "body": "Sent by loadtests/locustfile.py",
            "data": {"sent_at": time.time(), "kind": kind},
            **audience,
        }
        with self.client.post(
            "/api/notifications",
            json=body,
            headers={**token.headers, "Idempotency-Key": key},
            name=f"/api/notifications ({kind})",
            catch_response=True,
        ) as response:
            if response.status_code != 202:
                response.failure(_problem(response))
                return
            self.last = (key, body, response.json()["id"], token)

    @task
    def publish(self) -> None:
        """One publish per run: a broadcast when one is due, else mostly targeted ones."""
        global _next_broadcast
        if time.monotonic() >= _next_broadcast:
            _next_broadcast = time.monotonic() + BROADCAST_SECONDS
            self.broadcast()
            return
        roll = _rng.random()
        if roll < 0.1 and self.last is not None:
            self.retry()
        elif roll < 0.4:
            self.topic()
        else:
            self.targeted()

    def targeted(self) -> None:
        recipients = BROWSERS.sample(_rng.randint(1, 3)) + MOBILES.sample(_rng.randint(0, 1))
        if recipients:
            self._publish("targeted", {"recipients": recipients}, self.token)

    def topic(self) -> None:
        self._publish("topic", {"topic": _topic(_rng.randrange(TOPICS))}, self.token)

    def broadcast(self) -> None:
        self._publish("broadcast", {"broadcast": True}, self.admin_token)

    def retry(self) -> None:
        """A retry after a lost answer: the first result again, and nothing sent twice."""
        if self.last is None:
            return
        key, body, first_id, token = self.last
        with self.client.post(
            "/api/notifications",
            json=body,
            headers={**token.headers, "Idempotency-Key": key},
            name="/api/notifications (idempotent retry)",
            catch_response=True,
        ) as response:
            if response.status_code != 202:
                response.failure(_problem(response))
            elif response.headers.get("Idempotent-Replayed") != "true":
                response.failure("a retry was not answered as a replay")
            elif response.json()["id"] != first_id:
                response.failure(f"a retry answered {response.json()['id']}, not {first_id}")


class AdminUser(_HeraldUser):
    """The operator with the admin page open."""

    fixed_count = 1
    wait_time = between(5, 10)

    def on_start(self) -> None:
        self.token = _Token("load-admin", SCOPE_ADMIN)

    def _get(self, path: str, **params: Any) -> None:
        self.client.get(path, params=params, headers=self.token.headers, name=path)

    @task(3)
    def stats(self) -> None:
        self._get("/api/admin/stats")

    @task(2)
    def recent(self) -> None:
        self._get("/api/admin/notifications", limit=20)

    @task(1)
    def deliveries(self) -> None:
        self._get("/api/admin/deliveries", limit=20)

    @task(1)
    def dead_letters(self) -> None:
        self._get("/api/admin/dead-letters", limit=20)

    @task(1)
    def audit(self) -> None:
        self._get("/api/admin/audit", limit=20)

    @task(1)
    def metrics(self) -> None:
        self.client.get("/metrics", name="/metrics")
