"""A full or read-only data volume: jobs keep their outcome, the API answers 503, never 500.

The data dir is a real, tiny tmpfs that the tests fill to the last byte; the read-only store
is a read-only bind mount. Needs root (``mount``), as the tests run here.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sqlite3
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from aicloud.backends import supervise
from aicloud.handlers.base import VOLUME_FULL, VOLUME_READ_ONLY, storage_failure
from tests.conftest import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs: needs root")


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


@pytest.fixture
def volume(tmp_path: Path):
    """A 4 MiB tmpfs at ``tmp_path/data`` (the live servers' data dir), unmounted after."""
    path = tmp_path / "data"
    path.mkdir()
    mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path))
    yield path
    unmount(path)


def fill(path: Path) -> Path:
    """Fill the volume that ``path`` is on to the last byte; the filler file to remove."""
    filler = path / "filler"
    with open(filler, "ab", buffering=0) as f:
        for size in (1 << 16, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * size)
    with pytest.raises(OSError) as refused:
        filler.with_name("probe").write_bytes(b"x" * 4096)
    assert refused.value.errno == errno.ENOSPC
    return filler


# -- the supervisor -------------------------------------------------------------------------


def test_status_goes_into_space_reserved_at_start(volume):
    status = volume / "attempt-1.status.json"
    supervise.reserve_status(str(status))
    fill(volume)
    supervise._write_status(str(status), {"exit_code": 0, "processes": [{"name": "w"}] * 50})
    assert json.loads(status.read_text())["exit_code"] == 0
    assert not Path(f"{status}.tmp").exists()


def test_status_waits_for_room_when_none_was_reserved(volume):
    status = volume / "attempt-1.status.json"
    filler = fill(volume)
    writer = threading.Thread(target=supervise._write_status, args=(str(status), {"exit_code": 0}))
    writer.start()
    time.sleep(2 * supervise.STATUS_RETRY)
    assert writer.is_alive() and not status.exists()  # waiting, not gone without a status
    filler.unlink()
    writer.join(timeout=10)
    assert json.loads(status.read_text()) == {"exit_code": 0}


def pipe_empty(fd: int) -> bool:
    available = fcntl.ioctl(fd, termios.FIONREAD, struct.pack("i", 0))
    return struct.unpack("i", available)[0] == 0


def test_lines_lost_to_a_full_volume_are_counted_in_the_log(volume):
    read_fd, write_fd = os.pipe()
    log_path = volume / "output.log"
    with open(read_fd, "rb", buffering=0) as stream, open(log_path, "ab", buffering=0) as log:
        copier = threading.Thread(target=supervise._copy_with_prefix, args=(stream, log, b"[r0]:"))
        copier.start()
        before = b"b" * (4096 - 6) + b"\n"  # the log's first page full: nothing more fits
        os.write(write_fd, before)
        wait_for(lambda: log_path.read_bytes() == b"[r0]:" + before)
        filler = fill(volume)
        for i in range(3):
            os.write(write_fd, f"lost {i}\n".encode())
            wait_for(lambda: pipe_empty(write_fd))
            time.sleep(10 * supervise.COPY_PAUSE)
        assert copier.is_alive()  # still draining the pipe: the worker is not blocked
        filler.unlink()
        os.write(write_fd, b"after\n")
        os.close(write_fd)
        copier.join(timeout=10)
    assert log_path.read_bytes() == (
        b"[r0]:" + before + b"[aicloud] 3 lines lost: no space left on device\n[r0]:after\n"
    )


# -- the REST API ---------------------------------------------------------------------------

FILL_AND_SUCCEED = (
    "import os, sys\n"
    "with open(os.path.join(os.environ['AICLOUD_RUN_DIR'], 'filler'), 'ab', buffering=0) as f:\n"
    "    for size in (1 << 16, 4096, 1):\n"
    "        try:\n"
    "            while True:\n"
    "                f.write(bytes(size))\n"
    "        except OSError:\n"
    "            pass\n"
    "sys.exit(0)\n"
)


def test_full_volume_keeps_a_success(volume, live_server_factory):
    server = live_server_factory()
    with server.api() as client:
        response = client.post("jobs", json={"command": [sys.executable, "-c", FILL_AND_SUCCEED]})
        assert response.status_code == 201, response.text
        job_id = response.json()["id"]
        status_file = wait_for(lambda: next(volume.glob("runs/*/attempt-1.status.json"), None))
        assert json.loads(status_file.read_text())["exit_code"] == 0

        assert client.get(f"jobs/{job_id}").status_code == 200  # reads still work

        next(volume.glob("runs/*/filler")).unlink()
        job = wait_for(
            lambda: (j := client.get(f"jobs/{job_id}").json())["status"] != "running" and j
        )
        assert job["status"] == "succeeded", job
        assert client.post("jobs", json={"command": ["true"]}).status_code == 201


def test_submit_on_a_full_volume_answers_503(volume, live_server_factory):
    server = live_server_factory()
    fill(volume)
    with server.api() as client:
        refused = client.post("jobs", json={"command": ["true"]})
    assert refused.status_code == 503, refused.text
    assert refused.json()["message"] == VOLUME_FULL


def test_read_only_volume_answers_503(volume, live_server_factory):
    server = live_server_factory()
    runs = volume / "runs"
    mount("--bind", str(runs), str(runs))
    try:
        mount("-o", "remount,bind,ro", str(runs))
        with server.api() as client:
            refused = client.post("jobs", json={"command": ["true"]})
        assert refused.status_code == 503, refused.text
        assert refused.json()["message"] == VOLUME_READ_ONLY
    finally:
        unmount(runs)


def test_read_only_database_is_named(tmp_path):
    database = tmp_path / "ro.sqlite"
    sqlite3.connect(database).execute("create table t (x)").connection.commit()
    engine = create_engine(f"sqlite:///file:{database}?mode=ro&uri=true")
    with engine.connect() as connection, pytest.raises(OperationalError) as refused:
        connection.execute(text("insert into t values (1)"))
    assert storage_failure(refused.value) == VOLUME_READ_ONLY
    assert storage_failure(OSError(errno.ENOSPC, "No space left on device")) == VOLUME_FULL
    assert storage_failure(OSError(errno.EACCES, "Permission denied")) is None


def test_json_nested_100000_deep_answers_400(live_server):
    body = "[" * 100_000 + "]" * 100_000
    with live_server.api() as client:
        response = client.post("jobs", content=body)
        assert response.status_code == 400, response.text
        assert "nested deeper than 64" in response.json()["message"]
        nested = {"command": ["true"], "env": {}}
        for _ in range(70):
            nested = {"a": nested}
        response = client.post("jobs", content=json.dumps(nested))
        assert response.status_code == 400, response.text
