"""The line subcommands: status, resources, jobs, logs, cancel, rerun, attach, show."""

from __future__ import annotations

import sys

from IPython.core.magic_arguments import argument, magic_arguments

from aicloud.cli.format import job_summary, jobs_table
from aicloud.magics.context import notebook_path
from aicloud.magics.errors import MagicError
from aicloud.magics.registry import parse, subcommand
from aicloud.magics.script import shown

ACTIVE = ["queued", "starting", "running"]


def ranks_list(text: str) -> list[int]:
    """``0`` or ``0,2``: the ranks whose output a cell shows."""
    try:
        ranks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"expected rank numbers like 0 or 0,1, got {text!r}") from None
    if not ranks or ranks[0] < 0:
        raise ValueError(f"expected rank numbers like 0 or 0,1, got {text!r}")
    return ranks


def accelerators(resources: dict) -> str:
    """``2 x nvidia.com/gpu (A100)``, a TPU, or ``none``."""
    gpus = resources.get("gpus") or []
    parts = []
    if gpus:
        models = sorted({g.get("model") or "?" for g in gpus})
        parts.append(f"{len(gpus)} x nvidia.com/gpu ({', '.join(models)})")
    if resources.get("tpu"):
        kind = resources["tpu"].get("env", {}).get("TPU_ACCELERATOR_TYPE", "present")
        parts.append(f"google.com/tpu ({kind})")
    return "; ".join(parts) or "none"


@subcommand("status", "the service, its backends and this machine's accelerators")
@magic_arguments(name="aicloud status")
def status(magics, line):
    """Show the service this kernel talks to."""
    parse(status, line)
    model = magics.call("status")
    resources = magics.call("resources")
    print(
        f"aicloud {model['version']} ({model['mode']}) at {magics.client.connection.url} "
        f"for {model['user']}; found via {magics.client.connection.source}\n"
        f"backends: {', '.join(model['backends'])}\n"
        f"accelerators: {accelerators(resources)}"
    )


@subcommand("resources", "CPUs, memory and accelerators, and what each backend offers")
@magic_arguments(name="aicloud resources")
def resources(magics, line):
    """Show what jobs can use."""
    parse(resources, line)
    model = magics.call("resources")
    memory = model["memory"]
    lines = [
        f"cpu: {model['cpu']['usable']} usable of {model['cpu']['cores']} cores",
        f"memory: {memory['available_bytes'] / 2**30:.1f} GiB free of "
        f"{memory['total_bytes'] / 2**30:.1f} GiB",
        f"accelerators: {accelerators(model)}",
    ]
    for gpu in model.get("gpus") or []:
        lines.append(
            f"  gpu {gpu['index']}: {gpu.get('model')} {gpu.get('memory_bytes', 0) / 2**30:.0f} GiB"
        )
    for backend in model.get("backends", []):
        lines.append(f"backend {backend.get('name')}: {backend}")
    print("\n".join(lines))


@subcommand("jobs", "list jobs: active ones, --all, or --here (launched from this notebook)")
@magic_arguments(name="aicloud jobs")
@argument("--all", action="store_true", help="ended jobs too (newest first)")
@argument("--here", action="store_true", help="only jobs launched from this notebook")
@argument("--limit", type=int, default=50, help="at most this many (default 50)")
def jobs(magics, line):
    """List jobs."""
    args = parse(jobs, line)
    filters = {"limit": args.limit}
    if not args.all:
        filters["status"] = ACTIVE
    if args.here:
        path = notebook_path(magics.shell)
        if path is None:
            raise MagicError(
                "jobs --here: this kernel does not know its notebook (JPY_SESSION_NAME is unset)"
            )
        filters["notebook"] = path
    page = magics.call("list", **filters)
    if not page["jobs"]:
        what = "jobs" if args.all else "active jobs (--all shows ended ones)"
        print(f"no {what}" + (" launched from this notebook" if args.here else ""))
        return
    print(jobs_table(page["jobs"]))


@subcommand("logs", "print a job's log, or follow it with -f")
@magic_arguments(name="aicloud logs")
@argument("job_id", metavar="JOB")
@argument("-f", "--follow", action="store_true", help="stream until the job ends")
@argument("--rank", type=int, help="only this rank's lines")
def logs(magics, line):
    """Print a job's log."""
    args = parse(logs, line)
    if args.follow:
        try:
            for chunk in magics.call("follow_logs", args.job_id, rank=args.rank):
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
        except KeyboardInterrupt:
            print(f"\naicloud: stopped following job {args.job_id}; it keeps running")
        return
    offset = 0
    while True:  # the API answers at most 1 MiB at a time
        data, next_offset = magics.call("logs", args.job_id, offset=offset, rank=args.rank)
        sys.stdout.write(data.decode(errors="replace"))
        if next_offset == offset:
            break
        offset = next_offset
    sys.stdout.flush()


@subcommand("cancel", "cancel a job")
@magic_arguments(name="aicloud cancel")
@argument("job_id", metavar="JOB")
def cancel(magics, line):
    """Cancel a job; returns once nothing of it runs."""
    args = parse(cancel, line)
    job = magics.call("cancel", args.job_id)
    print(f"{job['id']} {job['status']}")


@subcommand("rerun", "start a job again, secret env values included")
@magic_arguments(name="aicloud rerun")
@argument("job_id", metavar="JOB")
def rerun(magics, line):
    """Start a new job with the spec of JOB (the service keeps its secret values)."""
    args = parse(rerun, line)
    job = magics.call("rerun", args.job_id)
    magics.remember(job["id"])
    print(job["id"])


@subcommand("attach", "follow a job again (after a kernel restart, say): output, progress, cancel")
@magic_arguments(name="aicloud attach")
@argument("job_id", metavar="JOB")
@argument("--ranks", type=ranks_list, help="only these ranks' output, e.g. 0 or 0,1")
@argument("--no-wait", dest="wait", action="store_false", help="follow in the background")
def attach(magics, line):
    """Re-attach to a job: its whole log so far, then live output and progress."""
    args = parse(attach, line)
    job = magics.call("get", args.job_id)
    where = (job["spec"].get("origin") or {}).get("notebook")
    print(
        f"aicloud: attached to job {job['id']} ({job['status']})"
        + (f" from {where}" if where else "")
    )
    return _result(magics.watch(job["id"], args.ranks, wait=args.wait))


@subcommand("show", "show one job, or with --script the script its workers run")
@magic_arguments(name="aicloud show")
@argument("job_id", metavar="JOB")
@argument("--script", action="store_true", help="the generated script (%%aicloud train jobs)")
def show(magics, line):
    """Show a job."""
    args = parse(show, line)
    job = magics.call("get", args.job_id)
    if args.script:
        source = job["spec"].get("source")
        if source is None:
            raise MagicError(f"show: job {job['id']} runs no inline script (it is not a cell job)")
        print(shown(source), end="")
        return
    origin = job["spec"].get("origin")
    text = job_summary(job)
    if origin:
        text += f"\norigin:    {origin['notebook']}" + (
            f" (cell {origin['cell_id']})" if origin.get("cell_id") else ""
        )
    print(text)


def _result(job):
    """Nothing to echo in the cell's result (the monitor and the log said it all)."""
    return None
