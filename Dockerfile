# syntax=docker/dockerfile:1
#
# Herald image: `docker build -t herald .`
#   docker run -p 8000:8000 -e HERALD_JWT_SECRET=... herald   # production mode, SQLite in /var/lib/herald
#   docker run -e DATABASE_URL=postgresql://... -e REDIS_URL=redis://... \
#              -e HERALD_JWT_SECRET_FILE=/run/secrets/jwt -p 8000:8000 herald
#   docker run ... herald worker | migrate | retention --days 30 | token --sub alice | send ...
#
# The builder stage builds Herald's wheel and installs it, with the exact dependency versions of
# requirements.lock (every file's hash checked), into /opt/venv; the runtime stage copies only
# that venv. No source tree is in the image: the pages, herald.js and the migrations ship inside
# the wheel. Both stages use the same base image, so /opt/venv links to the same interpreter.
ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1

# A compiler only for a dependency that ships no wheel for this platform; it stays in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv

WORKDIR /src
# The dependency layer depends only on the lock file, so editing the code reinstalls nothing.
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --require-hashes -r requirements.lock

COPY pyproject.toml README.md LICENSE ./
COPY app/ app/
COPY static/ static/
COPY migrations/ migrations/
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /dist . \
    && /opt/venv/bin/pip install --no-deps /dist/herald_server-*.whl \
    && /opt/venv/bin/pip check

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

# HERALD_ENV=production: the image never serves the development login or invents a signing
# secret; `-e HERALD_ENV=development` is the explicit way to try it without one.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HERALD_ENV=production

# tini as PID 1: it forwards SIGTERM to herald and reaps the template renderer's children
# (a forkserver and its workers), which a Python PID 1 would leave as zombies.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

# A fixed, numeric uid: bind mounts and secret files can be owned by it, and Kubernetes'
# runAsNonRoot can only verify a numeric USER.
RUN groupadd --system --gid 10001 herald \
    && useradd --system --uid 10001 --gid herald --home-dir /var/lib/herald --create-home \
       --shell /usr/sbin/nologin herald

COPY --from=builder /opt/venv /opt/venv
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/herald-entrypoint
RUN python -m compileall -q /opt/venv/lib \
    && herald --version

# The working directory is where the embedded default keeps ./herald.db; mount a volume here to
# keep it.
WORKDIR /var/lib/herald
USER 10001:10001

EXPOSE 8000

# GET http://127.0.0.1:$HERALD_PORT/healthz, or HERALD_HEALTHCHECK_URL. A worker serves no HTTP:
# give it --metrics-port 9100 and HERALD_HEALTHCHECK_URL=http://127.0.0.1:9100/metrics, or run
# it with --no-healthcheck.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["herald-entrypoint", "healthcheck"]

ENTRYPOINT ["/usr/bin/tini", "--", "herald-entrypoint"]
CMD ["serve"]
