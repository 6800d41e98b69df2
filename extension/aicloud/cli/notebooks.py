"""``aicloud run``, ``aicloud schedule ...`` and ``aicloud outputs``: notebooks and schedules."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from aicloud.cli.common import add_retry_flags, add_simple_commands, follow, given, outcome, show
from aicloud.cli.format import age, table
from aicloud.client import AICloudClient, APIError
from aicloud.notebooks import coerce_cli_value


def add_policy_flags(parser: argparse.ArgumentParser) -> None:
    """Flags of the job policy shared with ``submit``."""
    parser.add_argument("--name")
    parser.add_argument("--kernel", help="kernel to run in (default: the notebook's)")
    parser.add_argument("--cwd", help="working directory, relative to the server's root")
    add_retry_flags(parser)
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a notebook parameter; the value is converted to the parameter's type",
    )


def add_parsers(commands) -> None:
    """Register ``run``, ``outputs`` and ``schedule``."""
    run = commands.add_parser(
        "run",
        help="run a notebook as a job",
        description="Run a notebook with papermill as a job, wait, and show its outputs.",
    )
    run.add_argument("notebook", metavar="NOTEBOOK")
    add_policy_flags(run)
    run.add_argument("--no-wait", action="store_true", help="print the job id and return")
    run.add_argument("--download", metavar="DIR", help="save the outputs into DIR")
    run.add_argument("--json", action="store_true")

    outputs = commands.add_parser(
        "outputs",
        help="list or download a job's outputs",
        description="List a job's output files, or download them with --download DIR.",
    )
    outputs.add_argument("job_id", metavar="JOB")
    outputs.add_argument("--download", metavar="DIR")
    outputs.add_argument("--json", action="store_true")

    schedule = commands.add_parser(
        "schedule", help="create and manage schedules", description="Schedules of jobs."
    )
    actions = schedule.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        help="schedule a notebook (or, after --, a command)",
        description="Create a schedule. The target is a notebook, or a command after --.",
    )
    create.add_argument("--cron", required=True, help='five fields, e.g. "0 6 * * 1-5"')
    create.add_argument("--tz", default="UTC", help="IANA time zone, e.g. Europe/Berlin")
    create.add_argument("--start", help="ISO 8601 time with zone: first possible run")
    create.add_argument("--end", help="ISO 8601 time with zone: no runs after it")
    create.add_argument("--max-concurrent", type=int, dest="max_concurrent_runs")
    create.add_argument("--overlap", choices=["queue", "skip"])
    create.add_argument("--catch-up", choices=["none", "latest", "all"], dest="catch_up")
    create.add_argument("--keep-last", type=int)
    create.add_argument("--webhook", dest="webhook_url")
    create.add_argument(
        "--snapshot",
        action="store_true",
        default=None,
        help="run the notebook as it is now, not as it is at each run",
    )
    create.add_argument("--paused", action="store_true", default=None)
    add_policy_flags(create)
    create.add_argument("--json", action="store_true")
    create.add_argument("target", nargs="*", metavar="NOTEBOOK | -- COMMAND")

    add_simple_commands(actions, [("list", "list schedules")])
    add_simple_commands(
        actions,
        [
            ("show", "show one schedule"),
            ("pause", "pause a schedule"),
            ("resume", "resume a schedule (missed ticks are not fired)"),
            ("delete", "delete a schedule (its runs stay)"),
            ("runs", "show a schedule's runs"),
        ],
        "schedule_id",
        "SCHEDULE",
    )
    now = actions.add_parser(
        "run",
        help="run a schedule's job now",
        description="Run a schedule's job now, with parameter overrides.",
    )
    now.add_argument("schedule_id", metavar="SCHEDULE")
    now.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE")
    )
    now.add_argument("--json", action="store_true")


def typed_parameters(client: AICloudClient, notebook: str, pairs: list[list[str]]) -> dict:
    """``-p NAME VALUE`` pairs converted to the notebook's parameter types."""
    if not pairs:
        return {}
    known = {p["name"]: p["type"] for p in client.notebook_parameters(notebook)["parameters"]}
    values: dict[str, Any] = {}
    for name, raw in pairs:
        if name not in known:
            listing = ", ".join(f"{n} ({t})" for n, t in known.items()) or "none"
            raise APIError(400, f"parameters: unknown parameter {name!r}; known: {listing}")
        try:
            values[name] = coerce_cli_value(raw, known[name])
        except ValueError as e:
            raise APIError(400, f"parameters.{name}: {e}") from None
    return values


def _policy(args: argparse.Namespace) -> dict[str, Any]:
    keys = (
        "name",
        "kernel",
        "cwd",
        "timeout_seconds",
        "max_retries",
        "min_retry_interval_millis",
        "retry_on_timeout",
    )
    return given(args, keys)


def notebook_job(client: AICloudClient, args: argparse.Namespace, notebook: str) -> dict:
    """The job spec of a notebook run."""
    spec = {"kind": "notebook", "notebook": notebook, **_policy(args)}
    parameters = typed_parameters(client, notebook, args.parameter)
    if parameters:
        spec["parameters"] = parameters
    return spec


