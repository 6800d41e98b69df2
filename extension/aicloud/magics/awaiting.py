"""Waiting cells that leave the kernel free, so the JobMonitor's Cancel button works.

A cell that blocks the kernel's thread also blocks the widget messages of its own monitor. A
cell that *awaits* does not: ipykernel dispatches comm messages while an async cell runs. So a
post input transformer rewrites each top-level ``%aicloud``/``%%aicloud`` call that follows a
job (``train``, ``attach``, ``run``, ``submit``) into ``await run_magic(...)``, which runs the
magic in a worker thread, with the cell's context so that its output lands in the cell, and
awaits it. A kernel interrupt cancels the await: the worker is told through :data:`INTERRUPT`
and detaches (or cancels the job, per ``%config AICloudMagics.on_interrupt``) as a blocking
cell would.
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

WAKE_SECONDS = 0.2
_RUNNER = "__import__('aicloud.magics.awaiting', fromlist=['run_magic']).run_magic"


def interrupted() -> bool:
    """Whether the cell this thread runs for was interrupted."""
    event = INTERRUPT.get()
    return event is not None and event.is_set()


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
    event = threading.Event()

    def call():
        INTERRUPT.set(event)
        return magic(line, cell) if kind == "cell" else magic(line)

    task = asyncio.ensure_future(asyncio.to_thread(call))
    try:
        await _finished(task)
    except asyncio.CancelledError:  # the kernel was interrupted: let the magic detach or cancel
        event.set()
        await _finished(task)
    return task.result()


async def _finished(task: asyncio.Future) -> None:
    """Wait for ``task`` without cancelling it, waking the loop every ``WAKE_SECONDS``: the
    kernel's SIGINT handler only cancels the cell when the loop next runs."""
    while not task.done():
        await asyncio.wait({task}, timeout=WAKE_SECONDS)


def _magic_call(node: ast.AST) -> ast.Call | None:
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


def _awaited(source: bytes, call: ast.Call) -> bytes:
    kind = "cell" if call.func.attr == "run_cell_magic" else "line"
    args = b", ".join(_segment(source, a) for a in call.args)
    return b"await " + _RUNNER.encode() + b"(" + repr(kind).encode() + b", " + args + b")"


def _offsets(source: bytes) -> list[int]:
    starts, at = [0], 0
    for line in source.splitlines(keepends=True):
        at += len(line)
        starts.append(at)
    return starts


def _span(source: bytes, node: ast.AST) -> tuple[int, int]:
    """Byte offsets of ``node`` in ``source`` (ast columns count UTF-8 bytes)."""
    starts = _offsets(source)
    return (
        starts[node.lineno - 1] + node.col_offset,
        starts[node.end_lineno - 1] + node.end_col_offset,
    )


def _segment(source: bytes, node: ast.AST) -> bytes:
    begin, end = _span(source, node)
    return source[begin:end]


def make_cells_await(lines: list[str]) -> list[str]:
    """Input transformer: top-level waiting ``%aicloud`` calls become awaited (see module).

    Only the calls' own text changes, so the rest of the cell keeps its lines and comments.
    """
    text = "".join(lines)
    if "aicloud" not in text:
        return lines
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return lines
    calls = [
        call
        for statement in tree.body
        if isinstance(statement, (ast.Expr, ast.Assign, ast.AnnAssign))
        and statement.value is not None
        and (call := _magic_call(statement.value)) is not None
    ]
    if not calls:
        return lines
    source = text.encode()
    for call in reversed(calls):
        begin, end = _span(source, call)
        source = source[:begin] + _awaited(source, call) + source[end:]
    return source.decode().splitlines(keepends=True)


def install(shell) -> None:
    """Add the transformer to a kernel's shell (terminal IPython keeps blocking cells)."""
    if getattr(shell, "kernel", None) is None:
        return
    if make_cells_await not in shell.input_transformers_post:
        shell.input_transformers_post.append(make_cells_await)


def transform_without_awaiting(shell, raw_cell: str) -> str:
    """``shell.transform_cell`` without this module's rewrite (for the session's history)."""
    cell = shell.input_transformer_manager.transform_cell(raw_cell)
    lines = cell.splitlines(keepends=True)
    for transform in shell.input_transformers_post:
        if transform is not make_cells_await:
            lines = transform(lines)
    return "".join(lines)
