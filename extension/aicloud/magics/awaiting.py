"""Waiting cells that leave the kernel free, so the JobMonitor's Cancel button works.

A cell that blocks the kernel's thread also blocks the widget messages of its own monitor. A
cell that *awaits* does not: ipykernel dispatches comm messages while an async cell runs. So a
post input transformer rewrites a cell made only of ``%aicloud``/``%%aicloud`` calls that follow
a job (``train``, ``attach``, ``run``, ``submit``) into ``await run_magic(...)``, which runs the
magic in a worker thread, with the cell's context so that its output lands in the cell, and
awaits it. A kernel interrupt cancels the await: the worker is told through :data:`INTERRUPT`
and detaches (or cancels the job, per ``%config AICloudMagics.on_interrupt``) as a blocking
cell would.

The rewrite is left out, and the magic blocks as before, where an await would change more
than the wait:

- a cell with other code in it (an awaiting cell's blocking code cannot be interrupted);
- a cell run from inside another one (``%time``, ``%%capture``, ``%run``, ``run_cell``);
- without IPython's asyncio ``autoawait`` (``%autoawait False`` or ``trio``), or outside a
  kernel (terminal IPython).
"""

from __future__ import annotations

import ast
import asyncio
import contextvars
import threading

#: Subcommands that follow a job until it ends; other ones return quickly and stay synchronous.
WAITING_SUBCOMMANDS = frozenset({"train", "attach", "run", "submit"})

#: Set when the kernel interrupts the cell a worker thread runs for.
INTERRUPT: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "aicloud_interrupt", default=None
)

#: ipykernel's SIGINT handler resolves a future without waking the event loop, so the await
#: wakes up this often to let the interrupt through.
WAKE_SECONDS = 0.2
_RUNNER = "__import__('aicloud.magics.awaiting', fromlist=['run_magic']).run_magic"


def interrupted() -> bool:
    """Whether the cell this thread runs for was interrupted."""
    event = INTERRUPT.get()
    return event is not None and event.is_set()


async def in_thread(call):
    """``call()`` in a worker thread, with this context (the cell's output goes to the cell),
    awaited so that the kernel goes on handling widget messages. A kernel interrupt sets
    :data:`INTERRUPT` for the thread, which detaches or cancels and ends soon after."""
    event = threading.Event()

    def run():
        INTERRUPT.set(event)
        return call()

    task = asyncio.ensure_future(asyncio.to_thread(run))
    while not task.done():
        try:
            await asyncio.wait({task}, timeout=WAKE_SECONDS)  # never cancels the task
        except asyncio.CancelledError:  # interrupted: the thread detaches or cancels, then ends
            event.set()
            if (current := asyncio.current_task()) is not None:
                current.uncancel()
    return task.result()


async def run_magic(kind: str, name: str, line: str, cell: str | None = None):
    """Run ``%name line`` (``%%name line`` with ``cell``) in a thread and await its result.

    ``{variables}`` in the line are expanded here, in the cell's frame, as IPython would.
    """
    from IPython import get_ipython
    from IPython.core.magic import MAGIC_NO_VAR_EXPAND_ATTR

    shell = get_ipython()
    magic = shell.find_cell_magic(name) if kind == "cell" else shell.find_line_magic(name)
    if not getattr(magic, MAGIC_NO_VAR_EXPAND_ATTR, False):
        line = shell.var_expand(line, depth=1)
    return await in_thread(lambda: magic(line, cell) if kind == "cell" else magic(line))


def _offsets(source: bytes) -> list[int]:
    starts, at = [0], 0
    for line in source.splitlines(keepends=True):
        at += len(line)
        starts.append(at)
    return starts


def _span(starts: list[int], node: ast.AST) -> tuple[int, int]:
    """Byte offsets of ``node`` (ast columns count UTF-8 bytes)."""
    return (
        starts[node.lineno - 1] + node.col_offset,
        starts[node.end_lineno - 1] + node.end_col_offset,
    )


def _magic_call(node: ast.AST | None) -> ast.Call | None:
    """The ``get_ipython().run_{line,cell}_magic('aicloud', ...)`` call ``node`` is, if any."""
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("run_line_magic", "run_cell_magic")
        and isinstance(node.func.value, ast.Call)
        and isinstance(node.func.value.func, ast.Name)
        and node.func.value.func.id == "get_ipython"
        and len(node.args) >= 2
        and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args)
        and not node.keywords
    ):
        return None
    name, line = node.args[0].value, node.args[1].value
    if node.func.attr == "run_cell_magic" and (len(node.args) < 3 or not node.args[2].value):
        return None  # IPython's own call says that an empty cell needs the line magic
    if name != "aicloud" or line.strip().split(" ", 1)[0] not in WAITING_SUBCOMMANDS:
        return None
    return node


def waiting_calls(tree: ast.Module) -> list[ast.Call]:
    """The cell's waiting ``%aicloud`` calls if it holds nothing else (else none)."""
    calls = []
    for statement in tree.body:
        if not isinstance(statement, (ast.Expr, ast.Assign, ast.AnnAssign)):
            return []
        call = _magic_call(statement.value)
        if call is None:
            return []
        calls.append(call)
    return calls


class AwaitingCells:
    """The post input transformer (see the module); knows whether a cell is running."""

    def __init__(self, shell):
        self.shell = shell
        self.depth = 0  # cells executing now: a transform inside one is a nested run
        shell.events.register("pre_execute", self._enter)
        shell.events.register("post_execute", self._leave)

    def _enter(self) -> None:
        self.depth += 1

    def _leave(self) -> None:
        self.depth = max(0, self.depth - 1)

    def applies(self) -> bool:
        """Whether a cell transformed now runs at the top of ipykernel's asyncio loop."""
        from IPython.core.interactiveshell import _asyncio_runner

        return (
            self.depth == 0 and self.shell.autoawait and self.shell.loop_runner is _asyncio_runner
        )

    def __call__(self, lines: list[str]) -> list[str]:
        text = "".join(lines)
        if "aicloud" not in text or not self.applies():
            return lines
        try:
            tree = ast.parse(text)
        except SyntaxError:
            return lines
        calls = waiting_calls(tree)
        if not calls:
            return lines
        source = text.encode()
        starts = _offsets(source)
        for call in reversed(calls):
            begin, end = _span(starts, call)
            kind = "cell" if call.func.attr == "run_cell_magic" else "line"
            args = b", ".join(source[slice(*_span(starts, a))] for a in call.args)
            awaited = f"await {_RUNNER}({kind!r}, ".encode() + args + b")"
            source = source[:begin] + awaited + source[end:]
        return source.decode().splitlines(keepends=True)


def install(shell) -> None:
    """Add the transformer to a kernel's shell (terminal IPython keeps blocking cells)."""
    if getattr(shell, "kernel", None) is None:
        return
    if not any(isinstance(t, AwaitingCells) for t in shell.input_transformers_post):
        shell.input_transformers_post.append(AwaitingCells(shell))


def transform_without_awaiting(shell, raw_cell: str) -> str:
    """``shell.transform_cell`` without this module's rewrite (for the session's history)."""
    cell = shell.input_transformer_manager.transform_cell(raw_cell)
    lines = cell.splitlines(keepends=True)
    for transform in shell.input_transformers_post:
        if not isinstance(transform, AwaitingCells):
            lines = transform(lines)
    return "".join(lines)
