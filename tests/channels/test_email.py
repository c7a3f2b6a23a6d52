"""EmailChannel against a real SMTP server on loopback: content, headers, AUTH, TLS, and what
each kind of refusal becomes."""

from __future__ import annotations

import ssl
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
import pytest

from herald_server.channels import EmailAddress, EmailContent, Message, Outcome
from herald_server.channels.email import EmailChannel, parse_smtp_url
from herald_server.config import ConfigError
from tests.helpers import free_port, silent_port
from tests.servers.smtp import Tls, smtp_server, write_certificate

SENDER = "Herald <herald@example.com>"
CREDENTIALS = ("herald", "s3cret p@ss:word")
# An unsubscribe link as real ones look: long, with a signed token; longer than a folded line.
UNSUBSCRIBE = "https://herald.example.com/api/unsubscribe?token=" + "a1B2c3D4" * 12


def email_to(
    address: str = "alice@example.com",
    *,
    key: str = "delivery-1",
    subject: str = "Your invoice is ready",
    unsubscribe_url: str | None = None,
) -> Message:
    content = EmailContent(subject, "Plain words.", "<p>Rich <b>words</b>.</p>", unsubscribe_url)
    return Message(key, "alice", EmailAddress(address), content)


async def send(url: str, message: Message, *, timeout: float = 5) -> Outcome:
    channel = EmailChannel(url, SENDER, timeout)
    try:
        with anyio.fail_after(timeout + 5):
            return await channel.send(message)
    finally:
        await channel.aclose()


def without_cafile(url: str) -> str:
    parts = urlsplit(url)
    query = [(name, value) for name, value in parse_qsl(parts.query) if name != "cafile"]
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.mark.anyio
async def test_an_email_arrives_with_a_text_part_then_an_html_part() -> None:
    async with smtp_server() as server:
        outcome = await send(server.url, email_to())
        [received] = await server.wait_for(1)
    assert outcome.status == "sent"
    assert outcome.detail.startswith("250 ")
    assert outcome.provider_id == "<delivery-1@example.com>"
    assert (received.envelope_from, received.envelope_to) == (
        "herald@example.com",
        ["alice@example.com"],
    )
    message = received.message
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.iter_parts()
    assert (text.get_content_type(), text.get_content().strip()) == ("text/plain", "Plain words.")
    assert html.get_content_type() == "text/html"
    assert html.get_content().strip() == "<p>Rich <b>words</b>.</p>"


@pytest.mark.anyio
async def test_the_headers_name_the_sender_the_delivery_and_an_automatic_message() -> None:
    async with smtp_server() as server:
        await send(server.url, email_to(key="d-42"))
        [received] = await server.wait_for(1)
    message = received.message
    assert message["From"] == SENDER
    assert message["To"] == "alice@example.com"
    assert message["Subject"] == "Your invoice is ready"
    assert message["Message-ID"] == "<d-42@example.com>"
    assert message["Auto-Submitted"] == "auto-generated"
    sent_at = parsedate_to_datetime(message["Date"])
    assert abs((datetime.now(UTC) - sent_at).total_seconds()) < 60
    assert "List-Unsubscribe" not in message
    assert "List-Unsubscribe-Post" not in message


