"""Unix accounts of hub users: who a server or a job runs as, and handing files over to them.

On a hub started as root, every hub user is a Unix user of their own (JupyterHub's
``LocalAuthenticator.create_system_users``): their server, kernels and every job attempt run
under that uid and gid. System accounts (uid below :data:`MIN_UID`, root included) never are:
a hub user named ``root`` or ``daemon`` is refused, so that logging in cannot borrow them.
"""

from __future__ import annotations

import os
import pwd
import stat
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
    """Give a directory the service made, and all it made in it (a notebook job's
    ``outputs/``, an inference job's ``inference/config.json``), to ``account``: theirs alone.

    Links are never followed, and a file with other hard links (one a job may have planted to
    a file of someone else) is left alone. Nothing of the job's runs meanwhile: the attempts
    before this one are over, and their units are empty.
    """
    private_dir(path, account)
    for folder, dirs, files in os.walk(path, followlinks=False):
        for name in (*dirs, *files):
            entry = os.path.join(folder, name)
            info = os.lstat(entry)
            if stat.S_ISDIR(info.st_mode) or (stat.S_ISREG(info.st_mode) and info.st_nlink == 1):
                os.chown(entry, account.uid, account.gid, follow_symlinks=False)


def searchable_by_others(path: Path) -> Path | None:
    """The first folder on the way to ``path`` that other users cannot pass, or None."""
    for folder in [*reversed(path.resolve().parents), path.resolve()]:
        if not os.stat(folder).st_mode & 0o001:
            return folder
    return None
