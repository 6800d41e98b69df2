# aicloud worker image, CPU: what job pods run (torchrun, TF workers, papermill).
# Versions: keep in step with pyproject.toml (checked by tests/test_k8s_static.py).
FROM python:3.11.13-slim-bookworm

ARG TORCH_VERSION=2.13.0
ARG TENSORFLOW_VERSION=2.21.0
ARG AICLOUD_VERSION=0.1.0

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" \
        --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir \
        "tensorflow-cpu==${TENSORFLOW_VERSION}" \
        "jupyter-aicloud==${AICLOUD_VERSION}"

RUN useradd --create-home --uid 1000 jovyan
USER 1000
WORKDIR /home/jovyan
CMD ["python"]