@pytest.mark.anyio
async def test_an_unsubscribe_url_adds_the_one_click_pair_unencoded() -> None:
    async with smtp_server() as server:
        await send(server.url, email_to(unsubscribe_url=UNSUBSCRIBE))
        [received] = await server.wait_for(1)
    # Raw, as a mail client reads them: RFC 2047 words would break the link.
    raw = dict(received.message.raw_items())
    assert raw["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert raw["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


@pytest.mark.anyio
async def test_non_ascii_text_arrives_intact() -> None:
    message = Message(
        "d-1",
        "alice",
        EmailAddress("alice@example.com"),
        EmailContent("Grüße — 5 €", "Café ☕", "<p>Thé</p>"),
    )
    async with smtp_server() as server:
        await send(server.url, message)
        [received] = await server.wait_for(1)
    assert received.message["Subject"] == "Grüße — 5 €"
    text, html = received.message.iter_parts()
    assert (text.get_content().strip(), html.get_content().strip()) == ("Café ☕", "<p>Thé</p>")


@pytest.mark.anyio
async def test_newlines_in_the_subject_cannot_add_headers_or_recipients() -> None:
    subject = "Hello\r\nBcc: eve@example.com\r\n\r\nInjected body"
    async with smtp_server() as server:
        outcome = await send(server.url, email_to(subject=subject))
        [received] = await server.wait_for(1)
    assert outcome.status == "sent"
    assert received.message["Subject"] == "Hello Bcc: eve@example.com  Injected body"
    assert "Bcc" not in received.message
    assert received.envelope_to == ["alice@example.com"]
    text, _ = received.message.iter_parts()
    assert text.get_content().strip() == "Plain words."


@pytest.mark.anyio
async def test_auth_with_the_right_password_delivers() -> None:
    async with smtp_server(auth=CREDENTIALS) as server:
        assert CREDENTIALS[0] in server.url
        outcome = await send(server.url, email_to())
        await server.wait_for(1)
    assert outcome.status == "sent"


@pytest.mark.anyio
async def test_a_wrong_password_fails_at_once() -> None:
    async with smtp_server(auth=CREDENTIALS) as server:
        url = server.url.replace("s3cret", "wrong")
        started = time.monotonic()
        outcome = await send(url, email_to())
        assert server.messages == []
    assert outcome.status == "failed"
    assert outcome.detail.startswith("535 ")
    assert time.monotonic() - started < 3


@pytest.mark.anyio
async def test_mail_without_auth_is_refused_by_a_relay_that_requires_it() -> None:
    async with smtp_server(auth=CREDENTIALS) as server:
        url = server.url.replace("herald:s3cret%20p%40ss%3Aword@", "")
        outcome = await send(url, email_to())
    assert outcome.status == "failed"
    assert outcome.detail.startswith("530 ")


@pytest.mark.anyio
@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_tls_with_the_test_ca_delivers(tls: Tls, tmp_path: Path) -> None:
    async with smtp_server(auth=CREDENTIALS, tls=tls, tmp_path=tmp_path) as server:
        assert dict(parse_qsl(urlsplit(server.url).query))["cafile"].startswith(str(tmp_path))
        outcome = await send(server.url, email_to())
        [received] = await server.wait_for(1)
    assert outcome.status == "sent"
    assert received.message["Message-ID"] == "<delivery-1@example.com>"


@pytest.mark.anyio
@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_an_untrusted_certificate_is_refused(tls: Tls) -> None:
    async with smtp_server(auth=CREDENTIALS, tls=tls) as server:
        outcome = await send(without_cafile(server.url), email_to())
        assert server.messages == []
    assert outcome.status == "retry"
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.detail


@pytest.mark.anyio
async def test_starttls_true_will_not_send_in_the_clear() -> None:
    async with smtp_server() as server:
        outcome = await send(server.url + "?starttls=true", email_to())
        assert server.messages == []
    assert outcome.status == "retry"
    assert "STARTTLS" in outcome.detail


@pytest.mark.anyio
async def test_starttls_false_never_upgrades() -> None:
    async with smtp_server(tls="starttls") as server:
        url = server.url.replace("starttls=true", "starttls=false")
        outcome = await send(url, email_to())
    # This relay insists on STARTTLS first (RFC 3207), so the plain MAIL is refused.
    assert outcome.status == "failed"
    assert outcome.detail.startswith("530 ")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("code", "text", "status"),
    [
        (451, "4.3.0 try again later", "retry"),
        (421, "4.7.0 too many connections", "retry"),
        (550, "5.7.1 message refused", "failed"),
        (554, "5.6.0 transaction failed", "failed"),
    ],
)
async def test_the_reply_to_data_decides_between_retry_and_failed(
    code: int, text: str, status: str
) -> None:
    async with smtp_server() as server:
        server.fail_next(1, code, text)
        refused = await send(server.url, email_to())
        assert server.messages == []
        accepted = await send(server.url, email_to())
    assert (refused.status, refused.detail) == (status, f"{code} {text}")
    assert accepted.status == "sent"


@pytest.mark.anyio
async def test_a_refused_recipient_fails() -> None:
    async with smtp_server() as server:
        outcome = await send(server.url, email_to("nobody@example.invalid"))
    assert outcome.status == "failed"
    assert outcome.detail.startswith("550 5.1.1 ")


