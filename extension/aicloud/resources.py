"""What this machine offers: CPU, memory, GPUs (NVML or nvidia-smi) and TPUs (environment)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from typing import Any

import psutil

NVIDIA_SMI_QUERY = "index,name,uuid,memory.total,memory.used,utilization.gpu"
TPU_ENV = ("TPU_ACCELERATOR_TYPE", "TPU_WORKER_ID", "TPU_WORKER_HOSTNAMES", "TPU_TOPOLOGY")


def _gpus_from_nvml() -> list[dict[str, Any]] | None:
    try:
        import pynvml  # from nvidia-ml-py, an optional dependency
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            device = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(device)
            name = pynvml.nvmlDeviceGetName(device)
            gpus.append(
                {
                    "type": "nvidia.com/gpu",
                    "index": index,
                    "model": name.decode() if isinstance(name, bytes) else name,
                    "uuid": pynvml.nvmlDeviceGetUUID(device),
                    "memory_bytes": int(memory.total),
                    "memory_used_bytes": int(memory.used),
                    "utilization_percent": pynvml.nvmlDeviceGetUtilizationRates(device).gpu,
                }
            )
        return gpus
    finally:
        pynvml.nvmlShutdown()


def _gpus_from_nvidia_smi() -> list[dict[str, Any]]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, f"--query-gpu={NVIDIA_SMI_QUERY}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    gpus = []
    for line in out.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 6:
            continue
        index, model, uuid, total, used, util = fields
        gpus.append(
            {
                "type": "nvidia.com/gpu",
                "index": int(index),
                "model": model,
                "uuid": uuid,
                "memory_bytes": int(float(total)) * 2**20,
                "memory_used_bytes": int(float(used)) * 2**20,
                "utilization_percent": int(float(util))
                if util.replace(".", "").isdigit()
                else None,
            }
        )
    return gpus


def detect_gpus() -> list[dict[str, Any]]:
    """NVIDIA GPUs through NVML, falling back to ``nvidia-smi``; empty when there are none."""
    gpus = _gpus_from_nvml()
    return gpus if gpus is not None else _gpus_from_nvidia_smi()


def detect_tpu() -> dict[str, Any] | None:
    """The TPU environment GKE and Cloud TPU VMs set, and the accelerator devices present."""
    env = {name: os.environ[name] for name in TPU_ENV if name in os.environ}
    devices = sorted(glob.glob("/dev/accel*")) + sorted(glob.glob("/dev/vfio/[0-9]*"))
    if not env and not glob.glob("/dev/accel*"):
        return None
    return {"type": "google.com/tpu", "env": env, "devices": devices}


def machine_resources() -> dict[str, Any]:
    """CPU, memory and accelerators of this machine."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    memory = psutil.virtual_memory()
    return {
        "cpu": {"cores": os.cpu_count() or 1, "usable": usable},
        "memory": {"total_bytes": memory.total, "available_bytes": memory.available},
        "gpus": detect_gpus(),
        "tpu": detect_tpu(),
    }


psutil.cpu_percent(interval=None)  # the first call only starts the measuring window


def machine_usage() -> dict[str, Any]:
    """This machine now: CPU % (100 per core, since the last call), memory and each GPU."""
    memory = psutil.virtual_memory()
    cores = os.cpu_count() or 1
    return {
        "t": round(time.time(), 3),
        "cpu_percent": psutil.cpu_percent(interval=None) * cores,
        "cores": cores,
        "memory_used_bytes": memory.total - memory.available,
        "memory_total_bytes": memory.total,
        "gpus": [
            {
                "index": gpu["index"],
                "model": gpu["model"],
                "utilization_percent": gpu["utilization_percent"],
                "memory_used_bytes": gpu["memory_used_bytes"],
                "memory_total_bytes": gpu["memory_bytes"],
            }
            for gpu in detect_gpus()
        ],
    }


def leased_gpus(job_backend: str, attempt_handle: dict | None, spec: dict, devices: set) -> int:
    """GPUs a running job holds: on this machine, the leased devices that exist (the local
    backend's handle names them); on a cluster, those its spec asks for (the cluster leases
    them)."""
    if job_backend == "local":
        return len([gpu for gpu in (attempt_handle or {}).get("gpus", []) if gpu in devices])
    resources = spec.get("resources") or {}
    if "gpu" not in str(resources.get("accelerator") or ""):
        return 0
    return int(resources.get("accelerator_count") or 0) * int(resources.get("nodes") or 1)
