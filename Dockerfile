# syntax=docker/dockerfile:1
# Dharma Streams worker image: `dharma` is the entrypoint, one topology per
# container (`docker run IMAGE worker --topology ingest`).

# --- build: install the package and its dependencies into a virtualenv ------
# Exact versions from constraints.txt (the lock CI tests); without the
# `embedded` extra: production talks to real Kafka, PostgreSQL and Redis.
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/dharma
ENV PATH=/opt/dharma/bin:$PATH

WORKDIR /src
COPY . .
RUN pip install -c constraints.txt .

# --- runtime: the virtualenv only, run as an unprivileged user ---------------
FROM python:3.11-slim

ENV PATH=/opt/dharma/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DHARMA_WORKER_METRICS_PORT=9464 \
    DHARMA_WORKER_DATA_DIR=/var/lib/dharma/worker

RUN groupadd --system --gid 10001 dharma \
    && useradd --system --uid 10001 --gid dharma --home-dir /home/dharma --create-home dharma \
    && mkdir -p /var/lib/dharma/worker \
    && chown -R dharma:dharma /var/lib/dharma

COPY --from=build /opt/dharma /opt/dharma

USER dharma
WORKDIR /home/dharma

EXPOSE 9464

# The worker is healthy while its Prometheus endpoint answers.  The slim image
# has no curl, so Python's standard library does the request.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('DHARMA_WORKER_METRICS_PORT', '9464'), timeout=4)"]

ENTRYPOINT ["dharma"]
CMD ["worker", "--topology", "all"]
