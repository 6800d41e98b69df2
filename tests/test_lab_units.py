"""The sidebar's TypeScript unit tests (API client, parameter form, cron preview), run by Node.

``jlpm test`` compiles ``labextension/src`` and ``labextension/test`` with ``tsc`` to CommonJS
and runs them with Node's built-in runner (``node --test``): nothing is downloaded. The
``node_modules`` come from the build hook of ``pip install -e .`` (``make setup``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

LABEXTENSION = Path(__file__).parent.parent / "labextension"


def jlpm() -> str:
    """The ``jlpm`` next to this Python (jupyterlab's yarn), else the one on PATH."""
    here = Path(sys.executable).with_name("jlpm")
    return str(here) if here.exists() else shutil.which("jlpm") or "jlpm"


def test_typescript_units_pass():
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    if not (LABEXTENSION / "node_modules").is_dir():  # built assets present, deps not installed
        subprocess.run([jlpm(), "install"], cwd=LABEXTENSION, env=env, check=True, timeout=240)
    done = subprocess.run(
        [jlpm(), "test"], cwd=LABEXTENSION, env=env, capture_output=True, text=True, timeout=240
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    counts = dict(re.findall(r"^# (tests|pass|fail) (\d+)$", output, re.MULTILINE))
    assert int(counts["tests"]) >= 20, output
    assert counts["pass"] == counts["tests"] and counts["fail"] == "0", output
