"""Accelerator detection. No GPU exists on CI machines, so ``nvidia-smi`` is a named fake."""

from __future__ import annotations

import os
import stat

from aicloud.resources import detect_gpus, detect_tpu, machine_resources

FAKE_NVIDIA_SMI = """#!/bin/sh
# A stand-in for nvidia-smi (no GPU on this machine): prints what an H100 host prints.
echo "0, NVIDIA H100 80GB HBM3, GPU-1111, 81559, 1024, 12"
echo "1, NVIDIA H100 80GB HBM3, GPU-2222, 81559, 0, [N/A]"
"""


def test_gpus_from_nvidia_smi(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text(FAKE_NVIDIA_SMI)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    gpus = detect_gpus()
    assert [g["uuid"] for g in gpus] == ["GPU-1111", "GPU-2222"]
    assert gpus[0] == {
        "type": "nvidia.com/gpu",
        "index": 0,
        "model": "NVIDIA H100 80GB HBM3",
        "uuid": "GPU-1111",
        "memory_bytes": 81559 * 2**20,
        "memory_used_bytes": 1024 * 2**20,
        "utilization_percent": 12,
    }
    assert gpus[1]["utilization_percent"] is None


def test_no_gpus_without_nvidia_smi(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert detect_gpus() == []


def test_tpu_environment(monkeypatch):
    monkeypatch.setenv("TPU_ACCELERATOR_TYPE", "v5litepod-8")
    monkeypatch.setenv("TPU_WORKER_ID", "0")
    tpu = detect_tpu()
    assert tpu["type"] == "google.com/tpu"
    assert tpu["env"] == {"TPU_ACCELERATOR_TYPE": "v5litepod-8", "TPU_WORKER_ID": "0"}


def test_machine_resources():
    resources = machine_resources()
    assert resources["cpu"]["usable"] <= resources["cpu"]["cores"]
    assert 0 < resources["memory"]["available_bytes"] <= resources["memory"]["total_bytes"]
