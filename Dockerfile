# syntax=docker/dockerfile:1
# The sayiir-persistence-server image, built at the repository root:
#   docker build -t sayiir-persistence-server:0.1.0 .
# Stage `build` builds the two wheels and collects every dependency's wheel at the versions of
# constraints.txt; stage `runtime` installs them, offline, into a virtualenv on a slim Python base and runs
# `sayiir-server serve` as a non-root user. No container engine runs in CI: `make lint` runs hadolint on this
# file, and tests/packaging/test_dockerfile.py runs its install steps in a clean virtualenv, so every path
# those steps use is a variable.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG WHEELS=/wheels
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY constraints.txt ./
COPY client/ client/
COPY server/ server/
RUN python -m pip install --constraint constraints.txt --upgrade pip \
    && python -m pip wheel --constraint constraints.txt --wheel-dir "$WHEELS" ./client './server[tracing]'

FROM ${PYTHON_IMAGE} AS runtime
ARG WHEELS=/wheels
ENV VIRTUAL_ENV=/opt/sayiir
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv "$VIRTUAL_ENV" \
    && "$VIRTUAL_ENV/bin/pip" install --no-index --no-cache-dir --disable-pip-version-check \
        --find-links "$WHEELS" 'sayiir-persistence-server[tracing]'
# The SQLite default's directory (a volume), owned by the user the server runs as.
RUN mkdir -p /var/lib/sayiir && chown 10001:10001 /var/lib/sayiir

# The `serve` defaults a container needs (the rest are the CLI's; deploy/kubernetes/configmap.yaml sets
# the same variables): every interface, the metrics endpoint, SQLite in the volume. Nothing is written
# outside /var/lib/sayiir, so the root file system may be read-only.
ENV PATH="$VIRTUAL_ENV/bin:$PATH" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SAYIIR_LISTEN=0.0.0.0:50051 \
    SAYIIR_METRICS_LISTEN=0.0.0.0:9090 \
    SAYIIR_BACKEND=sqlite:////var/lib/sayiir/sayiir.db
WORKDIR /var/lib/sayiir
VOLUME ["/var/lib/sayiir"]
USER 10001:10001
# gRPC (with grpc.health.v1 for probes) and Prometheus metrics.
EXPOSE 50051 9090
ENTRYPOINT ["sayiir-server"]
CMD ["serve"]
