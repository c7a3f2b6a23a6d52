"""The catalogue of problems Herald reports (RFC 9457), each with a stable `type` slug.

Tests assert on the slug, clients may switch on it; titles may change, slugs may not.
Rendering to `application/problem+json` lives in `herald_server.api`, so this module stays pure.
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_BASE = "https://herald.dev/problems/"


class HeraldError(Exception):
    """Base of everything Herald raises on purpose."""


class StoreUnavailable(HeraldError):
    """The store could not be reached; callers answer 503 and retry later."""


class Problem(HeraldError):
    slug: ClassVar[str] = "about:blank"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            doc["detail"] = self.detail
        doc.update(self.extra)
        return doc


class MalformedBody(Problem):
    slug, status, title = "malformed-body", 400, "The request body is not valid JSON"


class InvalidParameter(Problem):
    slug, status, title = "invalid-parameter", 400, "A query parameter is invalid"


class InvalidCursor(Problem):
    slug, status, title = "invalid-cursor", 400, "The cursor is not one Herald issued"


class Unauthenticated(Problem):
    slug, status, title = "unauthenticated", 401, "A valid bearer token is required"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers["WWW-Authenticate"] = 'Bearer realm="herald"'


class Forbidden(Problem):
    slug, status, title = "forbidden", 403, "The token lacks the scope this needs"


class NotFound(Problem):
    slug, status, title = "not-found", 404, "No such resource"


class MethodNotAllowed(Problem):
    slug, status, title = "method-not-allowed", 405, "Method not allowed"


class IdempotencyConflict(Problem):
    slug, status, title = (
        "idempotency-key-reused",
        409,
        "This Idempotency-Key was used for a different request",
    )


class PayloadTooLarge(Problem):
    slug, status, title = "payload-too-large", 413, "The request body is too large"


class NotificationTooLarge(Problem):
    slug, status, title = "notification-too-large", 413, "The notification is too large"


class UnsupportedMediaType(Problem):
    slug, status, title = "unsupported-media-type", 415, "Send application/json"


class ValidationFailed(Problem):
    slug, status, title = "validation-failed", 422, "The request body does not match the schema"


class TooManyRecipients(Problem):
    slug, status, title = "too-many-recipients", 422, "Too many recipients"


class RateLimited(Problem):
    slug, status, title = "rate-limited", 429, "Too many requests; retry after a while"

    def __init__(self, detail: str | None = None, retry_after: int = 1, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers["Retry-After"] = str(retry_after)


class TooManyStreams(RateLimited):
    slug, title = "too-many-streams", "This user has as many open streams as allowed"


class TooManyTopics(Problem):
    slug, status, title = (
        "too-many-topics",
        422,
        "This user subscribes to as many topics as allowed",
    )


class OriginNotAllowed(Problem):
    slug, status, title = "origin-not-allowed", 403, "This origin may not call Herald"


class InternalError(Problem):
    slug, status, title = "internal-error", 500, "Internal error"


class ServiceUnavailable(Problem):
    slug, status, title = "service-unavailable", 503, "A backend is unavailable; retry shortly"

    def __init__(self, detail: str | None = None, retry_after: int = 2, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers["Retry-After"] = str(retry_after)


class BusUnavailable(HeraldError):
    """The bus could not carry an event; streams catch up from the store instead."""


class TargetNotAllowed(Problem):
    slug, status, title = (
        "target-not-allowed",
        422,
        "The URL points at an address Herald may not call",
    )


class UnknownTemplate(Problem):
    slug, status, title = "unknown-template", 422, "No template has this key"


class TemplateError(Problem):
    slug, status, title = "template-error", 422, "The template cannot be rendered"


class MissingTemplateVariable(Problem):
    slug, status, title = (
        "template-variable-missing",
        422,
        "A variable the template uses was not given",
    )


class ChannelNotConfigured(Problem):
    slug, status, title = "channel-not-configured", 409, "This channel is not configured here"


class NotDeadLettered(Problem):
    slug, status, title = "not-dead-lettered", 409, "This delivery is not in the dead-letter queue"


class RequestTimeout(Problem):
    slug, status, title = "request-timeout", 408, "The request did not arrive in time"


class HeadersTooLarge(Problem):
    slug, status, title = (
        "request-header-too-large",
        431,
        "The request line and headers are too large",
    )


class PushEndpointTaken(Problem):
    slug, status, title = (
        "push-endpoint-taken",
        409,
        "Another user has registered this push endpoint",
    )


class TooManyTargets(Problem):
    slug, status, title = (
        "too-many-targets",
        422,
        "This user has as many webhooks or push subscriptions as allowed",
    )
