"""Whether a channel reaches a user, and when: channel switches, quiet hours and digests.

A switch is looked up from the most specific to the least: the user's own switch for this
type, then for every type; then what the publisher asked for (a publisher that names channels
turns those on, the rest off, though a user's own "off" still wins); then the admin's defaults
for this type, for every type; then the built-in default. Built in, the inbox, Web Push and
webhooks are on (a browser subscription or a registered webhook is itself an opt-in) and email
and SMS are off until an admin or the user turns them on.

Times are epoch milliseconds; quiet hours and digests are read in the user's own IANA time
zone, so they follow daylight saving time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from herald_server.errors import ValidationFailed
from herald_server.models import EVERY_TYPE, Preferences, QuietHours, Switches

BUILT_IN: Mapping[str, bool] = {
    "in_app": True,
    "push": True,
    "webhook": True,
    "email": False,
    "sms": False,
}
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")


def channel_enabled(
    channel: str,
    notification_type: str,
    user: Switches,
    admin: Switches,
    requested: frozenset[str] | None,
) -> bool:
    if requested is not None and channel not in requested:
        return False
    for switches in (user.get(notification_type), user.get(EVERY_TYPE)):
        if switches is not None and channel in switches:
            return switches[channel]
    if requested is not None:
        return True
    for switches in (admin.get(notification_type), admin.get(EVERY_TYPE)):
        if switches is not None and channel in switches:
            return switches[channel]
    return BUILT_IN[channel]


def wants_inbox(
    notification_type: str, requested: frozenset[str] | None, user: Switches, admin: Switches
) -> bool:
    """Whether the user gets an inbox item (the store's `WantsInbox`)."""
    return channel_enabled("in_app", notification_type, user, admin, requested)


def zone(name: str) -> ZoneInfo:
    """The IANA zone, or a 422 naming it: a typo must not silently become UTC."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(f"unknown time zone {name!r} (use an IANA name)") from None


def parse_clock(raw: str, field: str) -> int:
    """'HH:MM' or 'HH:MM:SS' as seconds after midnight."""
    match = _CLOCK.match(raw)
    if match is None:
        raise ValidationFailed(f"{field} must be a time of day as HH:MM or HH:MM:SS")
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds or 0)


def format_clock(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")


def _local(now: int, preferences: Preferences) -> datetime:
    return datetime.fromtimestamp(now / 1000, zone(preferences.timezone))


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _instant(day: date, seconds: int, tz: ZoneInfo, after: int) -> int | None:
    """The first instant after `after` (ms) at which the clock in `tz` shows this time of
    day on `day`, or None when that is past.

    Daylight saving time makes a wall time happen twice (the second pass counts once the
    first is past) or never (the first instant after the skipped span counts: the clock
    jumps over the time, so that is when it has been reached).
    """
    wall = datetime.combine(day, time()) + timedelta(seconds=seconds)
    passes = [_ms(wall.replace(tzinfo=tz, fold=fold)) for fold in (0, 1)]
    if any(datetime.fromtimestamp(ms / 1000, tz).replace(tzinfo=None) != wall for ms in passes):
        return _gap_end(min(passes), max(passes), tz)
    return next((ms for ms in sorted(passes) if ms > after), None)


def _gap_end(before: int, within: int, tz: ZoneInfo) -> int:
    """The instant a clock change skips over, found between an instant before it and one
    after it (zoneinfo does not expose transitions)."""
    offset = datetime.fromtimestamp(within / 1000, tz).utcoffset()
    while within - before > 1000:
        middle = (before + within) // 2
        if datetime.fromtimestamp(middle / 1000, tz).utcoffset() == offset:
            within = middle
        else:
            before = middle
    return within


def quiet_until(preferences: Preferences, now: int) -> int | None:
    """When the user's quiet hours end if `now` falls inside them, else None."""
    window: QuietHours | None = preferences.quiet_hours
    if window is None:
        return None
    local = _local(now, preferences)
    of_day = local.hour * 3600 + local.minute * 60 + local.second
    if window.start < window.end:
        ends_on = local.date() if window.start <= of_day < window.end else None
    elif of_day >= window.start:
        ends_on = local.date() + timedelta(days=1)
    else:
        ends_on = local.date() if of_day < window.end else None
    if ends_on is None:
        return None
    return _instant(ends_on, window.end, zone(preferences.timezone), now)


def next_digest(preferences: Preferences, now: int) -> int:
    """When the next digest goes out: the next local hour, or the next local `digest_at`."""
    local = _local(now, preferences)
    if preferences.digest == "hourly":
        # The start of this local hour as an instant, an hour on: right across DST changes.
        return _ms(local.replace(minute=0, second=0, microsecond=0)) + 3_600_000
    tz = zone(preferences.timezone)
    today = _instant(local.date(), preferences.digest_at, tz, now)
    if today is not None:
        return today
    tomorrow = _instant(local.date() + timedelta(days=1), preferences.digest_at, tz, now)
    assert tomorrow is not None
    return tomorrow
