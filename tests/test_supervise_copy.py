"""The supervisor's rank prefixing: every line behind its prefix, nothing lost, bounded work."""

from __future__ import annotations

import os
import threading

from aicloud.backends import supervise


def copy(chunks: list[bytes], tmp_path) -> bytes:
    """Write ``chunks`` into a pipe as a worker would; what the log holds afterwards."""
    read_fd, write_fd = os.pipe()
    log_path = tmp_path / "log"
    with open(read_fd, "rb", buffering=0) as stream, open(log_path, "ab", buffering=0) as log:
        copier = threading.Thread(target=supervise._copy_with_prefix, args=(stream, log, b"[r1]:"))
        copier.start()
        for chunk in chunks:
            os.write(write_fd, chunk)
        os.close(write_fd)
        copier.join(timeout=30)
    return log_path.read_bytes()


def test_lines_and_a_last_line_without_newline(tmp_path):
    log = copy([b"one\ntw", b"o\n", b"three"], tmp_path)
    assert log == b"[r1]:one\n[r1]:two\n[r1]:three\n"


def test_a_long_line_without_newline_is_cut_not_lost(tmp_path):
    bar = b"\r" + b"#" * 99  # a progress bar redrawn 3,000 times: 300 KB, no newline
    log = copy([bar] * 3000 + [b"\ndone\n"], tmp_path)
    lines = log.split(b"\n")[:-1]
    assert all(line.startswith(b"[r1]:") for line in lines)
    assert b"".join(line.removeprefix(b"[r1]:") for line in lines) == bar * 3000 + b"done"
    assert len(lines) <= 2 + len(bar * 3000) // supervise.COPY_CHUNK
