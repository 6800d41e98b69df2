"""``%%aicloud train``: run the cell's code unchanged on every worker, and watch it live."""

from __future__ import annotations

from IPython.core.magic_arguments import argument, magic_arguments

from aicloud.magics.commands import ranks_list
from aicloud.magics.context import origin
from aicloud.magics.errors import MagicError
from aicloud.magics.payload import KEY_ENV, PayloadError, kernel_key, pack
from aicloud.magics.registry import parse, subcommand
from aicloud.magics.script import build_script, check_cell


def names_list(text: str) -> list[str]:
    """``a,b``: variables to push."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    bad = [n for n in names if not n.isidentifier()]
    if not names or bad:
        raise ValueError(f"expected variable names like a,b, got {text!r}")
    return names


def pushed_payload(shell, names: list[str]) -> dict[str, str] | None:
    """The named variables, pickled and signed; a clear error for one that cannot travel."""
    if not names:
        return None
    import cloudpickle

    values = {}
    for name in names:
        if name not in shell.user_ns:
            raise MagicError(f"train: --push {name}: no such variable in this session")
        value = shell.user_ns[name]
        try:
            cloudpickle.dumps(value)
        except Exception as e:
            raise MagicError(
                f"train: --push {name}: a {type(value).__name__} cannot be pickled "
                f"({type(e).__name__}: {e}); create it inside the cell instead"
            ) from None
        values[name] = value
    try:
        return pack(values, kernel_key())
    except PayloadError as e:
        raise MagicError(f"train: --push {', '.join(names)}: {e}") from None


def earlier_cells(magics) -> list[str]:
    """The sources of the cells run before this one in the session (as IPython ran them)."""
    return magics.history.cells()


@subcommand("train", "run this cell on N workers (torch, tensorflow) and watch it live", cell=True)
@magic_arguments(name="%aicloud train")
@argument("--framework", choices=["torch", "tensorflow", "none"], default="torch")
@argument("--nodes", type=int, default=1, help="nodes (default 1)")
@argument("--procs", type=int, default=1, help="processes per node (default 1)")
@argument("--gpus", type=int, default=0, help="GPUs per node (default 0)")
@argument("--max-restarts", type=int, default=0, help="elastic restarts (torch)")
@argument("--name", help="a name for the job")
@argument("--timeout", type=int, metavar="SECONDS", help="stop the job after this long")
@argument("--cwd", help="workers' directory, relative to the server's root (default: the root)")
@argument(
    "--push", type=names_list, default=[], metavar="A,B", help="variables to send (cloudpickle)"
)
@argument("--ranks", type=ranks_list, help="only these ranks' output, e.g. 0 (default: all)")
@argument(
    "--wait", dest="wait", action="store_true", default=True, help="wait for the end (default)"
)
@argument(
    "--no-wait", dest="wait", action="store_false", help="return at once; follow in the background"
)
def train(magics, line, cell):
    """Run the cell on every worker: the cell, the session's preamble, and --push variables."""
    args = parse(train, line)
    for flag in ("nodes", "procs"):
        if getattr(args, flag) < 1:
            raise MagicError(f"train: --{flag} must be at least 1")
    world = args.nodes * args.procs
    if args.ranks and args.ranks[-1] >= world:
        raise MagicError(f"train: --ranks {args.ranks[-1]}: the job has ranks 0-{world - 1}")
    if args.framework == "none" and world != 1:
        raise MagicError("train: --framework none runs one process; use torch or tensorflow")
    check_cell(cell)
    payload = pushed_payload(magics.shell, args.push)
    found = origin(magics.shell)
    where = found["notebook"] if found else "an IPython session"
    if found and found.get("cell_id"):
        where += f" (cell {found['cell_id']})"
    script = build_script(cell, earlier_cells(magics), payload, args.push, where)
    spec = {
        "kind": "command" if args.framework == "none" else "train",
        "framework": args.framework,
        "source": script,
        "resources": {"nodes": args.nodes, "procs_per_node": args.procs},
        "max_restarts": args.max_restarts,
        "tags": ["cell"],
    }
    if args.gpus:
        spec["resources"].update(accelerator="nvidia.com/gpu", accelerator_count=args.gpus)
    for key, value in (("name", args.name), ("timeout_seconds", args.timeout), ("cwd", args.cwd)):
        if value is not None:
            spec[key] = value
    if payload is not None:
        spec["env"] = {KEY_ENV: kernel_key()}
    if found is not None:
        spec["origin"] = found
    job = magics.call("submit", spec)
    shape = f"{args.nodes} node{'s' * (args.nodes > 1)} x {args.procs} proc{'s' * (args.procs > 1)}"
    print(f"aicloud: job {job['id']} submitted ({args.framework}, {shape})")
    magics.watch(job["id"], args.ranks, wait=args.wait)
    return None
