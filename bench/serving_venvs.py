"""The peers' own virtual environments for ``bench/serving.py``: ``bench/.venvs/NAME``.

KServe and MLServer pin their own web stacks (FastAPI, uvicorn, pydantic), so each gets a venv
of its own beside aicloud's ``.venv``, made on first use from
``serving_servers/NAME-requirements.txt`` and made again when that file changes.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
VENVS = HERE / ".venvs"
REQUIREMENTS = HERE / "serving_servers"


def venv_python(name: str) -> Path:
    """The venv's Python, after making or updating the venv if its requirements changed."""
    requirements = REQUIREMENTS / f"{name}-requirements.txt"
    folder = VENVS / name
    stamp = folder / "requirements.sha256"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    python = folder / "bin" / "python"
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    print(f"making {folder} from {requirements.name} (first use: a few minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    install = [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)]
    subprocess.run(install, check=True)
    stamp.write_text(digest)
    return python
