"""The wheel built from a clean tree ships the prebuilt sidebar, and JupyterLab lists it enabled.

One build: the tracked and untracked-but-not-ignored files are copied to a fresh directory (no
``node_modules``, no built assets), ``pip wheel`` builds it with build isolation (the
jupyter-builder hook runs ``jlpm install`` and ``jlpm build:prod``), and ``jupyter labextension
list`` is pointed at the wheel's ``share/jupyter`` through ``JUPYTER_PATH``. Slow: about a
minute with a warm yarn cache.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parent.parent
LABEXT = "share/jupyter/labextensions/jupyter-aicloud"


def clean_copy(target: Path) -> None:
    """Copy the files git would commit (tracked, or untracked and not ignored) to ``target``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def test_wheel_from_clean_tree_ships_the_enabled_labextension(tmp_path):
    tree, dist, data = tmp_path / "tree", tmp_path / "dist", tmp_path / "unpacked"
    clean_copy(tree)
    assert not (tree / "labextension" / "node_modules").exists()
    assert not (tree / "extension" / "aicloud" / "labextension").exists()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(tree)],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = dist.glob("jupyter_aicloud-*.whl")

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        prefix = next(n for n in names if n.endswith(f"{LABEXT}/package.json"))[
            : -len("package.json")
        ]
        shipped = {n[len(prefix) :] for n in names if n.startswith(prefix)}
        package = json.loads(archive.read(prefix + "package.json"))
        install = json.loads(archive.read(prefix + "install.json"))
        archive.extractall(data)
    assert package["name"] == "jupyter-aicloud"
    assert install["packageName"] == "jupyter-aicloud"
    assert "static/style.js" in shipped
    assert any(re.fullmatch(r"static/remoteEntry\.[0-9a-f]+\.js", n) for n in shipped), shipped
    assert not any(n.endswith(".map") for n in shipped)  # a production build
    # The built assets are shipped once, as data, not inside the Python package too.
    assert not any(n.startswith("aicloud/labextension/") for n in names)

    share = next(data.glob("jupyter_aicloud-*.data")) / "data" / "share" / "jupyter"
    listed = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"],
        env={**env, "JUPYTER_PATH": str(share), "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout + listed.stderr)
    section = text.split(str(share / "labextensions"), 1)
    assert len(section) == 2, text
    assert re.search(r"^\s+jupyter-aicloud v\S+ enabled OK", section[1], re.MULTILINE), text
