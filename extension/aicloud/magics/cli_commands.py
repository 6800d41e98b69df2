"""``submit``, ``run`` and ``schedule``: the CLI's own flags and spec building, as magics.

The CLI's parser is built with IPython's ``MagicArgumentParser`` (errors raise instead of
exiting), so a flag means the same in a terminal and in a cell.
"""

from __future__ import annotations

import argparse
import html
import json
import os
from functools import cache, update_wrapper
from urllib.parse import quote

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser
from IPython.utils.process import arg_split

from aicloud.cli import notebooks as cli_notebooks
from aicloud.cli.main import build_parser, spec_from_args
from aicloud.magics.context import origin
from aicloud.magics.errors import MagicError
from aicloud.magics.registry import subcommand

SCHEDULE_ACTIONS = ("create", "list", "show", "pause", "resume", "delete", "runs", "run")


@cache
def cli_parser() -> argparse.ArgumentParser:
    """The ``aicloud`` CLI's parser, raising ``UsageError`` on bad flags."""
    return build_parser(MagicArgumentParser, prog="%aicloud")


def cli_subparser(*names: str) -> argparse.ArgumentParser:
    """The parser of ``aicloud NAME [ACTION]`` (whose help ``--help`` prints)."""
    parser = cli_parser()
    for name in names:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def parse_cli(words: list[str]) -> argparse.Namespace:
    """Parse with the CLI's parser; bad flags are one line naming the subcommand."""
    try:
        return cli_parser().parse_args(words)
    except UsageError as e:
        raise MagicError(f"{' '.join(words[:1])}: {e}") from None


def cli_subcommand(name: str, help: str):
    """Register ``%aicloud NAME`` with the parser of ``aicloud NAME``: the decorated function
    is called as ``func(magics, args)`` with the line parsed as the CLI would parse it."""

    def decorate(func):
        def run(magics, line):
            return func(magics, parse_cli([name, *arg_split(line, posix=True)]))

        update_wrapper(run, func)
        subcommand(name, help, parser=lambda: cli_subparser(name))(run)
        return func

    return decorate


def submit_here(magics, spec: dict) -> dict:
    """Submit ``spec`` as a job launched from this cell (its ``origin``: notebook and cell)."""
    if (found := origin(magics.shell)) is not None:
        spec["origin"] = found
    return magics.call("submit", spec)


@cli_subcommand("submit", "start a job with the CLI's flags (aicloud submit)")
def submit(magics, args):
    """``%aicloud submit [flags] -- COMMAND``: like ``aicloud submit``, linked to this cell."""
    if not args.module and not [a for a in args.argv if a != "--"]:
        raise MagicError("submit: nothing to run; give a command after --")
    job = submit_here(magics, spec_from_args(args))
    magics.remember(job["id"])
    if args.follow or args.wait:
        print(f"aicloud: job {job['id']} submitted")
        job = magics.watch(job["id"])
        if job is None:
            return None
    if args.json:
        print(json.dumps(job, indent=2))
    else:
        print(job["id"] if not (args.follow or args.wait) else f"{job['id']} {job['status']}")
    return None


@cli_subcommand("run", "run a notebook as a job (-p NAME VALUE), wait, and link its outputs")
def run(magics, args):
    """``%aicloud run NOTEBOOK -p k v``: a papermill job; its log streams, then its outputs."""
    job = submit_here(magics, cli_notebooks.notebook_job(magics.client, args, args.notebook))
    print(f"aicloud: job {job['id']} running {args.notebook}")
    if args.no_wait:
        return magics.watch(job["id"], wait=False)
    job = magics.watch(job["id"])
    if job is None:
        return None
    show_outputs(magics, job["id"], args.download)
    return None


def output_url(service_url: str, job_id: str, name: str, env=os.environ) -> str:
    """Where a browser opens a job's output: through the user's own server in a hub (its
    ``JUPYTERHUB_SERVICE_PREFIX``, which forwards to the service with the user's session),
    else through the server the client talks to."""
    path = f"aicloud/api/v1/jobs/{quote(job_id)}/outputs/{quote(name)}"
    prefix = env.get("JUPYTERHUB_SERVICE_PREFIX")
    if prefix:
        return "/" + prefix.strip("/") + "/" + path
    return service_url.rstrip("/") + "/" + path


def show_outputs(magics, job_id: str, folder: str | None) -> None:
    """Links to a job's outputs (HTML under a frontend, text always), optionally saved."""
    from IPython.display import HTML, display

    outputs = magics.call("outputs", job_id)
    links = []
    for output in outputs:
        url = output_url(magics.client.connection.url, job_id, output["name"])
        print(f"aicloud: output {output['name']} ({output['size']} bytes): {url}")
        links.append(
            f'<a href="{html.escape(url)}" target="_blank">{html.escape(output["name"])}</a>'
            f" ({output['size']} bytes)"
        )
    if links:
        display(HTML("aicloud outputs: " + ", ".join(links)))
    if folder:
        for path in cli_notebooks.download(magics.client, job_id, folder):
            print(f"aicloud: saved {path}")


@subcommand(
    "schedule",
    "schedule a notebook: NOTEBOOK --cron '0 6 * * 1-5' --tz Europe/Berlin",
    parser=lambda: cli_subparser("schedule", "create"),
)
def schedule(magics, line):
    """``%aicloud schedule NOTEBOOK --cron ... --tz ...``; also ``schedule list|show|...``."""
    words = arg_split(line, posix=True)
    if not words:
        raise MagicError(
            "schedule: give a notebook and --cron, or list, show, pause, resume, delete, runs"
        )
    if words[0] not in SCHEDULE_ACTIONS:
        words = ["create", *words]
    args = parse_cli(["schedule", *words])
    cli_notebooks.run_command(args, magics.client)
    return None
