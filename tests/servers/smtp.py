"""A real SMTP server (aiosmtpd) on loopback: plain, STARTTLS or implicit TLS, with AUTH.

It is "the idempotent provider": every accepted DATA is kept in `messages`, and the first per
Message-ID in `unique`, so a test can tell a resend from a second message. Recipients in the
`.invalid` TLD (RFC 2606) are refused at RCPT, as a relay refuses an unknown mailbox.

aiosmtpd serves from a thread with its own event loop, so the recorded state is guarded by a
lock, and the thread wakes `wait_for` through the test's loop.
"""

from __future__ import annotations

import asyncio
import email
import ipaddress
import socket
import ssl
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode

import anyio
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Tls = Literal["none", "starttls", "implicit"]


@dataclass(frozen=True, slots=True)
class ReceivedEmail:
    envelope_from: str
    envelope_to: list[str]
    message: EmailMessage


class SmtpServer:
    """What the server received, and the means to make it fail. Also aiosmtpd's handler (the
    `handle_*` hooks), which runs in the server's thread."""

    def __init__(
        self, url: str, credentials: tuple[str, str] | None, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.url = url
        self.messages: list[ReceivedEmail] = []
        self.unique: dict[str, ReceivedEmail] = {}
        self._credentials = credentials
        self._loop = loop
        self._lock = threading.Lock()
        self._failures: list[str] = []
        self._arrived = anyio.Event()

    def fail_next(self, count: int, code: int = 451, text: str = "4.3.0 try again later") -> None:
        """Answer the next `count` DATA commands with `code text` instead of accepting them."""
        with self._lock:
            self._failures.extend([f"{code} {text}"] * count)

    async def wait_for(self, count: int, timeout: float = 10) -> list[ReceivedEmail]:
        """The distinct messages, once there are at least `count` of them."""
        with anyio.fail_after(timeout):
            while len(self.unique) < count:
                await self._arrived.wait()
        return list(self.unique.values())

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        granted = isinstance(auth_data, LoginPassword) and self._credentials == (
            auth_data.login.decode(),
            auth_data.password.decode(),
        )
        # handled=False lets aiosmtpd answer 535 itself; True leaves the client waiting.
        return AuthResult(success=granted, handled=False)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self._credentials is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.rpartition(".")[2].lower() == "invalid":
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        with self._lock:
            if self._failures:
                return self._failures.pop(0)
            parsed = email.message_from_bytes(
                envelope.content, _class=EmailMessage, policy=policy.default
            )
            received = ReceivedEmail(envelope.mail_from or "", list(envelope.rcpt_tos), parsed)
            self.messages.append(received)
            # A message without a Message-ID cannot be a resend: it counts on its own.
            key = parsed.get("Message-ID") or f"(no Message-ID, message {len(self.messages)})"
            self.unique.setdefault(str(key), received)
            number = len(self.messages)
        self._loop.call_soon_threadsafe(self._wake)
        return f"250 2.0.0 Ok: queued as {number}"

    def _wake(self) -> None:
        self._arrived.set()
        self._arrived = anyio.Event()


class _BoundController(Controller):
    """Serves on a socket bound beforehand. Controller cannot take port 0: it connects to its
    own port to finish starting, so the port must be known first."""

    def __init__(self, handler: SmtpServer, sock: socket.socket, **kwargs: Any) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=sock.getsockname()[1], **kwargs)
        self._sock = sock

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


@asynccontextmanager
async def smtp_server(
    *, auth: tuple[str, str] | None = None, tls: Tls = "none", tmp_path: Path | None = None
) -> AsyncIterator[SmtpServer]:
    """An SMTP server on 127.0.0.1; with TLS, its certificate is self-signed, and its `url`
    trusts it through `cafile` (written under `tmp_path`, or a temporary directory)."""
    with ExitStack() as stack:
        sock = stack.enter_context(socket.socket())
        sock.bind(("127.0.0.1", 0))
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=tmp_path)))
        cert = None if tls == "none" else write_certificate(directory)
        url = _url(sock.getsockname()[1], auth, tls, cert)
        server = SmtpServer(url, auth, asyncio.get_running_loop())
        context = None if cert is None else _server_context(cert, directory / "key.pem")
        controller = _BoundController(
            server,
            sock,
            ssl_context=context if tls == "implicit" else None,
            tls_context=context if tls == "starttls" else None,
            require_starttls=tls == "starttls",
            authenticator=server.authenticate,
            # aiosmtpd sees only STARTTLS as TLS; implicit TLS is encrypted from the start.
            auth_require_tls=tls == "starttls",
            server_hostname="localhost",
        )
        await anyio.to_thread.run_sync(controller.start)
        try:
            yield server
        finally:
            await anyio.to_thread.run_sync(controller.stop)


def _url(port: int, auth: tuple[str, str] | None, tls: Tls, cafile: Path | None) -> str:
    userinfo = "" if auth is None else f"{quote(auth[0], safe='')}:{quote(auth[1], safe='')}@"
    query = {} if cafile is None else {"cafile": str(cafile)}
    if tls == "starttls":
        query = {"starttls": "true", **query}
    scheme = "smtps" if tls == "implicit" else "smtp"
    return f"{scheme}://{userinfo}127.0.0.1:{port}" + (f"?{urlencode(query)}" if query else "")


def write_certificate(directory: Path, host_name: str = "localhost") -> Path:
    """A self-signed certificate for 127.0.0.1 and `host_name` (cert.pem, key.pem in
    `directory`); its path, for clients to trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Herald test SMTP server")])
    now = datetime.now(UTC)
    alt_names = [x509.DNSName(host_name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path = directory / "cert.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
