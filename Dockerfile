# syntax=docker/dockerfile:1
# Build: docker build -t movierec .    Run: docker run -p 8000:8000 -v movierec-data:/app/data movierec
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim

# htmx comes from the npm registry, pinned by package-lock.json.
FROM ${NODE_IMAGE} AS static
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund \
 && mkdir -p vendor \
 && cp node_modules/htmx.org/dist/htmx.min.js vendor/

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
WORKDIR /app

# Dependencies in their own layer: it is rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -m venv /opt/venv \
 && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

RUN useradd --system --uid 10001 --no-create-home --home-dir /app --shell /usr/sbin/nologin movierec \
 && mkdir -p /app/data \
 && chown movierec:movierec /app/data

COPY app ./app
COPY templates ./templates
COPY static ./static
COPY --from=static /build/vendor ./static/vendor

ENV HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/app/data
VOLUME ["/app/data"]
EXPOSE 8000
USER movierec

HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]

# `python -m app serve` runs Hypercorn in this process, so SIGTERM reaches it directly.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "app", "serve"]
