"""Unix accounts of hub users: who a server or a job runs as, and handing files over to them.

On a hub started as root, every hub user is a Unix user of their own (JupyterHub's
``LocalAuthenticator.create_system_users``): their server, kernels and every job attempt run
under that uid and gid. System accounts (uid below :data:`MIN_UID`, root included) never are:
a hub user named ``root`` or ``daemon`` is refused, so that logging in cannot borrow them.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from aicloud.errors import InvalidSpec

#: The lowest uid a hub user may run as (Debian's and most distributions' UID_MIN).
MIN_UID = 1000


@dataclass(frozen=True)
class Account:
    """A hub user's Unix account."""

    name: str
    uid: int
    gid: int

    @property
    def groups(self) -> list[int]:
        """The account's groups: its own group and the supplementary ones, nothing of ours."""
        return os.getgrouplist(self.name, self.gid)

    @property
    def popen_kwargs(self) -> dict:
        """What ``subprocess.Popen`` needs to start a process as this account."""
        return {"user": self.uid, "group": self.gid, "extra_groups": self.groups}


def account_of(name: str) -> Account:
    """The Unix account of hub user ``name``; refused when missing or a system account."""
    try:
        entry = pwd.getpwnam(name)
    except (KeyError, ValueError):
        raise InvalidSpec("owner", f"there is no Unix user {name!r} on this machine") from None
    if entry.pw_uid < MIN_UID:
        raise InvalidSpec(
            "owner", f"{name!r} is a system account (uid {entry.pw_uid}); jobs never run as one"
        )
    return Account(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def is_system_account(name: str) -> bool:
    """Whether ``name`` is an existing account that no hub user may become."""
    try:
        return pwd.getpwnam(name).pw_uid < MIN_UID
    except (KeyError, ValueError):
        return False


def private_dir(path: Path, account: Account) -> None:
    """Make ``path`` (if missing) a directory of ``account`` alone (0700)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chown(path, account.uid, account.gid, follow_symlinks=False)
    os.chmod(path, 0o700)


def hand_over(path: Path, account: Account) -> None:
    """Give a directory the service made, and the files in it, to ``account``: theirs alone.

    Links are changed themselves, never followed (``lchown``); subdirectories are left alone.
    """
    private_dir(path, account)
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                os.chown(entry.path, account.uid, account.gid, follow_symlinks=False)


def searchable_by_others(path: Path) -> Path | None:
    """The first folder on the way to ``path`` that other users cannot pass, or None."""
    for folder in [*reversed(path.resolve().parents), path.resolve()]:
        if not os.stat(folder).st_mode & 0o001:
            return folder
    return None
