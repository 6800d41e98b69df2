# aicloud worker image, CPU: what job pods run (torchrun, TF workers, papermill, inference).
# Build from the repository root:
#   docker build -f spawner_config/images/worker-cpu.Dockerfile -t ghcr.io/aicloud/worker-cpu:0.1.0 .
# Versions: keep in step with pyproject.toml (checked by tests/test_k8s_static.py).

# The wheel, built from this repository (the build context is its root): the hatch build hook
# builds the JupyterLab sidebar with Node.js. Stale build outputs of a checkout are removed
# first (and kept out by this Dockerfile's .dockerignore), so the sidebar is always rebuilt.
FROM python:3.11.13-slim-bookworm AS wheel
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs=18.* \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY jupyter-config/ jupyter-config/
COPY labextension/ labextension/
COPY extension/ extension/
RUN rm -rf extension/aicloud/labextension labextension/lib labextension/node_modules \
 && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11.13-slim-bookworm

ARG TORCH_VERSION=2.13.0
ARG TENSORFLOW_VERSION=2.21.0
ARG AICLOUD_VERSION=0.1.0
LABEL org.opencontainers.image.title="aicloud worker (CPU)" \
      org.opencontainers.image.version=${AICLOUD_VERSION}

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY --from=wheel /wheels/ /tmp/wheels/
# The wheel's file name carries its version: a tree whose version is not AICLOUD_VERSION fails.
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" \
        --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir \
        "tensorflow-cpu==${TENSORFLOW_VERSION}" \
        "/tmp/wheels/jupyter_aicloud-${AICLOUD_VERSION}-py3-none-any.whl[inference]" \
 && rm -rf /tmp/wheels

# One uid in every aicloud image: z2jh's jovyan, 1000, in the group users (100).
RUN useradd --no-log-init --create-home --uid 1000 --gid 100 jovyan
USER 1000:100
WORKDIR /home/jovyan
CMD ["python"]
