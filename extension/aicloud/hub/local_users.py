"""The local hub's users as Unix users: created at first login, never a system account.

:class:`SystemUserAuthenticator` is the development authenticator (any name; the password is
``DummyAuthenticator.password`` when set) of JupyterHub's ``LocalAuthenticator`` kind: with
``create_system_users`` every new hub user gets a Unix user of their own, so that
``LocalProfileSpawner.system_users`` and ``LocalBackend.run_as_owner`` can run their server and
jobs under it. A name that is already a system account (``root``, ``daemon``: uid < 1000) is
refused, so that logging in never borrows one.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from jupyterhub.auth import DummyAuthenticator, LocalAuthenticator
from traitlets import default

from aicloud.accounts import is_system_account, searchable_by_others


class SystemUserAuthenticator(LocalAuthenticator, DummyAuthenticator):
    """Any user name (for development), each a Unix user of its own."""

    @default("create_system_users")
    def _create_system_users_default(self):
        return True

    @default("add_user_cmd")
    def _add_user_cmd_default(self):
        # The spawner makes the home (its home_dir_template); the name is appended.
        return ["useradd", "--no-create-home", "--user-group", "--shell", "/bin/bash"]

    async def authenticate(self, handler, data):
        """Any name (and the password, when one is set), never a system account's."""
        name = await super().authenticate(handler, data)
        if name and is_system_account(self.normalize_username(name)):
            self.log.warning("aicloud: %r is a system account; it may not log in", name)
            return None
        return name

    async def add_user(self, user):
        """Refuse system accounts, then create the Unix user if it is missing."""
        if is_system_account(user.name):
            raise ValueError(f"{user.name!r} is a system account of this machine")
        await super().add_user(user)


#: ``AICLOUD_HUB_USERS``: how the local hub maps hub users to Unix users.
USER_MODES = {
    "system": "each hub user is a Unix user of their own (the hub runs as root)",
    "single": "the hub runs as one Unix account, for its owner alone",
    "shared": "several hub users share the hub's one Unix account, with no isolation on disk",
}


def default_user_mode() -> str:
    """``system`` for a hub started as root, else ``single``."""
    return "system" if os.geteuid() == 0 else "single"


def _unreachable(state: Path) -> str | None:
    """Why Unix users could not run their servers and jobs here, or None."""
    places = [
        ("their homes under", state),
        ("the Python environment", sys.prefix),
        ("the Python interpreter", os.path.realpath(sys.executable)),
        ("the Python installation", sys.base_prefix),
    ]
    for what, path in places:
        blocked = searchable_by_others(Path(path))
        if blocked is not None:
            return f"other users cannot reach {what} {path} ({blocked} is closed to them)"
    return None


def configure_local_users(c, mode: str | None, state: Path) -> str:
    """Configure the local hub for ``mode`` (a key of :data:`USER_MODES`; None: the default,
    :func:`default_user_mode`); returns a line that says what the hub does, for its log.
    Raises ``SystemExit`` with the reason when a mode asked for cannot work here."""
    asked, mode = mode, mode or default_user_mode()
    if mode not in USER_MODES:
        raise SystemExit(
            f"aicloud: AICLOUD_HUB_USERS={mode!r} is not one of " + ", ".join(USER_MODES)
        )
    if mode == "system":
        if os.geteuid() != 0:
            raise SystemExit("aicloud: AICLOUD_HUB_USERS=system needs the hub to run as root")
        for folder in (state, state / "aicloud", state / "aicloud" / "runs", state / "users"):
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o711)  # users pass through to their home and run dirs only
        why = _unreachable(state)
        if why is not None and asked:
            raise SystemExit(f"aicloud: AICLOUD_HUB_USERS=system cannot work: {why}")
        if why is not None:
            configure_local_users(c, "shared", state)
            return (
                f"aicloud: WARNING: hub users share the hub's Unix account (no isolation on "
                f"disk): {why}. Move the checkout and AICLOUD_HUB_STATE (e.g. /srv) to give "
                "each hub user a Unix user of their own."
            )
        os.umask(0o077)  # what the hub, the service and the servers write is private
        c.JupyterHub.authenticator_class = SystemUserAuthenticator
        c.LocalProfileSpawner.system_users = True
        for service in c.JupyterHub.services:
            if service["name"] == "aicloud":
                service["command"].append("--LocalBackend.run_as_owner=True")
    elif mode == "single":
        owner = getpass.getuser()
        c.Authenticator.allow_all = False
        c.Authenticator.allowed_users = {owner}
        c.Authenticator.admin_users = set(c.Authenticator.admin_users) | {owner}
        return (
            f"aicloud: the hub runs as one Unix account ({owner}): only {owner!r} may log in. "
            "Start it as root for a Unix user per hub user, or set AICLOUD_HUB_USERS=shared "
            "to let several users share this account (no isolation on disk)."
        )
    return f"aicloud: hub users: {USER_MODES[mode]} (AICLOUD_HUB_USERS={mode})"
