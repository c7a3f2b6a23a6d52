"""Cross-origin calls, for pages served from origins other than Herald's own
(HERALD_CORS_ORIGINS). Starlette's CORS, with a refused preflight answered as
application/problem+json like every other refusal."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from herald_server.api._http import problem_response
from herald_server.errors import OriginNotAllowed

METHODS = ("GET", "POST", "PUT", "DELETE")
# What the bundled client and a publisher send: the bearer token, JSON bodies, retries,
# resumes and conditional polls.
HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID", "If-None-Match")
# What a cross-origin page may read of an answer besides the simple headers.
EXPOSED = ("ETag", "Retry-After", "Idempotent-Replayed", "X-Request-ID")


class _ProblemCORS(CORSMiddleware):
    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code < 400:
            return answer
        problem = OriginNotAllowed(bytes(answer.body).decode())
        refusal = problem_response(problem)
        refusal.headers.update(
            {k: v for k, v in answer.headers.items() if k.startswith("access-control")}
        )
        return refusal


def cors_middleware(origins: tuple[str, ...]) -> list[Middleware]:
    """Nothing without configured origins: then only pages on Herald's own origin call it."""
    if not origins:
        return []
    return [
        Middleware(
            _ProblemCORS,
            allow_origins=origins,
            allow_methods=METHODS,
            allow_headers=HEADERS,
            expose_headers=EXPOSED,
            max_age=600,
        )
    ]
