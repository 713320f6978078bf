# syntax=docker/dockerfile:1
# fairstream: one image for every service; the command picks it (see docker-compose.kafka.yml):
#   docker run --rm fairstream:dev topics apply | migrate | processor bias | api | ...
ARG PYTHON_IMAGE=python:3.11-slim

# --- build: install the project and its dependencies into a venv ----------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first (from pyproject.toml only), so a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# Then the project itself (README.md is optional: the glob keeps COPY from failing without it).
COPY README.md* ./
COPY fairstream ./fairstream
COPY events ./events
COPY producers ./producers
COPY processors ./processors
COPY projections ./projections
COPY operations ./operations
COPY api ./api
RUN pip install . && fairstream --help >/dev/null

# --- runtime: the venv, the models, a non-root user -----------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FAIRSTREAM_MODELS_DIR=/opt/fairstream/models \
    FAIRSTREAM_API_HOST=0.0.0.0
RUN groupadd --system --gid 10001 fairstream \
    && useradd --system --uid 10001 --gid fairstream --home-dir /var/lib/fairstream \
        --no-create-home --shell /usr/sbin/nologin fairstream \
    && mkdir -p /var/lib/fairstream /opt/fairstream/models \
    && chown fairstream:fairstream /var/lib/fairstream
COPY --from=build /opt/venv /opt/venv
COPY models/ /opt/fairstream/models/
# Processors keep local state (Faust data dirs) under the working directory.
WORKDIR /var/lib/fairstream
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["fairstream"]
CMD ["--help"]
