"""The local spawner of the embedded hub: processes on this machine, with the profile picker."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Bool, Unicode, default

from aicloud.accounts import account_of, private_dir
from aicloud.hub import examples
from aicloud.ports import free_port


class LocalProfileSpawner(SimpleLocalProcessSpawner):
    """``SimpleLocalProcessSpawner`` whose form offers the catalog's profiles (for development).

    Every server runs as the hub's own Unix user, with its home under ``home_dir_template``:
    there is no isolation between users, so use it on one machine, for development and tests.
    The chosen profile reaches the server (and its kernels) as ``AICLOUD_PROFILE`` and
    ``AICLOUD_ACCELERATOR[_COUNT]``; it does not reserve devices on this machine. A new home
    gets the example notebooks of ``examples_dir``.
    """

    system_users = Bool(
        False,
        config=True,
        help="Run each user's server as their own Unix user (the hub must run as root, with "
        "``aicloud.hub.local_users.SystemUserAuthenticator`` creating the users): the home "
        "``home_dir_template`` becomes theirs alone (0700), and the server, its kernels and "
        "terminals get their uid, gid and groups. System accounts (uid < 1000) are refused.",
    )

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
        SIGINT, which a hub run in the background (SIGINT ignored) would pass on ignored.
        With :attr:`system_users`, become the user, in their home."""
        if self.system_users:
            account, home = account_of(name), self.home_dir
            groups = account.groups

            def become():
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.setgroups(groups)
                os.setgid(account.gid)
                os.setuid(account.uid)
                os.chdir(home)

            return become
        prepare = super().make_preexec_fn(name)

        def preexec():
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            prepare()

        return preexec

    def user_env(self, env):
        """``HOME``, ``USER`` and ``SHELL`` of the user's home."""
        env = super().user_env(env)
        env["LOGNAME"] = self.user.name
        return env

    async def start(self):
        """Start the server on a port of :data:`aicloud.ports.PORT_RANGE` unless
        ``Spawner.port`` is set."""
        if self.port == 0 or getattr(self, "_port_drawn", False):
            self.port = free_port(self.ip)
            self._port_drawn = True
        home = Path(self.home_dir)
        as_user = {}
        if self.system_users:
            account = account_of(self.user.name)
            private_dir(home, account)
            as_user = account.popen_kwargs
        if self.examples_dir:
            await self._copy_examples(home, as_user)
        return await super().start()

    async def _copy_examples(self, home: Path, as_user: dict) -> None:
        """Copy :attr:`examples_dir` into the home, as the user where servers run as them."""
        argv = [sys.executable, "-I", "-S", examples.__file__, self.examples_dir, str(home)]
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd="/",
            **as_user,
        )
        output, _ = await process.communicate()
        if process.returncode:
            self.log.warning("aicloud: no examples in %s: %s", home, output.decode()[-500:])
        elif output.strip() not in (b"", b"0"):
            self.log.info("aicloud: copied %s examples into %s", output.decode().strip(), home)
