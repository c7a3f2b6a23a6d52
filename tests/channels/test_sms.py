"""TwilioChannel against a local server speaking Twilio's Messages API: the request it makes,
what each answer becomes, and the HERALD_SMS_URL it reads."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest

from herald_server.channels import Message, Outcome, PhoneNumber, SmsContent
from herald_server.channels.sms import TwilioChannel, parse_sms_url, valid_signature
from herald_server.config import ConfigError
from tests.helpers import free_port, silent_port
from tests.servers.twilio import fake_twilio

TOKEN = "0123456789abcdef0123456789abcdef"


def text_to(number: str = "+15557654321", body: str = "Your code is 123456") -> Message:
    return Message("delivery-1", "alice", PhoneNumber(number), SmsContent(body))


async def send(url: str, message: Message, *, timeout: float = 5) -> Outcome:
    channel = TwilioChannel(url, timeout)
    try:
        with anyio.fail_after(timeout + 5):
            return await channel.send(message)
    finally:
        await channel.aclose()


@pytest.mark.anyio
async def test_a_text_is_sent_as_twilio_form_fields() -> None:
    async with fake_twilio() as twilio:
        outcome = await send(twilio.url, text_to())
        [accepted] = await twilio.wait_for(1)
    assert accepted == {
        "To": "+15557654321",
        "From": twilio.sender,
        "Body": "Your code is 123456",
        "sid": accepted["sid"],
    }
    assert (outcome.status, outcome.detail) == ("sent", "201 queued")
    assert outcome.provider_id == accepted["sid"]
    assert accepted["sid"].startswith("SM")
    assert len(accepted["sid"]) == 34


@pytest.mark.anyio
async def test_a_status_callback_names_the_delivery_in_its_url() -> None:
    callback = "https://herald.example.com/api/sms/status"
    async with fake_twilio() as twilio:
        channel = TwilioChannel(twilio.url, 5, status_callback=callback)
        try:
            await channel.send(text_to())
        finally:
            await channel.aclose()
        [accepted] = await twilio.wait_for(1)
    assert accepted["StatusCallback"] == callback + "?delivery=delivery-1"


def test_twilios_signature_is_checked_over_the_url_and_the_sorted_form() -> None:
    """The example of Twilio's documentation on validating requests."""
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    token = "12345"
    assert valid_signature(token, url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert not valid_signature(
        token, url, {**params, "Digits": "4321"}, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    )
    assert not valid_signature("54321", url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")


@pytest.mark.anyio
async def test_a_messaging_service_is_sent_instead_of_a_number() -> None:
    async with fake_twilio() as twilio:
        url = twilio.url.replace("from=%2B15550001111", "messaging_service_sid=MG" + "0" * 32)
        outcome = await send(url, text_to())
        [accepted] = await twilio.wait_for(1)
    assert outcome.status == "sent"
    assert accepted["MessagingServiceSid"] == "MG" + "0" * 32
    assert "From" not in accepted


@pytest.mark.anyio
async def test_one_client_sends_many_texts_concurrently() -> None:
    outcomes: list[Outcome] = []

    async def deliver(channel: TwilioChannel, number: int) -> None:
        outcomes.append(await channel.send(text_to(f"+1555000{number:04d}")))

    async with fake_twilio() as twilio:
        channel = TwilioChannel(twilio.url, 5)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tasks:
                for number in range(20):
                    tasks.start_soon(deliver, channel, number)
        await channel.aclose()
        accepted = await twilio.wait_for(20)
    assert [outcome.status for outcome in outcomes] == ["sent"] * 20
    assert len({message["sid"] for message in accepted}) == 20


@pytest.mark.anyio
async def test_a_503_is_retried() -> None:
    async with fake_twilio() as twilio:
        twilio.fail_next(1)
        refused = await send(twilio.url, text_to())
        accepted = await send(twilio.url, text_to())
        assert twilio.requests == 2
    assert (refused.status, refused.detail) == ("retry", "503 20503: Service Unavailable")
    assert refused.retry_after is None
    assert accepted.status == "sent"


@pytest.mark.anyio
async def test_a_429_is_retried_after_the_delay_twilio_asks_for() -> None:
    async with fake_twilio() as twilio:
        twilio.fail_next(1, 429, retry_after=7)
        outcome = await send(twilio.url, text_to())
    assert (outcome.status, outcome.retry_after) == ("retry", 7.0)
    assert outcome.detail.startswith("429 20429")


@pytest.mark.anyio
async def test_a_number_that_is_not_e164_fails_with_twilios_code() -> None:
    async with fake_twilio() as twilio:
        outcome = await send(twilio.url, text_to("555-1234"))
        assert twilio.messages == []
    assert outcome.status == "failed"
    assert outcome.detail == "400 21211: Invalid 'To' Phone Number: 555-1234"


@pytest.mark.anyio
async def test_wrong_credentials_fail() -> None:
    async with fake_twilio() as twilio:
        outcome = await send(twilio.url.replace(twilio.auth_token, TOKEN), text_to())
        assert twilio.messages == []
    assert (outcome.status, outcome.detail) == ("failed", "401 20003: Authenticate")


@pytest.mark.anyio
async def test_an_unreachable_api_is_retried() -> None:
    url = f"twilio+http://AC1:{TOKEN}@127.0.0.1:{free_port()}/?from=%2B15550001111"
    outcome = await send(url, text_to())
    assert outcome.status == "retry"
    assert outcome.detail.startswith("ConnectError")


@pytest.mark.anyio
async def test_an_api_that_never_answers_is_retried_after_the_timeout() -> None:
    with silent_port() as port:
        url = f"twilio+http://AC1:{TOKEN}@127.0.0.1:{port}/?from=%2B15550001111"
        started = time.monotonic()
        outcome = await send(url, text_to(), timeout=0.5)
    assert outcome.status == "retry"
    assert time.monotonic() - started < 3


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("form", "status", "code"),
    [
        ({"From": "+15550001111", "Body": "hi"}, 400, 21604),
        ({"To": "+15557654321", "From": "+15550001111"}, 400, 21602),
        ({"To": "+15557654321", "Body": "hi"}, 400, 21603),
    ],
)
async def test_the_stand_in_refuses_incomplete_forms_as_twilio_does(
    form: dict[str, str], status: int, code: int
) -> None:
    async with fake_twilio() as twilio:
        path = f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
        response = await post(twilio.url, path, form, (twilio.account_sid, twilio.auth_token))
    assert response.status_code == status
    assert response.json()["code"] == code


@pytest.mark.anyio
async def test_the_stand_in_answers_404_for_another_accounts_path() -> None:
    async with fake_twilio() as twilio:
        path = f"/2010-04-01/Accounts/AC{'0' * 32}/Messages.json"
        form = {"To": "+15557654321", "From": twilio.sender, "Body": "hi"}
        response = await post(twilio.url, path, form, (twilio.account_sid, twilio.auth_token))
    assert (response.status_code, response.json()["code"]) == (404, 20404)


async def post(
    url: str, path: str, form: dict[str, str], credentials: tuple[str, str]
) -> httpx.Response:
    base = parse_sms_url(url).base_url
    async with httpx.AsyncClient(base_url=base, auth=credentials, timeout=5) as client:
        return await client.post(path, data=form)


def test_twilio_urls_reach_the_https_api() -> None:
    account = parse_sms_url(f"twilio://AC123:{TOKEN}@api.twilio.com/?from=%2B15550001111")
    assert account.base_url == "https://api.twilio.com"
    assert (account.sid, account.token) == ("AC123", TOKEN)
    assert TOKEN not in repr(account)
    assert account.sender == {"From": "+15550001111"}


def test_twilio_http_urls_reach_a_local_stand_in() -> None:
    account = parse_sms_url(f"twilio+http://AC123:{TOKEN}@127.0.0.1:8099/?from=%2B15550001111")
    assert account.base_url == "http://127.0.0.1:8099"


def test_a_messaging_service_can_name_the_sender() -> None:
    account = parse_sms_url(f"twilio://AC123:{TOKEN}@api.twilio.com/?messaging_service_sid=MG9")
    assert account.sender == {"MessagingServiceSid": "MG9"}


@pytest.mark.parametrize(
    "url",
    [
        f"twilio://AC123:{TOKEN}@api.twilio.com/",
        f"twilio://:{TOKEN}@api.twilio.com/?from=%2B15550001111",
        "twilio://AC123@api.twilio.com/?from=%2B15550001111",
        f"twilio://AC123:{TOKEN}@api.twilio.com/?form=%2B15550001111",
        f"twilio://AC123:{TOKEN}@api.twilio.com:https/?from=%2B15550001111",
        f"twilio://AC123:{TOKEN}@/?from=%2B15550001111",
        f"https://AC123:{TOKEN}@api.twilio.com/?from=%2B15550001111",
    ],
)
def test_a_malformed_url_names_the_setting_and_hides_the_token(url: str) -> None:
    with pytest.raises(ConfigError, match="HERALD_SMS_URL") as raised:
        TwilioChannel(url, 5)
    assert TOKEN not in str(raised.value)
