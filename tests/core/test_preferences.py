"""Channel switches, quiet hours and digest times (app/core/preferences.py), at fixed instants.

Every instant is written as an ISO time with its UTC offset, so each expectation can be checked
against a calendar: which local wall time it is, and which offset was in force.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from herald_server.core.preferences import (
    BUILT_IN,
    channel_enabled,
    format_clock,
    next_digest,
    parse_clock,
    quiet_until,
    wants_inbox,
    zone,
)
from herald_server.errors import ValidationFailed
from herald_server.models import (
    CHANNELS,
    EVERY_TYPE,
    DigestFrequency,
    Preferences,
    QuietHours,
    Switches,
)

HOUR = 3600


def at(stamp: str) -> int:
    """Epoch milliseconds of an ISO 8601 time that carries its offset."""
    moment = datetime.fromisoformat(stamp)
    assert moment.tzinfo is not None, stamp
    return int(moment.timestamp() * 1000)


def clock(hours: int, minutes: int = 0) -> int:
    return hours * HOUR + minutes * 60


def quiet(timezone: str, start: int, end: int) -> Preferences:
    return Preferences(timezone=timezone, quiet_hours=QuietHours(start, end))


def digest(timezone: str, frequency: DigestFrequency, at_seconds: int = clock(8)) -> Preferences:
    return Preferences(timezone=timezone, digest=frequency, digest_at=at_seconds)


# --- channel switches -----------------------------------------------------------------------


def enabled(
    channel: str,
    user: Switches | None = None,
    admin: Switches | None = None,
    requested: set[str] | None = None,
    notification_type: str = "invoice",
) -> bool:
    return channel_enabled(
        channel,
        notification_type,
        user or {},
        admin or {},
        None if requested is None else frozenset(requested),
    )


def test_built_in_defaults_open_inbox_push_and_webhooks_and_close_email_and_sms() -> None:
    assert {channel: enabled(channel) for channel in CHANNELS} == {
        "in_app": True,
        "push": True,
        "webhook": True,
        "email": False,
        "sms": False,
    }
    assert set(BUILT_IN) == set(CHANNELS)


def test_the_users_switch_for_the_type_beats_their_switch_for_every_type() -> None:
    user = {"invoice": {"email": False}, EVERY_TYPE: {"email": True}}
    assert not enabled("email", user, admin={"invoice": {"email": True}})
    assert enabled("email", user, notification_type="other")


def test_the_users_switch_for_every_type_beats_the_admins_switch_for_the_type() -> None:
    assert not enabled(
        "push", user={EVERY_TYPE: {"push": False}}, admin={"invoice": {"push": True}}
    )
    assert enabled("sms", user={EVERY_TYPE: {"sms": True}}, admin={"invoice": {"sms": False}})


def test_the_admins_switch_for_the_type_beats_the_admins_switch_for_every_type() -> None:
    admin = {"invoice": {"email": True}, EVERY_TYPE: {"email": False, "push": False}}
    assert enabled("email", admin=admin)
    assert not enabled("email", admin=admin, notification_type="other")
    # A switch the type's defaults do not mention falls through to every type's.
    assert not enabled("push", admin=admin)


def test_the_admins_switch_for_every_type_beats_the_built_in_default() -> None:
    admin = {EVERY_TYPE: {"email": True, "webhook": False}}
    assert enabled("email", admin=admin)
    assert not enabled("webhook", admin=admin)
    assert enabled("push", admin=admin)


def test_a_requested_list_turns_its_channels_on_over_the_admins_defaults() -> None:
    admin = {"invoice": {"email": False}, EVERY_TYPE: {"sms": False}}
    assert enabled("email", admin=admin, requested={"email", "sms"})
    assert enabled("sms", admin=admin, requested={"email", "sms"})


def test_a_requested_list_turns_every_other_channel_off() -> None:
    user = {EVERY_TYPE: {"push": True, "webhook": True}}
    admin = {EVERY_TYPE: {"in_app": True}}
    for channel in ("in_app", "push", "webhook", "sms"):
        assert not enabled(channel, user, admin, requested={"email"}), channel
    assert not enabled("push", requested=set())


def test_a_users_own_off_beats_what_the_publisher_requested() -> None:
    assert not enabled("email", user={"invoice": {"email": False}}, requested={"email"})
    assert not enabled("push", user={EVERY_TYPE: {"push": False}}, requested={"push"})
    # ...and their own "on" for a requested channel is simply on.
    assert enabled("sms", user={EVERY_TYPE: {"sms": True}}, requested={"sms"})


def test_wants_inbox_is_the_in_app_switch() -> None:
    assert wants_inbox("invoice", None, {}, {})
    assert not wants_inbox("invoice", None, {"invoice": {"in_app": False}}, {})
    assert not wants_inbox("invoice", None, {}, {EVERY_TYPE: {"in_app": False}})
    assert not wants_inbox("invoice", frozenset({"email"}), {}, {})
    assert wants_inbox("invoice", frozenset({"in_app"}), {}, {EVERY_TYPE: {"in_app": False}})


# --- quiet hours ----------------------------------------------------------------------------


def test_no_quiet_hours_never_holds() -> None:
    assert (
        quiet_until(Preferences(timezone="Europe/Paris"), at("2025-06-01T03:00:00+02:00")) is None
    )


def test_inside_a_plain_window_holds_until_its_end_today() -> None:
    lunch = quiet("Europe/Paris", clock(12), clock(14))
    assert quiet_until(lunch, at("2025-06-02T12:00:00+02:00")) == at("2025-06-02T14:00:00+02:00")
    assert quiet_until(lunch, at("2025-06-02T13:59:59+02:00")) == at("2025-06-02T14:00:00+02:00")


def test_outside_a_plain_window_and_at_its_end_nothing_is_held() -> None:
    lunch = quiet("Europe/Paris", clock(12), clock(14))
    for stamp in (
        "2025-06-02T11:59:59+02:00",
        "2025-06-02T14:00:00+02:00",
        "2025-06-02T23:00+02:00",
    ):
        assert quiet_until(lunch, at(stamp)) is None, stamp


def test_a_window_wrapping_midnight_ends_tomorrow_before_midnight_and_today_after() -> None:
    night = quiet("Europe/Paris", clock(22), clock(7))
    assert quiet_until(night, at("2025-06-02T22:00:00+02:00")) == at("2025-06-03T07:00:00+02:00")
    assert quiet_until(night, at("2025-06-02T23:30:00+02:00")) == at("2025-06-03T07:00:00+02:00")
    assert quiet_until(night, at("2025-06-03T00:00:00+02:00")) == at("2025-06-03T07:00:00+02:00")
    assert quiet_until(night, at("2025-06-03T06:59:00+02:00")) == at("2025-06-03T07:00:00+02:00")


def test_outside_a_window_wrapping_midnight_nothing_is_held() -> None:
    night = quiet("Europe/Paris", clock(22), clock(7))
    for stamp in (
        "2025-06-03T07:00:00+02:00",
        "2025-06-03T12:00:00+02:00",
        "2025-06-03T21:59+02:00",
    ):
        assert quiet_until(night, at(stamp)) is None, stamp


def test_quiet_hours_are_read_in_the_users_zone_not_in_utc() -> None:
    night = quiet("America/Los_Angeles", clock(22), clock(7))
    # 06:00 UTC is 23:00 in Los Angeles: quiet there, though outside 22-07 in UTC terms.
    assert quiet_until(night, at("2025-06-03T06:00:00+00:00")) == at("2025-06-03T07:00:00-07:00")
    # 23:00 UTC (inside 22-07 in UTC terms) is 16:00 there: not quiet.
    assert quiet_until(night, at("2025-06-03T23:00:00+00:00")) is None


def test_a_zone_with_a_half_hour_offset_ends_the_window_on_its_own_clock() -> None:
    night = quiet("Asia/Kolkata", clock(22), clock(7))
    # 17:00 UTC is 22:30 in India (UTC+05:30).
    assert quiet_until(night, at("2025-06-02T17:00:00+00:00")) == at("2025-06-03T01:30:00+00:00")
    assert quiet_until(night, at("2025-06-03T01:29:00+00:00")) == at("2025-06-03T01:30:00+00:00")
    assert quiet_until(night, at("2025-06-03T01:30:00+00:00")) is None


def test_a_night_when_paris_springs_forward_ends_at_seven_summer_time() -> None:
    """2025-03-30: 02:00 CET becomes 03:00 CEST; the night is an hour shorter."""
    night = quiet("Europe/Paris", clock(22), clock(7))
    until = quiet_until(night, at("2025-03-29T23:00:00+01:00"))
    assert until == at("2025-03-30T07:00:00+02:00")
    assert until == at("2025-03-30T05:00:00+00:00")
    assert quiet_until(night, at("2025-03-30T03:30:00+02:00")) == until


def test_a_night_when_paris_falls_back_ends_at_seven_winter_time() -> None:
    """2025-10-26: 03:00 CEST becomes 02:00 CET; the night is an hour longer."""
    night = quiet("Europe/Paris", clock(22), clock(7))
    until = quiet_until(night, at("2025-10-25T23:00:00+02:00"))
    assert until == at("2025-10-26T07:00:00+01:00")
    assert until == at("2025-10-26T06:00:00+00:00")
    # Both passes through 02:30 are inside, and end at the same instant.
    assert quiet_until(night, at("2025-10-26T02:30:00+02:00")) == until
    assert quiet_until(night, at("2025-10-26T02:30:00+01:00")) == until


def test_a_night_when_new_york_springs_forward_ends_at_seven_daylight_time() -> None:
    """2025-03-09: 02:00 EST becomes 03:00 EDT."""
    night = quiet("America/New_York", clock(22), clock(7))
    until = quiet_until(night, at("2025-03-08T22:30:00-05:00"))
    assert until == at("2025-03-09T07:00:00-04:00")
    assert until == at("2025-03-09T11:00:00+00:00")


def test_a_night_when_new_york_falls_back_ends_at_seven_standard_time() -> None:
    """2025-11-02: 02:00 EDT becomes 01:00 EST."""
    night = quiet("America/New_York", clock(22), clock(7))
    until = quiet_until(night, at("2025-11-01T23:00:00-04:00"))
    assert until == at("2025-11-02T07:00:00-05:00")
    assert until == at("2025-11-02T12:00:00+00:00")
    assert quiet_until(night, at("2025-11-02T01:30:00-05:00")) == until


def test_a_window_ending_in_the_repeated_hour_ends_in_the_pass_it_is_in() -> None:
    """Quiet 22:00-01:30 in New York on 2025-11-02: 01:30 happens twice. At 00:50 EDT the
    window ends at the first 01:30 (EDT)."""
    night = quiet("America/New_York", clock(22), clock(1, 30))
    assert quiet_until(night, at("2025-11-02T00:50:00-04:00")) == at("2025-11-02T01:30:00-04:00")


def test_during_the_second_pass_of_a_repeated_hour_the_window_ends_later_not_earlier() -> None:
    """At 01:15 EST (the second 01:15 of the night) the user is inside 22:00-01:30, so the
    window ends at the 01:30 still to come, 01:30 EST; never at an instant already past."""
    night = quiet("America/New_York", clock(22), clock(1, 30))
    now = at("2025-11-02T01:15:00-05:00")
    until = quiet_until(night, now)
    assert until is not None
    assert until > now
    assert until == at("2025-11-02T01:30:00-05:00")


def test_a_window_ending_in_the_skipped_hour_ends_when_the_gap_does() -> None:
    night = quiet("America/New_York", clock(22), clock(2, 30))
    assert quiet_until(night, at("2025-03-09T03:10:00-04:00")) is None
    assert quiet_until(night, at("2025-03-09T01:00:00-05:00")) == at("2025-03-09T03:00:00-04:00")


# --- digests --------------------------------------------------------------------------------


def test_an_hourly_digest_goes_out_at_the_next_local_top_of_the_hour() -> None:
    hourly = digest("Europe/Paris", "hourly")
    assert next_digest(hourly, at("2025-06-02T10:20:00+02:00")) == at("2025-06-02T11:00:00+02:00")
    assert next_digest(hourly, at("2025-06-02T10:00:00+02:00")) == at("2025-06-02T11:00:00+02:00")
    assert next_digest(hourly, at("2025-06-02T23:59:59+02:00")) == at("2025-06-03T00:00:00+02:00")


def test_an_hourly_digest_in_a_half_hour_zone_follows_the_local_hour() -> None:
    hourly = digest("Asia/Kolkata", "hourly")
    # 10:20 UTC is 15:50 in India; the next local hour, 16:00, is 10:30 UTC.
    assert next_digest(hourly, at("2025-06-02T10:20:00+00:00")) == at("2025-06-02T10:30:00+00:00")


def test_an_hourly_digest_across_spring_forward_goes_out_at_the_next_hour_that_exists() -> None:
    hourly = digest("Europe/Paris", "hourly")
    # 01:30 CET; 02:00 does not exist that night, the next top of the hour is 03:00 CEST.
    assert next_digest(hourly, at("2025-03-30T01:30:00+01:00")) == at("2025-03-30T03:00:00+02:00")


def test_an_hourly_digest_across_fall_back_goes_out_at_the_next_local_top_of_the_hour() -> None:
    hourly = digest("America/New_York", "hourly")
    now = at("2025-11-02T01:30:00-04:00")
    assert next_digest(hourly, now) == at("2025-11-02T01:00:00-05:00")
    assert next_digest(hourly, now) - now == 30 * 60 * 1000


def test_a_daily_digest_goes_out_today_before_its_time_and_tomorrow_from_it() -> None:
    daily = digest("Europe/Paris", "daily", clock(8, 30))
    assert next_digest(daily, at("2025-06-02T06:00:00+02:00")) == at("2025-06-02T08:30:00+02:00")
    assert next_digest(daily, at("2025-06-02T08:30:00+02:00")) == at("2025-06-03T08:30:00+02:00")
    assert next_digest(daily, at("2025-06-02T20:00:00+02:00")) == at("2025-06-03T08:30:00+02:00")


def test_a_daily_digest_follows_the_users_zone() -> None:
    daily = digest("America/New_York", "daily", clock(8))
    # 03:00 UTC on June 3rd is still June 2nd, 23:00, in New York.
    assert next_digest(daily, at("2025-06-03T03:00:00+00:00")) == at("2025-06-03T08:00:00-04:00")


def test_a_daily_digest_keeps_its_local_time_across_a_dst_change() -> None:
    paris = digest("Europe/Paris", "daily", clock(8))
    assert next_digest(paris, at("2025-03-29T09:00:00+01:00")) == at("2025-03-30T08:00:00+02:00")
    assert next_digest(paris, at("2025-10-25T09:00:00+02:00")) == at("2025-10-26T08:00:00+01:00")
    new_york = digest("America/New_York", "daily", clock(8))
    assert next_digest(new_york, at("2025-03-08T12:00:00-05:00")) == at("2025-03-09T08:00:00-04:00")
    assert next_digest(new_york, at("2025-11-01T12:00:00-04:00")) == at("2025-11-02T08:00:00-05:00")


# --- clocks and zones -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("00:00", 0),
        ("07:30", 27_000),
        ("23:59", 86_340),
        ("23:59:59", 86_399),
        ("08:00:05", 28_805),
    ],
)
def test_parse_clock_reads_hours_minutes_and_optional_seconds(raw: str, seconds: int) -> None:
    assert parse_clock(raw, "digest.at") == seconds


@pytest.mark.parametrize(
    "raw", ["24:00", "7:30", "07:60", "07:30:60", "07-30", "", "07:30:00:00", " 07:30", "\uff17:30"]
)
def test_parse_clock_refuses_anything_else_naming_the_field(raw: str) -> None:
    with pytest.raises(ValidationFailed, match=r"quiet_hours\.start"):
        parse_clock(raw, "quiet_hours.start")


def test_format_clock_writes_seconds_only_when_there_are_some() -> None:
    assert format_clock(0) == "00:00"
    assert format_clock(27_000) == "07:30"
    assert format_clock(86_399) == "23:59:59"
    for raw in ("06:05", "23:59:01"):
        assert format_clock(parse_clock(raw, "at")) == raw


def test_zone_accepts_iana_names() -> None:
    assert zone("Europe/Paris").key == "Europe/Paris"
    assert zone("UTC").key == "UTC"


@pytest.mark.parametrize("name", ["Europe/Pariss", "CEST+2", "", "../../etc/passwd", "/etc/hosts"])
def test_zone_refuses_an_unknown_name_instead_of_falling_back_to_utc(name: str) -> None:
    with pytest.raises(ValidationFailed, match="unknown time zone"):
        zone(name)
