# aicloud worker image, NVIDIA GPUs (CUDA 12.8): what accelerator job pods run.
# Build from the repository root:
#   docker build -f spawner_config/images/worker-cuda.Dockerfile -t ghcr.io/aicloud/worker-cuda:0.1.0 .
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

FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ARG TORCH_VERSION=2.13.0
ARG TENSORFLOW_VERSION=2.21.0
ARG AICLOUD_VERSION=0.1.0
LABEL org.opencontainers.image.title="aicloud worker (CUDA)" \
      org.opencontainers.image.version=${AICLOUD_VERSION}

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.12=3.12.* python3.12-venv=3.12.* \
 && rm -rf /var/lib/apt/lists/* \
 && python3.12 -m venv /opt/venv

COPY --from=wheel /wheels/ /tmp/wheels/
# The wheel's file name carries its version: a tree whose version is not AICLOUD_VERSION fails.
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" \
        --index-url https://download.pytorch.org/whl/cu128 \
 && pip install --no-cache-dir \
        "tensorflow[and-cuda]==${TENSORFLOW_VERSION}" \
        "/tmp/wheels/jupyter_aicloud-${AICLOUD_VERSION}-py3-none-any.whl[inference,gpu]" \
 && rm -rf /tmp/wheels

# One uid in every aicloud image: z2jh's jovyan, 1000, in the group users (100).
# Ubuntu's images have a user "ubuntu" with uid 1000: jovyan takes that uid instead.
RUN userdel --remove ubuntu \
 && useradd --no-log-init --create-home --uid 1000 --gid 100 jovyan
USER 1000:100
WORKDIR /home/jovyan
CMD ["python"]
