"""A user's own delivery preferences, and the read-only context a preferences page needs."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from herald_server.api._http import json_response, principal, read_json, services
from herald_server.api.schemas import ChannelName, DigestBody, PreferencesBody, QuietHoursBody
from herald_server.core.preferences import format_clock, parse_clock, zone
from herald_server.errors import ValidationFailed
from herald_server.models import CHANNELS, EVERY_TYPE, Preferences, QuietHours, Switches, now_ms


def preferences_of(body: PreferencesBody) -> Preferences:
    zone(body.timezone)
    quiet = None
    if body.quiet_hours is not None:
        start = parse_clock(body.quiet_hours.start, "quiet_hours.start")
        end = parse_clock(body.quiet_hours.end, "quiet_hours.end")
        if start == end:
            raise ValidationFailed("quiet_hours.start and end must differ")
        quiet = QuietHours(start, end)
    switches: Switches = {EVERY_TYPE: _plain(body.channels)} if body.channels else {}
    switches |= {kind: _plain(channels) for kind, channels in body.types.items() if channels}
    return Preferences(
        muted=body.muted,
        timezone=body.timezone,
        locale=body.locale,
        quiet_hours=quiet,
        digest=body.digest.frequency,
        digest_at=parse_clock(body.digest.at, "digest.at"),
        switches=switches,
    )


def _plain(channels: Mapping[ChannelName, bool]) -> dict[str, bool]:
    return {str(channel): on for channel, on in channels.items()}


def body_of(chosen: Preferences) -> PreferencesBody:
    quiet = chosen.quiet_hours
    return PreferencesBody(
        muted=chosen.muted,
        timezone=chosen.timezone,
        locale=chosen.locale,
        quiet_hours=None
        if quiet is None
        else QuietHoursBody(format_clock(quiet.start), format_clock(quiet.end)),
        digest=DigestBody(frequency=chosen.digest, at=format_clock(chosen.digest_at)),
        channels=dict(chosen.switches.get(EVERY_TYPE, {})),  # type: ignore[arg-type]
        types={
            kind: dict(channels)  # type: ignore[misc]
            for kind, channels in chosen.switches.items()
            if kind != EVERY_TYPE
        },
    )


async def get_preferences(request: Request) -> Response:
    caller = await principal(request)
    return json_response(body_of(await services(request).store.preferences(caller.sub)))


async def put_preferences(request: Request) -> Response:
    caller = await principal(request)
    chosen = preferences_of(await read_json(request, PreferencesBody))
    await services(request).store.set_preferences(caller.sub, chosen, now_ms())
    return json_response(body_of(chosen))


async def channels(request: Request) -> Response:
    """What this deployment can send, where the caller's email and SMS would go, the key to
    subscribe to Web Push with, and the admin's defaults per type."""
    caller = await principal(request)
    found = services(request)
    contact = await found.store.contact(caller.sub)
    defaults = await found.store.type_defaults()
    return json_response(
        {
            "available": [
                channel for channel in CHANNELS if channel == "in_app" or channel in found.channels
            ],
            "contact": {"email": contact.email, "phone": contact.phone},
            "push_public_key": found.vapid_public_key,
            "defaults": {entry.type: entry.channels for entry in defaults if entry.channels},
        }
    )


routes = [
    Route("/api/preferences", get_preferences, methods=["GET"]),
    Route("/api/preferences", put_preferences, methods=["PUT"]),
    Route("/api/channels", channels, methods=["GET"]),
]
