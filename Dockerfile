# syntax=docker/dockerfile:1
#
# Herald image: `docker build -t herald .`
#   docker run -p 8000:8000 herald                        # embedded default (SQLite in /var/lib/herald)
#   docker run -e DATABASE_URL=postgresql://... -e REDIS_URL=redis://... \
#              -e HERALD_ENV=production -e HERALD_JWT_SECRET=... -p 8000:8000 herald
#   docker run ... herald worker | migrate | token --sub alice | send --to alice --title Hi
#   docker run -e HERALD_JWT_SECRET_FILE=/run/secrets/jwt ... herald   # secrets from files
#
# Layout: the source sits in /app (/app/app, /app/migrations, /app/static side by side, as
# app/store/migrations.py expects) and is installed in editable mode into /opt/venv, so the
# `herald` console script imports it from /app. Both paths are the same in both stages, and so
# is the base image: /opt/venv links to its interpreter.
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

RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --upgrade pip

WORKDIR /app
# The dependency layer depends only on the packaging metadata (the version lives in
# app/__init__.py), so editing the code does not reinstall the dependencies. README.m[d]: the
# long description is optional, and a glob lets the build go on without it.
COPY pyproject.toml setup.cfg README.m[d] ./
COPY app/__init__.py app/__init__.py
RUN /opt/venv/bin/pip install -e .

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# A fixed, numeric uid: bind mounts and secret files can be owned by it, and Kubernetes'
# runAsNonRoot can only verify a numeric USER.
RUN groupadd --system --gid 10001 herald \
    && useradd --system --uid 10001 --gid herald --home-dir /var/lib/herald --create-home \
       --shell /usr/sbin/nologin herald

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
COPY app/ app/
COPY migrations/ migrations/
COPY static/ static/
COPY --chmod=0755 docker/entrypoint.sh docker/entrypoint.sh
# Bytecode ahead of time: /app is read-only for the herald user.
RUN python -m compileall -q app \
    && python -c "import herald_server.cli, herald_server.store.migrations as m; assert m.MIGRATIONS_DIR.is_dir(), m.MIGRATIONS_DIR"

# The working directory is where the embedded default keeps ./herald.db and its development
# secret; mount a volume here to keep them.
WORKDIR /var/lib/herald
USER 10001:10001

EXPOSE 8000

# GET http://127.0.0.1:$HERALD_PORT/healthz, or HERALD_HEALTHCHECK_URL. A worker serves no HTTP:
# give it --metrics-port 9100 and HERALD_HEALTHCHECK_URL=http://127.0.0.1:9100/metrics, or run
# it with --no-healthcheck.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/app/docker/entrypoint.sh", "healthcheck"]

ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["serve"]
