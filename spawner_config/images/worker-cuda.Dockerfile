# aicloud worker image, NVIDIA GPUs (CUDA 12.8): what accelerator job pods run.
# Versions: keep in step with pyproject.toml (checked by tests/test_k8s_static.py).
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ARG TORCH_VERSION=2.13.0
ARG TENSORFLOW_VERSION=2.21.0
ARG AICLOUD_VERSION=0.1.0

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.12=3.12.* python3.12-venv=3.12.* \
 && rm -rf /var/lib/apt/lists/* \
 && python3.12 -m venv /opt/venv

RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" \
        --index-url https://download.pytorch.org/whl/cu128 \
 && pip install --no-cache-dir \
        "tensorflow[and-cuda]==${TENSORFLOW_VERSION}" \
        "jupyter-aicloud==${AICLOUD_VERSION}"

RUN useradd --create-home --uid 1001 jovyan
USER 1001
WORKDIR /home/jovyan
CMD ["python"]
