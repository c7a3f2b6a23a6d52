"""EmailChannel: each message over its own SMTP connection to the operator's relay.

HERALD_SMTP_URL names the relay:

    smtp://[user:password@]host[:port][?starttls=auto|true|false&cafile=/path/ca.pem]
    smtps://[user:password@]host[:port][?cafile=/path/ca.pem]

`smtp://` is submission on 587; `starttls=auto` upgrades when the relay offers STARTTLS, `true`
refuses to go on without it, `false` never asks. `smtps://` is implicit TLS on 465 (RFC 8314).
`cafile` trusts one more CA besides the system's, for a relay with a private certificate.
With `auto`, whoever can strip the STARTTLS offer on the way sees the password: use `true` or
`smtps://` whenever the URL carries credentials.

SMTP has no idempotency key, so the delivery's key becomes the Message-ID: a retry after a lost
reply carries the same one, and receivers that deduplicate on it show the message once.

A connection per message, not a pool: relays cap commands and time per session, and a pooled
session that died while idle would need its own detection and retry.
"""

from __future__ import annotations

import socket
import ssl
from contextlib import suppress
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from urllib.parse import parse_qsl, unquote, urlsplit

import aiosmtplib
import anyio

from herald_server.channels import Channel, EmailAddress, EmailContent, Message, Outcome
from herald_server.config import ConfigError, redact

# SMTP's CRLF policy, with RFC 5322's hard line limit instead of its 78-character fold: Python
# turns a header it cannot fold (a long List-Unsubscribe URL) into RFC 2047 encoded words,
# which clients do not decode in that header, so the link would break. And 7-bit: non-ASCII
# text goes quoted-printable, which every relay takes, with 8BITMIME or without.
POLICY = policy.SMTP.clone(max_line_length=998, cte_type="7bit")
# Once DATA is accepted the message is sent; a relay slow to say goodbye gets this long, and
# never turns that success into a retry (a duplicate).
QUIT_SECONDS = 1.0
STARTTLS_MODES: dict[str, bool | None] = {"auto": None, "true": True, "false": False}


@dataclass(frozen=True, slots=True)
class Relay:
    host: str
    port: int
    implicit_tls: bool
    # aiosmtplib's start_tls: None upgrades when offered, True insists, False never tries.
    starttls: bool | None
    username: str | None
    # Out of the repr, so logging a Relay cannot leak it.
    password: str | None = field(repr=False)
    tls: ssl.SSLContext


def parse_smtp_url(url: str) -> Relay:
    try:
        return _relay(url)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"HERALD_SMTP_URL: {exc} in {redact(url)}") from None


def _relay(url: str) -> Relay:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("expected smtp://host or smtps://host")
    implicit_tls = parts.scheme == "smtps"
    allowed = {"cafile"} if implicit_tls else {"cafile", "starttls"}
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    if unknown := sorted(set(options) - allowed):
        raise ValueError(f"unknown option {', '.join(unknown)} for {parts.scheme}://")
    starttls = options.get("starttls", "auto")
    if starttls not in STARTTLS_MODES:
        raise ValueError("starttls must be auto, true or false")
    return Relay(
        host=parts.hostname,
        port=parts.port or (465 if implicit_tls else 587),
        implicit_tls=implicit_tls,
        starttls=False if implicit_tls else STARTTLS_MODES[starttls],
        username=None if parts.username is None else unquote(parts.username),
        password=None if parts.password is None else unquote(parts.password),
        tls=_tls_context(options.get("cafile")),
    )


def _tls_context(cafile: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if cafile is not None:
        context.load_verify_locations(cafile=cafile)
    return context


def _sender_address(sender: str) -> tuple[str, str]:
    """The bare address for MAIL FROM, and its domain for Message-IDs."""
    address = parseaddr(sender)[1]
    local, _, domain = address.rpartition("@")
    if not local or not domain:
        raise ConfigError(f"HERALD_EMAIL_FROM: expected an address like Name <x@domain>: {sender}")
    return address, domain


def compose(content: EmailContent, *, sender: str, recipient: str, message_id: str) -> EmailMessage:
    email = EmailMessage(policy=POLICY)
    email["From"] = sender
    email["To"] = recipient
    # A CR or LF would end the header and start another (Bcc:, a second body): fold them.
    email["Subject"] = " ".join(content.subject.splitlines())
    email["Date"] = formatdate(usegmt=True)
    email["Message-ID"] = message_id
    # RFC 3834: vacation responders and auto-forwarders must not answer a machine.
    email["Auto-Submitted"] = "auto-generated"
    if content.unsubscribe_url is not None:
        email["List-Unsubscribe"] = f"<{content.unsubscribe_url}>"
        # RFC 8058: the mailbox provider unsubscribes with one POST, without a page to fill in.
        email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    email.set_content(content.text)
    email.add_alternative(content.html, subtype="html")
    return email


class EmailChannel:
    def __init__(self, smtp_url: str, sender: str, timeout: float) -> None:
        self._relay = parse_smtp_url(smtp_url)
        self._sender = sender
        self._envelope_from, self._domain = _sender_address(sender)
        self._timeout = timeout
        # The name this node gives in EHLO, looked up once: aiosmtplib would look it up for every
        # connection, and a slow reverse DNS lookup would eat into every send's deadline.
        self._local_hostname = socket.getfqdn()

    async def send(self, message: Message) -> Outcome:
        assert isinstance(message.content, EmailContent)
        assert isinstance(message.target, EmailAddress)
        message_id = f"<{message.key}@{self._domain}>"
        recipient = message.target.address
        try:
            email = compose(
                message.content, sender=self._sender, recipient=recipient, message_id=message_id
            )
            reply = await self._transmit(email, recipient)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return _answered(exc.recipients[0].code, exc.recipients[0].message)
        except aiosmtplib.SMTPResponseException as exc:
            return _answered(exc.code, exc.message)
        except TimeoutError:
            return Outcome("retry", f"no answer within {self._timeout:g} s")
        # Before ValueError: a certificate that fails verification is both.
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Outcome("retry", f"{type(exc).__name__}: {exc}")
        except ValueError as exc:
            return Outcome("failed", f"not an email that can be sent: {exc}")
        return Outcome("sent", f"250 {reply}", provider_id=message_id)

    async def _transmit(self, email: EmailMessage, recipient: str) -> str:
        """Send `email`; the relay's reply to DATA."""
        relay = self._relay
        smtp = aiosmtplib.SMTP(
            hostname=relay.host,
            port=relay.port,
            username=relay.username,
            password=relay.password,
            use_tls=relay.implicit_tls,
            start_tls=relay.starttls,
            tls_context=relay.tls,
            local_hostname=self._local_hostname,
        )
        try:
            with anyio.fail_after(self._timeout):
                await smtp.connect()
                # Not send_message: it would serialize with its own policy, not POLICY.
                _, reply = await smtp.sendmail(self._envelope_from, [recipient], email.as_bytes())
            with anyio.move_on_after(QUIT_SECONDS), suppress(aiosmtplib.SMTPException, OSError):
                await smtp.quit()
        finally:
            smtp.close()
        return reply

    async def aclose(self) -> None:
        """Nothing to close: every send closes its own connection."""


def _answered(code: int, text: str) -> Outcome:
    """RFC 5321 4.2.1: a 4yz reply is transient, a 5yz reply permanent."""
    return Outcome("failed" if 500 <= code < 600 else "retry", f"{code} {text}")


_: type[Channel] = EmailChannel
