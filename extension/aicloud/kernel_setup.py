"""Start-up of aicloud's GPU/TPU kernels ("Python 3 (PyTorch)", "Python 3 (TensorFlow)").

Loaded as an IPython extension by the kernelspecs in ``kernels/`` before any user code runs:

1. **pin** what the server was given: the hub sets ``AICLOUD_ACCELERATOR`` and
   ``AICLOUD_ACCELERATOR_COUNT`` from the chosen profile; for ``nvidia.com/gpu`` the kernel
   keeps only that many of the visible GPUs in ``CUDA_VISIBLE_DEVICES`` (on Kubernetes the
   device plugin has already done so, and this changes nothing);
2. **find** the accelerators: CUDA through torch (PyTorch kernel) or NVML / ``nvidia-smi``,
   TPUs through GKE's environment (``TPU_*``), TensorFlow's own view in the TensorFlow kernel;
3. **say** what it found, in one line on the kernel's log and in :data:`FOUND`;
4. load the ``%aicloud`` magics when the installed aicloud has them.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from aicloud.resources import detect_gpus, detect_tpu

FRAMEWORK_ENV = "AICLOUD_KERNEL_FRAMEWORK"
FOUND: dict[str, Any] = {}


def pin(environ: dict[str, str] | os._Environ = os.environ) -> str | None:
    """Restrict ``CUDA_VISIBLE_DEVICES`` to the GPUs the server was given; return it."""
    if environ.get("AICLOUD_ACCELERATOR") != "nvidia.com/gpu":
        return environ.get("CUDA_VISIBLE_DEVICES")
    count = int(environ.get("AICLOUD_ACCELERATOR_COUNT") or 0)
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    devices = (
        [d for d in visible.split(",") if d]
        if visible is not None
        else [str(g["index"]) for g in detect_gpus()]
    )
    environ["CUDA_VISIBLE_DEVICES"] = ",".join(devices[:count])
    return environ["CUDA_VISIBLE_DEVICES"]


def _cuda_from_torch() -> list[str] | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def _tensorflow_devices() -> list[str] | None:
    try:
        import tensorflow as tf
    except ImportError:
        return None
    return [d.name for d in tf.config.list_physical_devices() if d.device_type != "CPU"]


def find(framework: str) -> dict[str, Any]:
    """What this kernel can use: CUDA GPUs, a TPU slice, and the framework's own view."""
    found: dict[str, Any] = {"framework": framework}
    gpus = _cuda_from_torch() if framework == "torch" else None
    if gpus is None:  # no torch here, or the TensorFlow kernel: ask NVML / nvidia-smi
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        keep = None if visible is None else {d for d in visible.split(",") if d}
        gpus = [g["model"] for g in detect_gpus() if keep is None or str(g["index"]) in keep]
    found["cuda"] = gpus
    found["tpu"] = detect_tpu()
    if framework == "tensorflow":
        found["tensorflow_devices"] = _tensorflow_devices()
    return found


def summary(found: dict[str, Any]) -> str:
    """One line: what the kernel found."""
    parts = []
    if found.get("cuda"):
        names = sorted(set(found["cuda"]))
        parts.append(f"{len(found['cuda'])} CUDA GPU(s) ({', '.join(names)})")
    if found.get("tpu"):
        parts.append(f"TPU {found['tpu']}")
    hardware = "; ".join(parts) or "no accelerator, CPU only"
    return f"aicloud {found['framework']} kernel: {hardware}"


def load_ipython_extension(ip) -> None:
    """Pin, find, report; then load the ``%aicloud`` magics if this aicloud has them."""
    framework = os.environ.get(FRAMEWORK_ENV, "none")
    pin()
    FOUND.clear()
    FOUND.update(find(framework))
    FOUND["summary"] = summary(FOUND)
    import aicloud

    FOUND["magics"] = hasattr(aicloud, "load_ipython_extension")
    if FOUND["magics"]:
        ip.extension_manager.load_extension("aicloud")
    print(FOUND["summary"], file=sys.stderr, flush=True)
