# syntax=docker/dockerfile:1
# Build: docker build -t movierec .
# Run:   docker run -p 8000:8000 -v movierec-data:/app/data movierec
# PYTHON_IMAGE swaps the base (any Debian-like image with python3 and its venv module);
# HTMX_FROM=context takes static/vendor/htmx.min.js from the build context (after `make static`)
# instead of installing it with npm in a node image. scripts/container-image uses both with Podman.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim
ARG HTMX_FROM=npm

# htmx comes from the npm registry, pinned by package-lock.json.
FROM ${NODE_IMAGE} AS htmx-npm
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund \
 && mkdir -p vendor \
 && cp node_modules/htmx.org/dist/htmx.min.js vendor/

FROM scratch AS htmx-context
COPY static/vendor/htmx.min.js /build/vendor/

FROM htmx-${HTMX_FROM} AS htmx

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
WORKDIR /app

# Dependencies in their own layer: it is rebuilt only when pyproject.toml changes. The test suites
# that NumPy, SciPy and pandas ship, and pip itself, are not needed to run.
COPY pyproject.toml ./
RUN python3 -m venv /opt/venv \
 && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt \
 && cd /opt/venv/lib/python3*/site-packages \
 && find numpy scipy pandas -depth -type d -name tests -exec rm -rf {} + \
 && /opt/venv/bin/pip uninstall --yes --quiet pip setuptools

RUN groupadd --system --gid 10001 movierec \
 && useradd --system --uid 10001 --gid movierec --no-create-home --home-dir /app \
      --shell /usr/sbin/nologin movierec \
 && mkdir -p /app/data \
 && chown movierec:movierec /app/data

COPY app ./app
COPY templates ./templates
COPY static ./static
COPY --from=htmx /build/vendor ./static/vendor

ENV HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/app/data
VOLUME ["/app/data"]
EXPOSE 8000
USER movierec

HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]

# `python -m app serve` runs Hypercorn in this process (PID 1): SIGTERM makes it stop accepting,
# finish the requests in flight (up to its graceful timeout) and exit 0.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "app", "serve"]
