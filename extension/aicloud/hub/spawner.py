"""The local spawner of the embedded hub: processes on this machine, with the profile picker."""

from __future__ import annotations

import random
import shutil
import signal
import socket
from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Unicode, default

#: Where servers' ports are drawn from: below Linux's ephemeral ports (32768-60999), which
#: every ``bind(0)`` on the machine draws from. JupyterHub's own ``random_port()`` binds port 0
#: and lets it go, so a kernel or another test could take the port before the server binds it.
PORT_RANGE = (20000, 32767)


def free_port(ip: str = "", tries: int = 200) -> int:
    """A port in ``PORT_RANGE`` that is free now."""
    for _ in range(tries):
        port = random.randint(*PORT_RANGE)
        with socket.socket() as probe:
            try:
                probe.bind((ip, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORT_RANGE[0]}-{PORT_RANGE[1]}")


#: Written into a home once the examples were copied there, so that they come once: an example
#: the user deleted or renamed does not come back on the next spawn.
EXAMPLES_MARKER = ".aicloud-examples"


def copy_examples(source: Path, home: Path) -> list[str]:
    """Copy the files of ``source`` into ``home`` once, never overwriting; the names copied."""
    marker = home / EXAMPLES_MARKER
    if marker.exists() or not source.is_dir():
        return []
    home.mkdir(mode=0o755, parents=True, exist_ok=True)
    copied = []
    for path in sorted(source.iterdir()):
        target = home / path.name
        if path.name.startswith(".") or target.exists() or target.is_symlink():
            continue
        if path.is_dir():
            shutil.copytree(path, target, symlinks=False)
        elif path.is_file():
            shutil.copyfile(path, target)
        else:
            continue
        copied.append(path.name)
    marker.write_text("".join(f"{name}\n" for name in copied))
    return copied


class LocalProfileSpawner(SimpleLocalProcessSpawner):
    """``SimpleLocalProcessSpawner`` whose form offers the catalog's profiles (for development).

    Every server runs as the hub's own Unix user, with its home under ``home_dir_template``:
    there is no isolation between users, so use it on one machine, for development and tests.
    The chosen profile reaches the server (and its kernels) as ``AICLOUD_PROFILE`` and
    ``AICLOUD_ACCELERATOR[_COUNT]``; it does not reserve devices on this machine. A new home
    gets the example notebooks of ``examples_dir``.
    """

    examples_dir = Unicode(
        "",
        config=True,
        help="A folder whose files are copied into each user's home on the first spawn, never "
        "overwriting what is there (``c.LocalProfileSpawner.examples_dir = '/srv/examples'``). "
        "Empty: none.",
    )

    @default("options_from_form")
    def _simple_form(self):
        return self._profile_from_form

    @staticmethod
    def _profile_from_form(form_data: dict[str, list[str]]) -> dict[str, str]:
        """``{"profile": slug}`` from the form's select (one value per field)."""
        return {key: values[0] for key, values in form_data.items() if values}

    def make_preexec_fn(self, name):
        """Also give the server SIGINT's default action back: the hub stops servers with
        SIGINT, which a hub run in the background (SIGINT ignored) would pass on ignored."""
        prepare = super().make_preexec_fn(name)

        def preexec():
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            prepare()

        return preexec

    async def start(self):
        """Start the server on a port of :data:`PORT_RANGE` unless ``Spawner.port`` is set."""
        if self.port == 0 or getattr(self, "_port_drawn", False):
            self.port = free_port(self.ip)
            self._port_drawn = True
        if self.examples_dir:
            home = Path(self.home_dir)
            copied = copy_examples(Path(self.examples_dir), home)
            if copied:
                self.log.info("aicloud: copied %d examples into %s", len(copied), home)
        return await super().start()
