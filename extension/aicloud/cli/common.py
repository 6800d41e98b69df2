"""What the subcommand modules share: flags, spec fields from flags, output, exit codes.

:mod:`aicloud.cli.main` and the subcommand modules (:mod:`~aicloud.cli.notebooks`,
:mod:`~aicloud.cli.inference`) import this module; it imports none of them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from typing import Any

from aicloud.client import AICloudClient

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


def add_retry_flags(parser: argparse.ArgumentParser) -> None:
    """The time limit and retry flags of a job (``submit``, ``run``, ``schedule create``)."""
    parser.add_argument("--timeout", type=int, dest="timeout_seconds", metavar="SECONDS")
    parser.add_argument("--max-retries", type=int)
    parser.add_argument("--retry-interval-ms", type=int, dest="min_retry_interval_millis")
    parser.add_argument("--retry-on-timeout", action="store_true", default=None)


def add_simple_commands(
    commands, texts: Iterable[tuple[str, str]], dest: str | None = None, metavar: str | None = None
) -> None:
    """``NAME [ID] [--json]`` for each ``(NAME, help)``; the help, as a sentence, describes it."""
    for name, text in texts:
        sub = commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        if dest:
            sub.add_argument(dest, metavar=metavar)
        sub.add_argument("--json", action="store_true")


def given(args: argparse.Namespace, keys: Iterable[str]) -> dict[str, Any]:
    """The flags among ``keys`` that were given (not None), by name."""
    return {key: getattr(args, key) for key in keys if getattr(args, key) is not None}


def print_json(model: Any) -> None:
    """Print an API model as indented JSON."""
    print(json.dumps(model, indent=2))


def show(model: Any, as_json: bool, text: str) -> None:
    """Print ``model`` as JSON with ``--json``, else ``text``."""
    print_json(model) if as_json else print(text)


def follow(client: AICloudClient, job_id: str, rank: int | None = None) -> None:
    """Stream a job's log to stdout until the job ends."""
    out = sys.stdout.buffer
    for chunk in client.follow_logs(job_id, rank=rank):
        out.write(chunk)
        out.flush()


def outcome(job: dict[str, Any]) -> int:
    """The exit code of an ended job; a failure is also a line on stderr."""
    if job["status"] != "succeeded":
        print(f"aicloud: job {job['id']} {job['status']}: {job['reason']}", file=sys.stderr)
        return EXIT_FAILED
    return 0
