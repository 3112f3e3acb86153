# One image for every Python service of the compose stack: the MLflow server, the one-shot
# trainer, the inference service, the monitoring controller, the traffic generator and the alert
# relay. It holds the mlplat package and its locked dependencies, nothing else.
#
#   docker build -t mlplat:0.1.0 .        (docker compose builds it for you: `make up`)
#
# Two stages: the builder resolves the locked dependencies (constraints.txt) into a virtualenv
# and installs the project from a wheel (not editable, so package data such as
# pipeline/conf/*.yml and monitoring/prometheus/rules/*.yml must be, and is, in the wheel); the
# runtime stage copies only that virtualenv, so no compiler, pip cache or source tree ships.
#
# Build arguments (both optional):
#   GIT_COMMIT     the commit built, recorded as the code version of every pipeline run and as
#                  the image's org.opencontainers.image.revision label:
#                    docker build --build-arg GIT_COMMIT="$(git rev-parse HEAD)" -t mlplat:0.1.0 .
#   EXTRA_CA_CERT  a CA certificate (PEM text) pip trusts besides its own bundle, for builds
#                  behind a TLS-intercepting proxy:
#                    docker build --build-arg EXTRA_CA_CERT="$(cat proxy-ca.pem)" -t mlplat:0.1.0 .

# Pinned by tag; pin the digest too (python:3.11.10-slim-bookworm@sha256:...) where the build
# must be byte-for-byte reproducible.
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv

# A TLS-intercepting proxy presents certificates signed by its own CA. Given that CA, pip trusts
# it on top of pip's own bundle, through /etc/pip.conf of this stage only: the runtime stage
# downloads nothing and never holds it. Empty (the default), this step writes nothing. A CA
# certificate is public, so a build argument is a fit (it stays in the builder's history, which
# is not shipped); never pass a private key this way.
ARG EXTRA_CA_CERT=""
RUN if [ -n "$EXTRA_CA_CERT" ]; then \
        case "$EXTRA_CA_CERT" in \
            *"-----BEGIN CERTIFICATE-----"*) ;; \
            *) echo "EXTRA_CA_CERT must be PEM text (-----BEGIN CERTIFICATE----- ...)" >&2; exit 1 ;; \
        esac; \
        printf '%s\n' "$EXTRA_CA_CERT" > /etc/pip-extra-ca.pem \
        && cat "$(/opt/venv/bin/python -c 'from pip._vendor import certifi; print(certifi.where())')" \
            /etc/pip-extra-ca.pem > /etc/pip-ca-bundle.pem \
        && printf '[global]\ncert = /etc/pip-ca-bundle.pem\n' > /etc/pip.conf; \
    fi

WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when the declaration or the lock
# changes, not on every source edit. The list comes from pyproject.toml (runtime dependencies
# only, no dev extras); constraints.txt pins every package, transitive ones included.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(deps))" > requirements.txt \
    && /opt/venv/bin/pip install -c constraints.txt -r requirements.txt

# The project itself, as a wheel: a non-editable install that carries its package data.
COPY README.md ./
COPY features ./features
COPY interfaces ./interfaces
COPY pipeline ./pipeline
COPY registry ./registry
COPY serving ./serving
COPY monitoring ./monitoring
COPY ci ./ci
COPY demo ./demo
COPY mlplat ./mlplat
COPY benchmarks ./benchmarks
COPY migrations ./migrations
# The installed files are checked for the package data the services read at run time.
RUN /opt/venv/bin/pip wheel --no-deps -w /wheels . \
    && /opt/venv/bin/pip install --no-deps /wheels/*.whl \
    && /opt/venv/bin/python -c "import importlib.metadata as m; files = {str(p) for p in m.files('mlplat')}; missing = {'pipeline/conf/parameters.yml', 'monitoring/prometheus/rules/alerts.yml', 'monitoring/prometheus/rules/recording.yml'} - files; assert not missing, f'package data missing from the wheel: {missing}'"


FROM ${PYTHON_IMAGE} AS runtime

# No git in this image: GitPython (imported by MLflow to tag runs with a commit) fails quietly
# instead of warning on every run; the code version comes from GIT_COMMIT below.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MLPLAT_HOME=/var/lib/mlplat \
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false \
    GIT_PYTHON_REFRESH=quiet

# A fixed, unprivileged uid/gid: files on named volumes keep one owner across rebuilds. A named
# volume mounted on a path that exists in the image starts as a copy of it, owner included:
# creating the volume paths here is what lets the non-root user write to its volumes.
RUN groupadd --system --gid 10001 mlplat \
    && useradd --system --uid 10001 --gid mlplat --home-dir /home/mlplat --create-home \
        --shell /usr/sbin/nologin mlplat \
    && mkdir -p /var/lib/mlplat /mlartifacts \
    && chown mlplat:mlplat /var/lib/mlplat /mlartifacts

COPY --from=builder /opt/venv /opt/venv
# The stack's helper scripts (alert relay, bad-canary demo), read-only for the service user.
COPY deploy/alert_relay.py deploy/bad_canary.py /app/deploy/
# The feature contract every component reads (features/contract.py). The wheel does not carry
# examples/, so its default path does not exist in the image: MLPLAT_CONTRACT names the copy.
COPY examples/credit/contract.yml /app/examples/credit/contract.yml
ENV MLPLAT_CONTRACT=/app/examples/credit/contract.yml
WORKDIR /app

# The commit built. Declared last, so a new commit rebuilds nothing but these two metadata layers.
# The pipeline records MLPLAT_CODE_VERSION as each run's code version
# (pipeline/tracking.py::code_version); left empty, runs record "unknown".
ARG GIT_COMMIT=""
LABEL org.opencontainers.image.title="mlplat" \
      org.opencontainers.image.revision="${GIT_COMMIT}"
ENV MLPLAT_CODE_VERSION="${GIT_COMMIT}"

USER mlplat:mlplat
# Each compose service sets its own command and healthcheck; alone, the image explains itself.
CMD ["mlplat", "--help"]
