#!/bin/sh
# Herald container entrypoint.
#
#   serve|worker|migrate|retention|token|send [ARGS...]  ->  exec herald <command> [ARGS...]
#   --some-flag ...                                      ->  exec herald serve --some-flag ...
#   healthcheck                                          ->  the image's HEALTHCHECK (see below)
#   anything else                                        ->  exec it as given (sh, python, ...)
#
# Every branch ends in `exec`, so herald replaces this shell as PID 1 and receives the SIGTERM of
# `docker stop` itself.
#
# HERALD_ENV is production unless set: `-e HERALD_ENV=development` for a demo.
#
# `serve` listens on 0.0.0.0 inside the container (HERALD_HOST overrides it, and so does an
# explicit --host, which comes later and wins), since 127.0.0.1 would be unreachable through a
# published port.
#
# Secrets need not sit in the environment, where `docker inspect` shows them: for each variable
# below, VAR_FILE=/run/secrets/... (Docker and Compose secrets) sets VAR to that file's content.
set -eu

if [ "$#" -eq 0 ]; then
    set -- serve
fi

if [ "$1" = healthcheck ]; then
    # A worker serves no HTTP: run it with --metrics-port and point HERALD_HEALTHCHECK_URL at
    # http://127.0.0.1:<port>/metrics, or run it with --no-healthcheck.
    exec python -c '
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=4).close()
except Exception as exc:
    sys.exit(f"unhealthy: {sys.argv[1]}: {exc}")
' "${HERALD_HEALTHCHECK_URL:-http://127.0.0.1:${HERALD_PORT:-8000}/healthz}"
fi

file_env() {
    eval "file=\${$1_FILE:-}"
    if [ -z "$file" ]; then
        return 0
    fi
    if eval "[ -n \"\${$1:-}\" ]"; then
        echo "entrypoint: set $1 or $1_FILE, not both" >&2
        exit 64
    fi
    if [ ! -r "$file" ]; then
        echo "entrypoint: $1_FILE: cannot read $file" >&2
        exit 66
    fi
    # $(...) drops the trailing newline that editors and `echo` leave in the file.
    value=$(cat "$file")
    export "$1=$value"
    unset "$1_FILE" file value
}

for var in HERALD_JWT_SECRET DATABASE_URL REDIS_URL HERALD_SMTP_URL HERALD_SMS_URL \
    HERALD_VAPID_PRIVATE_KEY; do
    file_env "$var"
done
unset var

# Production unless told otherwise (the Dockerfile says so too; this holds when the image's
# environment is replaced): development mode serves the dev login, which mints any token.
export HERALD_ENV="${HERALD_ENV:-production}"

case "$1" in
    -*)
        set -- serve "$@"
        ;;
esac

case "$1" in
    serve)
        shift
        exec herald serve --host "${HERALD_HOST:-0.0.0.0}" "$@"
        ;;
    # Every other `herald` subcommand (tests/test_entrypoint.py checks the list against the CLI).
    worker | migrate | retention | token | send)
        exec herald "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