@pytest.mark.anyio
async def test_a_closed_port_is_retried() -> None:
    outcome = await send(f"smtp://127.0.0.1:{free_port()}", email_to())
    assert outcome.status == "retry"
    assert "Connect" in outcome.detail


@pytest.mark.anyio
async def test_a_relay_that_never_answers_is_retried_after_the_timeout() -> None:
    with silent_port() as port:
        started = time.monotonic()
        outcome = await send(f"smtp://127.0.0.1:{port}", email_to(), timeout=0.5)
    assert (outcome.status, outcome.detail) == ("retry", "no answer within 0.5 s")
    assert time.monotonic() - started < 3


@pytest.mark.anyio
async def test_a_resend_of_the_same_delivery_counts_once() -> None:
    async with smtp_server() as server:
        first = await send(server.url, email_to(key="d-7"))
        again = await send(server.url, email_to(key="d-7"))
        await server.wait_for(1)
    assert first.provider_id == again.provider_id == "<d-7@example.com>"
    assert len(server.messages) == 2
    assert list(server.unique) == ["<d-7@example.com>"]


@pytest.mark.anyio
async def test_concurrent_sends_all_arrive() -> None:
    outcomes: list[Outcome] = []

    async def deliver(channel: EmailChannel, key: str) -> None:
        outcomes.append(await channel.send(email_to(f"user-{key}@example.com", key=key)))

    async with smtp_server() as server:
        channel = EmailChannel(server.url, SENDER, 5)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tasks:
                for number in range(20):
                    tasks.start_soon(deliver, channel, f"d-{number}")
        received = await server.wait_for(20)
    assert [outcome.status for outcome in outcomes] == ["sent"] * 20
    assert {email.message["Message-ID"] for email in received} == {
        f"<d-{number}@example.com>" for number in range(20)
    }
    assert all(email.envelope_to == [email.message["To"]] for email in received)


def test_the_url_defaults_to_submission_with_opportunistic_starttls() -> None:
    relay = parse_smtp_url("smtp://relay.example.com")
    assert (relay.host, relay.port, relay.implicit_tls, relay.starttls) == (
        "relay.example.com",
        587,
        False,
        None,
    )
    assert (relay.username, relay.password) == (None, None)


def test_smtps_is_implicit_tls_on_465() -> None:
    relay = parse_smtp_url("smtps://relay.example.com")
    assert (relay.port, relay.implicit_tls, relay.starttls) == (465, True, False)


@pytest.mark.parametrize(("option", "starttls"), [("true", True), ("false", False)])
def test_starttls_can_be_required_or_refused(option: str, starttls: bool) -> None:
    relay = parse_smtp_url(f"smtp://relay.example.com:2525?starttls={option}")
    assert (relay.port, relay.starttls) == (2525, starttls)


def test_credentials_are_percent_decoded() -> None:
    relay = parse_smtp_url("smtp://me%40example.com:p%40ss%3Aw%2Frd@relay.example.com")
    assert (relay.username, relay.password) == ("me@example.com", "p@ss:w/rd")
    assert "p@ss" not in repr(relay)


def test_a_cafile_is_trusted_besides_the_system_store(tmp_path: Path) -> None:
    cafile = write_certificate(tmp_path)
    relay = parse_smtp_url(f"smtp://relay.example.com?cafile={cafile}")
    system = ssl.create_default_context().cert_store_stats()["x509"]
    assert relay.tls.cert_store_stats()["x509"] == system + 1


@pytest.mark.parametrize(
    "url",
    [
        "smtp://user:hunter2@relay.example.com:port",
        "smtp://user:hunter2@relay.example.com?starttls=maybe",
        "smtps://user:hunter2@relay.example.com?starttls=true",
        "smtp://user:hunter2@relay.example.com?tls=on",
        "smtp://user:hunter2@relay.example.com?cafile=/nonexistent/ca.pem",
        "smtp://user:hunter2@:25",
        "http://user:hunter2@relay.example.com",
    ],
)
def test_a_malformed_url_names_the_setting_and_hides_the_password(url: str) -> None:
    with pytest.raises(ConfigError, match="HERALD_SMTP_URL") as raised:
        EmailChannel(url, SENDER, 5)
    assert "hunter2" not in str(raised.value)


def test_a_sender_without_an_address_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="HERALD_EMAIL_FROM"):
        EmailChannel("smtp://relay.example.com", "Herald", 5)
