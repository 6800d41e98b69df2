"""``aicloud``: submit, list, show, logs, cancel, delete (each with ``--json`` and ``--help``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import httpx

from aicloud.cli import inference, notebooks
from aicloud.cli.common import (
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    add_retry_flags,
    add_simple_commands,
    follow,
    given,
    outcome,
    print_json,
    show,
)
from aicloud.cli.format import job_summary, jobs_table
from aicloud.client import AICloudClient, APIError, Connection, ServiceNotFound, discover
from aicloud.spec import Framework, JobKind, JobStatus


def _env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _nodes(text: str) -> tuple[int | None, int]:
    """``N`` or ``MIN:MAX`` (elastic)."""
    low, sep, high = text.partition(":")
    try:
        return (int(low) if sep else None), int(high if sep else low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or MIN:MAX, got {text!r}") from None


def build_parser(
    parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser, prog: str = "aicloud"
) -> argparse.ArgumentParser:
    """The argument parser of every subcommand.

    The magics pass IPython's ``MagicArgumentParser`` (errors raise instead of exiting) and
    ``prog="%aicloud"``, so that ``%aicloud submit`` takes exactly the CLI's flags.
    """
    parser = parser_class(prog=prog, description="Launch and follow aicloud jobs from a terminal.")
    parser.add_argument("--url", help="service URL (default: discovered; see docs)")
    parser.add_argument("--token", help="API token (default: discovered)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    submit = commands.add_parser(
        "submit",
        help="start a job",
        description="Start a job. For kind 'command', everything after -- is the command; "
        "for other kinds the first word is a script and the rest its arguments.",
    )
    submit.add_argument("--name")
    submit.add_argument("--kind", choices=[k.value for k in JobKind], default="command")
    submit.add_argument("--framework", choices=[f.value for f in Framework], default="none")
    submit.add_argument("--module", "-m", help="run a Python module instead of a script")
    submit.add_argument("--nodes", type=_nodes, help="nodes, or MIN:MAX for an elastic job")
    submit.add_argument("--procs-per-node", type=int)
    submit.add_argument("--gpus", type=int, help="accelerators per node")
    submit.add_argument("--accelerator", help="e.g. nvidia.com/gpu (default with --gpus)")
    submit.add_argument("--cpu", type=float)
    submit.add_argument("--memory")
    submit.add_argument("--profile")
    add_retry_flags(submit)
    submit.add_argument("--max-restarts", type=int)
    submit.add_argument("--idempotency-token")
    submit.add_argument(
        "--env", "-e", type=_env_pair, action="append", default=[], metavar="NAME=VALUE"
    )
    submit.add_argument("--tag", action="append", default=[])
    submit.add_argument("--cwd", help="working directory, relative to the server's root")
    submit.add_argument("--backend")
    submit.add_argument("--image")
    submit.add_argument(
        "--follow", "-f", action="store_true", help="follow the logs; exit with the job's outcome"
    )
    submit.add_argument("--wait", action="store_true", help="wait; exit with the job's outcome")
    submit.add_argument("--json", action="store_true", help="print the job as JSON")
    submit.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")

    listing = commands.add_parser("list", help="list jobs", description="List jobs, newest first.")
    listing.add_argument("--status", action="append", choices=[s.value for s in JobStatus])
    listing.add_argument("--kind", choices=[k.value for k in JobKind])
    listing.add_argument("--tag")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--offset", type=int, default=0)
    listing.add_argument("--json", action="store_true")

    add_simple_commands(
        commands,
        [
            ("show", "show one job"),
            ("cancel", "cancel a job"),
            ("delete", "delete a job that has ended"),
        ],
        "job_id",
        "JOB",
    )

    rerun = commands.add_parser(
        "rerun",
        help="start a job again",
        description="Start a new job with the spec of JOB, secret env values included.",
    )
    rerun.add_argument("job_id", metavar="JOB")
    rerun.add_argument(
        "--follow", "-f", action="store_true", help="follow the logs; exit with the job's outcome"
    )
    rerun.add_argument("--json", action="store_true", help="print the new job as JSON")

    logs = commands.add_parser("logs", help="print a job's log", description="Print a job's log.")
    logs.add_argument("job_id", metavar="JOB")
    logs.add_argument("--follow", "-f", action="store_true", help="stream until the job ends")
    logs.add_argument("--rank", type=int)
    logs.add_argument("--json", action="store_true", help="print {log, next_offset} as JSON")

    notebooks.add_parsers(commands)
    inference.add_parsers(commands)

    add_simple_commands(
        commands, [("status", "show the service"), ("resources", "show CPUs, memory, GPUs")]
    )
    return parser


def spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The job spec that ``aicloud submit`` sends."""
    argv = list(args.argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    spec: dict[str, Any] = {"kind": args.kind, "framework": args.framework}
    if args.module:
        spec.update(module=args.module, args=[a for a in argv if a != "--"])
    elif args.kind == "command":
        spec["command"] = argv
    elif argv:
        if args.kind == "notebook":
            spec["notebook"] = argv[0]
        else:
            spec["script"] = argv[0]
            spec["args"] = [a for i, a in enumerate(argv[1:]) if not (i == 0 and a == "--")]
    resources = given(args, ("procs_per_node", "cpu", "memory", "profile"))
    if args.nodes is not None:
        resources["min_nodes"], resources["nodes"] = args.nodes
        if resources["min_nodes"] is None:
            del resources["min_nodes"]
    if args.gpus is not None:
        resources["accelerator_count"] = args.gpus
        resources["accelerator"] = args.accelerator or "nvidia.com/gpu"
    elif args.accelerator:
        resources["accelerator"] = args.accelerator
    if resources:
        spec["resources"] = resources
    spec.update(
        given(
            args,
            (
                "name",
                "timeout_seconds",
                "max_retries",
                "min_retry_interval_millis",
                "retry_on_timeout",
                "max_restarts",
                "idempotency_token",
                "cwd",
                "backend",
                "image",
            ),
        )
    )
    if args.env:
        spec["env"] = dict(args.env)
    if args.tag:
        spec["tags"] = args.tag
    return spec


def _follow_to_the_end(client: AICloudClient, job: dict[str, Any]) -> int:
    """``--follow``: the new job's log until it ends, then its exit code."""
    print(f"aicloud: job {job['id']} submitted", file=sys.stderr)
    follow(client, job["id"])
    return outcome(client.wait(job["id"]))


def run(args: argparse.Namespace, client: AICloudClient) -> int:
    """Carry out one parsed command; return the exit code."""
    if args.command in ("run", "outputs", "schedule"):
        return notebooks.run_command(args, client)
    if args.command in inference.COMMANDS:
        return inference.run_command(args, client)
    if args.command == "submit":
        job = client.submit(spec_from_args(args))
        if args.follow:
            return _follow_to_the_end(client, job)
        if args.wait:
            job = client.wait(job["id"])
        show(job, args.json, job["id"])
        return outcome(job) if args.wait else 0
    if args.command == "list":
        page = client.list(
            status=args.status, kind=args.kind, tag=args.tag, limit=args.limit, offset=args.offset
        )
        show(page, args.json, jobs_table(page["jobs"]))
        if not args.json and page["next_offset"] is not None:
            print(f"... {page['total']} jobs; next page: --offset {page['next_offset']}")
        return 0
    if args.command == "show":
        job = client.get(args.job_id)
        show(job, args.json, job_summary(job))
        return 0
    if args.command == "cancel":
        job = client.cancel(args.job_id)
        show(job, args.json, f"{job['id']} {job['status']}")
        return 0
    if args.command == "rerun":
        job = client.rerun(args.job_id)
        if args.follow:
            return _follow_to_the_end(client, job)
        show(job, args.json, job["id"])
        return 0
    if args.command == "delete":
        client.delete(args.job_id)
        show({"id": args.job_id, "deleted": True}, args.json, f"{args.job_id} deleted")
        return 0
    if args.command == "logs":
        if args.follow:
            follow(client, args.job_id, args.rank)
            return 0
        chunks, offset = [], 0
        while True:  # the API answers at most 1 MiB at a time
            chunk, next_offset = client.logs(args.job_id, offset=offset, rank=args.rank)
            chunks.append(chunk)
            if next_offset == offset:
                break
            offset = next_offset
        data = b"".join(chunks)
        if args.json:
            print_json({"log": data.decode(errors="replace"), "next_offset": next_offset})
        else:
            sys.stdout.buffer.write(data)
        return 0
    model = client.status() if args.command == "status" else client.resources()
    if args.json or args.command == "resources":
        print_json(model)
    else:
        print(
            f"aicloud {model['version']} ({model['mode']}) at {client.connection.url}"
            f" for {model['user']}; backends: {', '.join(model['backends'])}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``aicloud`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "submit" and not args.module and not [a for a in args.argv if a != "--"]:
        parser.error("submit: nothing to run; give a command after --")
    try:
        if args.url:
            connection = Connection(args.url, args.token or "", "--url")
        else:
            connection = discover()
            if args.token:
                connection = Connection(connection.url, args.token, connection.source)
        with AICloudClient(connection) as client:
            return run(args, client)
    except APIError as e:
        print(f"aicloud: error: {e.message} (HTTP {e.status})", file=sys.stderr)
        return EXIT_FAILED
    except ServiceNotFound as e:
        print(f"aicloud: {e}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except httpx.TransportError as e:
        print(f"aicloud: cannot reach the service: {e}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `aicloud logs JOB | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
