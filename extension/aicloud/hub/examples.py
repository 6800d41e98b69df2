"""Copy the example notebooks into a new home, once, never overwriting.

Run by the spawner as a script (``python -I -S examples.py SOURCE HOME``, standard library
only) under the user's own uid when servers run as their users, so that nothing in a home the
user controls is ever written by root.
"""

import os
import shutil
import sys
from pathlib import Path

#: Written into a home once the examples were copied there, so that they come once: an example
#: the user deleted or renamed does not come back on the next spawn.
EXAMPLES_MARKER = ".aicloud-examples"


def copy_examples(source: Path, home: Path) -> list[str]:
    """Copy the files of ``source`` into ``home`` once, never overwriting; the names copied."""
    marker = home / EXAMPLES_MARKER
    if os.path.lexists(marker) or not source.is_dir():
        return []
    home.mkdir(mode=0o755, parents=True, exist_ok=True)
    copied = []
    for path in sorted(source.iterdir()):
        target = home / path.name
        if path.name.startswith(".") or os.path.lexists(target):
            continue
        if path.is_dir():
            shutil.copytree(path, target, symlinks=False)
        elif path.is_file():
            with open(path, "rb") as src, open(target, "xb") as dst:  # x: never overwrite
                shutil.copyfileobj(src, dst)
        else:
            continue
        copied.append(path.name)
    with open(marker, "x") as f:
        f.write("".join(f"{name}\n" for name in copied))
    return copied


if __name__ == "__main__":
    names = copy_examples(Path(sys.argv[1]), Path(sys.argv[2]))
    print(len(names))
