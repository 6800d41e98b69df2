# aicloud single-user notebook image, CPU: JupyterLab, the hub's singleuser server, aicloud
# (the sidebar, the magics, the kernels). Referenced by spawner_config/hardware.yaml
# (images.cpu) and the z2jh values. Build from the repository root:
#   docker build -f spawner_config/images/singleuser-cpu.Dockerfile -t ghcr.io/aicloud/singleuser-cpu:0.1.0 .
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
# The hub's JupyterHub (z2jh 4.4.0 ships 5.5.0).
ARG JUPYTERHUB_VERSION=5.5.0
LABEL org.opencontainers.image.title="aicloud single-user server (CPU)" \
      org.opencontainers.image.version=${AICLOUD_VERSION}

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY --from=wheel /wheels/ /tmp/wheels/
COPY kernels/ /tmp/kernels/
# The wheel's file name carries its version: a tree whose version is not AICLOUD_VERSION fails.
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" \
        --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir \
        "tensorflow-cpu==${TENSORFLOW_VERSION}" \
        "/tmp/wheels/jupyter_aicloud-${AICLOUD_VERSION}-py3-none-any.whl[lab,inference]" \
        "jupyterhub==${JUPYTERHUB_VERSION}" \
 && jupyter kernelspec install --sys-prefix /tmp/kernels/python3-pytorch \
 && jupyter kernelspec install --sys-prefix /tmp/kernels/python3-tensorflow \
 && rm -rf /tmp/wheels /tmp/kernels

# One uid in every aicloud image: z2jh's jovyan, 1000, in the group users (100).
RUN useradd --no-log-init --create-home --uid 1000 --gid 100 jovyan
USER 1000:100
WORKDIR /home/jovyan
EXPOSE 8888
CMD ["jupyterhub-singleuser"]