def download(client: AICloudClient, job_id: str, folder: str) -> list[Path]:
    """Save every output of a job into ``folder``."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    saved = []
    for output in client.outputs(job_id):
        path = target / output["name"]
        path.write_bytes(client.download(job_id, output["name"]))
        saved.append(path)
    return saved


def schedules_table(schedules: list[dict]) -> str:
    """One line per schedule."""
    rows = [
        [
            s["id"],
            s["name"] or "-",
            s["cron"],
            s["timezone"],
            "paused" if s["paused"] else (s["next_tick_at"] or "-"),
            str(s["missed_ticks"]),
        ]
        for s in schedules
    ]
    return table(rows, ["ID", "NAME", "CRON", "TZ", "NEXT", "MISSED"])


def run_command(args: argparse.Namespace, client: AICloudClient) -> int:
    """Carry out ``run``, ``outputs`` or ``schedule ...``."""
    if args.command == "run":
        job = client.submit(notebook_job(client, args, args.notebook))
        if args.no_wait:
            show(job, args.json, job["id"])
            return 0
        print(f"aicloud: job {job['id']} running {args.notebook}", file=sys.stderr)
        follow(client, job["id"])
        job = client.wait(job["id"])
        for output in client.outputs(job["id"]):
            print(
                f"aicloud: output {output['name']} ({output['size']} bytes): "
                f"aicloud outputs {job['id']} --download DIR",
                file=sys.stderr,
            )
        if args.download:
            for path in download(client, job["id"], args.download):
                print(f"aicloud: saved {path}", file=sys.stderr)
        if args.json:
            show(job, True, "")
        return outcome(job)
    if args.command == "outputs":
        if args.download:
            saved = download(client, args.job_id, args.download)
            show([str(p) for p in saved], args.json, "\n".join(map(str, saved)))
            return 0
        outputs = client.outputs(args.job_id)
        text = table([[o["name"], str(o["size"])] for o in outputs], ["NAME", "BYTES"])
        show(outputs, args.json, text)
        return 0
    return schedule_command(args, client)


def schedule_command(args: argparse.Namespace, client: AICloudClient) -> int:
    """Carry out ``schedule ACTION``."""
    action = args.action
    if action == "create":
        target = args.target
        if not target:
            raise APIError(400, "target: give a notebook, or a command after --")
        if len(target) == 1 and target[0].endswith(".ipynb"):
            job = notebook_job(client, args, target[0])
        else:
            if args.parameter:
                raise APIError(400, "parameters: only notebook jobs take parameters")
            job = {"command": target, **{k: v for k, v in _policy(args).items() if k != "kernel"}}
        spec = {"job": job, "cron": args.cron, "timezone": args.tz}
        spec.update(
            given(
                args,
                (
                    "max_concurrent_runs",
                    "overlap",
                    "catch_up",
                    "keep_last",
                    "webhook_url",
                    "snapshot",
                    "paused",
                ),
            )
        )
        if args.start:
            spec["start_at"] = args.start
        if args.end:
            spec["end_at"] = args.end
        if args.name:
            spec["name"] = args.name
        schedule = client.create_schedule(spec)
        show(schedule, args.json, f"{schedule['id']} next run {schedule['next_tick_at']}")
        return 0
    if action == "list":
        page = client.schedules()
        show(page, args.json, schedules_table(page["schedules"]))
        return 0
    if action == "show":
        schedule = client.schedule(args.schedule_id)
        text = "\n".join(f"{k + ':':<20}{v}" for k, v in schedule.items() if k != "job")
        show(schedule, args.json, text + f"\n{'job:':<20}{json.dumps(schedule['job'])}")
        return 0
    if action in ("pause", "resume"):
        schedule = client.update_schedule(args.schedule_id, {"paused": action == "pause"})
        state = "paused" if schedule["paused"] else f"next run {schedule['next_tick_at']}"
        show(schedule, args.json, f"{schedule['id']} {state}")
        return 0
    if action == "delete":
        client.delete_schedule(args.schedule_id)
        show({"id": args.schedule_id, "deleted": True}, args.json, f"{args.schedule_id} deleted")
        return 0
    if action == "run":
        schedule = client.schedule(args.schedule_id)
        notebook = schedule["job"].get("notebook")
        parameters = typed_parameters(client, notebook, args.parameter) if notebook else {}
        if args.parameter and not notebook:
            raise APIError(400, "parameters: only notebook jobs take parameters")
        job = client.run_schedule(args.schedule_id, parameters)
        show(job, args.json, job["id"])
        return 0
    page = client.schedule_runs(args.schedule_id)
    rows = [
        [
            j["id"],
            j["scheduled_for"] or "(run now)",
            j["status"],
            age(j["created_at"]),
            (j["reason"] or "")[:50] + (" [pruned]" if j["pruned"] else ""),
        ]
        for j in page["jobs"]
    ]
    show(page, args.json, table(rows, ["ID", "TICK", "STATUS", "AGE", "REASON"]))
    return 0
