#!/bin/sh
# Herald container entrypoint.
#
#   serve|worker|migrate|token|send [ARGS...]  ->  herald <command> [ARGS...]
#   --some-flag ...                            ->  herald serve --some-flag ...
#   anything else                              ->  run it as given (sh, python, herald ...)
#
# `serve` listens on 0.0.0.0 inside the container (HERALD_HOST overrides it, and so does an
# explicit --host), since 127.0.0.1 would be unreachable through a published port.
set -eu

if [ "$#" -eq 0 ]; then
    set -- serve
fi

case "$1" in
    -*)
        set -- serve "$@"
        ;;
esac

case "$1" in
    serve)
        shift
        for arg in "$@"; do
            case "$arg" in
                --host | --host=*)
                    exec herald serve "$@"
                    ;;
                --)
                    break
                    ;;
            esac
        done
        exec herald serve --host "${HERALD_HOST:-0.0.0.0}" "$@"
        ;;
    worker | migrate | token | send)
        exec herald "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
