# Scrawn in a container: `scrawn serve` from the wheel, as a non-root user, SQLite data in /data.
# Build: docker build -t scrawn .    Run: docker run -p 8069:8069 -v scrawn-data:/data scrawn
# PostgreSQL and several replicas: compose.yaml. Both are explained in docs/deploy.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# 1. Build the wheel, exactly as scripts/check_wheel.sh does.
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
RUN pip install --no-cache-dir "build>=1.2" "hatchling>=1.25"
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN python -m build --wheel --no-isolation --outdir /dist .

# 2. A slim runtime with the wheel and its server extra installed, and nothing of the source tree.
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SCRAWN_HOST=0.0.0.0 \
    SCRAWN_PORT=8069 \
    SCRAWN_DATA_DIR=/data
RUN groupadd --system --gid 10001 scrawn \
 && useradd --system --uid 10001 --gid scrawn --home-dir /data --shell /usr/sbin/nologin scrawn \
 && mkdir /data && chown scrawn:scrawn /data && chmod 700 /data
COPY --from=build /dist/ /tmp/dist/
RUN pip install --no-cache-dir "$(ls /tmp/dist/scrawn-*.whl)[server]" && rm -rf /tmp/dist
USER scrawn:scrawn
WORKDIR /data
# SQLite (the default): the database and its `secret` file live here; keep it on a volume.
VOLUME ["/data"]
EXPOSE 8069
# Ready = the database answers (/readyz), on whatever SCRAWN_PORT says; the standard library only.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/readyz' % os.environ.get('SCRAWN_PORT', '8069'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]
ENTRYPOINT ["scrawn", "serve"]
