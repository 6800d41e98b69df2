"""The shipped kernelspecs start for real, pin what the server was given, and run a cell.

The fake ``tests/fakes/nvidia-smi`` on PATH plays a host with two GPUs; the server "was given"
one (``AICLOUD_ACCELERATOR_COUNT=1``, as the hub's profile sets it), so the kernel must pin
``CUDA_VISIBLE_DEVICES=0``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel

REPO = Path(__file__).resolve().parent.parent
FAKES = Path(__file__).parent / "fakes"
JUPYTER = str(Path(sys.executable).with_name("jupyter"))

CELLS = {
    "python3-pytorch": (
        "import torch\nprint('sum', torch.ones(3).sum().item())",
        "sum 3.0",
        "aicloud torch kernel: no accelerator, CPU only",  # torch (CPU build) sees no CUDA
    ),
    "python3-tensorflow": (
        "import tensorflow as tf\nprint('sum', float(tf.reduce_sum(tf.ones(3))))",
        "sum 3.0",
        "aicloud tensorflow kernel: 1 CUDA GPU(s) (NVIDIA H100 80GB HBM3)",  # NVML / nvidia-smi
    ),
}


def run_cell(client, code: str) -> str:
    """Execute ``code``; return its stdout, failing on an error."""
    out: list[str] = []

    def collect(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))

    reply = client.execute_interactive(code, output_hook=collect, timeout=120)
    assert reply["content"]["status"] == "ok", "".join(out)
    return "".join(out)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_kernel_starts_pins_and_runs_a_cell(name, tmp_path, monkeypatch):
    subprocess.run(
        [JUPYTER, "kernelspec", "install", "--prefix", str(tmp_path), str(REPO / "kernels" / name)],
        check=True,
        capture_output=True,
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("AICLOUD_ACCELERATOR", "nvidia.com/gpu")
    monkeypatch.setenv("AICLOUD_ACCELERATOR_COUNT", "1")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    code, expected, summary = CELLS[name]
    manager, client = start_new_kernel(kernel_name=name, startup_timeout=120)
    try:
        assert manager.kernel_spec.display_name in ("Python 3 (PyTorch)", "Python 3 (TensorFlow)")
        assert expected in run_cell(client, code)
        report = run_cell(
            client,
            "import os, aicloud.kernel_setup as k\n"
            "print(k.FOUND['summary']); print('visible', os.environ['CUDA_VISIBLE_DEVICES'])",
        )
        assert summary in report
        assert "visible 0\n" in report
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
