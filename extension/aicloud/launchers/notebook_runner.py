"""Runs one notebook job with papermill: ``python -m aicloud.launchers.notebook_runner``.

A fresh kernel per run. Cell outputs stream into the job's log as they happen, progress (cells
done of total, current cell) goes through :func:`aicloud.runtime.report`, and the output
notebook and its HTML copy land in the run's outputs folder. On failure the output notebook
keeps papermill's error cells, and the job's reason names the failing cell and the exception.

:func:`execute` and :func:`export_outputs` are shared with the warm runners of
:mod:`aicloud.launchers.notebook_pool`, which pass in a kernel that they started before the run
was asked for, and shut it down while the HTML is exported; the rest is the same code.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from pathlib import Path

from aicloud import runtime

ENGINE = "aicloud"


def progress_engine():
    """papermill's nbclient engine, reporting each cell's start and end."""
    from papermill.engines import NBClientEngine

    class ProgressEngine(NBClientEngine):
        """Reports progress as cells start and complete."""

        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            total = len(nb_man.nb.cells)
            state = {"done": 0}
            start, complete = nb_man.cell_start, nb_man.cell_complete

            def cell_start(cell, cell_index=None, **kw):
                start(cell, cell_index, **kw)
                note_current_cell(cell)
                runtime.report(step=state["done"], total=total, cell=cell_index)

            def cell_complete(cell, cell_index=None, **kw):
                complete(cell, cell_index, **kw)
                state["done"] += 1
                runtime.report(step=state["done"], total=total, cell=cell_index)

            nb_man.cell_start, nb_man.cell_complete = cell_start, cell_complete
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    return ProgressEngine


def note_current_cell(cell) -> None:
    """Write the id of the cell about to run where the kernel's magics look for it."""
    path = os.environ.get("AICLOUD_CELL_FILE")
    if path:  # a cell without an id (nbformat < 4.5) must not keep the last cell's
        partial = f"{path}.partial"
        Path(partial).write_text(cell.get("id") or "")
        os.replace(partial, path)


@functools.cache
def html_exporter():
    """One HTML exporter per process: its templates compile on first use (~1 s)."""
    from nbconvert import HTMLExporter

    return HTMLExporter()


def export_html(notebook_path: Path, html_path: Path) -> None:
    """An HTML copy of the executed notebook."""
    import nbformat

    body, _ = html_exporter().from_notebook_node(nbformat.read(notebook_path, as_version=4))
    html_path.write_text(body)


def warm_up() -> None:
    """Import papermill and compile the HTML templates now, so that a later run starts fast."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook
    from papermill.engines import papermill_engines

    papermill_engines.register(ENGINE, progress_engine())
    notebook = new_notebook(cells=[new_code_cell("1")])
    html_exporter().from_notebook_node(nbformat.from_dict(notebook))


def write_reason(text: str) -> None:
    """Tell the job service why this attempt failed (it becomes the job's reason)."""
    directory = runtime.run_dir()
    if directory is not None:
        attempt = os.environ.get("AICLOUD_ATTEMPT", "1")
        (directory / f"attempt-{attempt}.reason").write_text(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The runner's options (exits 2 with a usage message on bad ones, like any CLI)."""
    parser = argparse.ArgumentParser(prog="aicloud-notebook-runner")
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--html", required=True)
    parser.add_argument("--parameters", required=True, help="a JSON file")
    parser.add_argument("--kernel")
    parser.add_argument("--cwd", required=True)
    return parser.parse_args(argv)


def notebook_language(path: str, kernel: str | None) -> str | None:
    """The language papermill needs to inject parameters, when the notebook does not say it.

    papermill reads ``language_info`` or ``kernelspec.language``; a notebook written by a tool
    may have neither, so the language of the kernel that runs it is used.
    """
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    metadata = nbformat.read(path, as_version=4).metadata
    if metadata.get("language_info", {}).get("name") or metadata.get("kernelspec", {}).get(
        "language"
    ):
        return None
    name = kernel or metadata.get("kernelspec", {}).get("name")
    try:
        return KernelSpecManager().get_kernel_spec(name).language if name else None
    except NoSuchKernel:
        return None


def execute(args: argparse.Namespace, km=None) -> int:
    """Execute the notebook with papermill; 1 when a cell fails (the reason is written), else 0.

    Parameters
    ----------
    args
        The options of :func:`parse_args`.
    km
        A started ``AsyncKernelManager`` to run in (papermill hands it to nbclient, which then
        neither starts nor stops a kernel); None starts and stops a fresh kernel for this run.
    """
    import papermill
    from papermill.engines import papermill_engines
    from papermill.exceptions import PapermillExecutionError

    papermill_engines.register(ENGINE, progress_engine())
    parameters = json.loads(Path(args.parameters).read_text())
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    options = {} if km is None else {"km": km}
    if language := notebook_language(args.input, args.kernel):
        options["language"] = language
    try:
        papermill.execute_notebook(
            args.input,
            str(output),
            parameters=parameters,
            kernel_name=args.kernel,
            cwd=args.cwd,
            engine_name=ENGINE,
            progress_bar=False,
            stdout_file=sys.stdout,
            stderr_file=sys.stderr,
            **options,
        )
    except PapermillExecutionError as e:
        where = f"cell {e.exec_count}" if e.exec_count else f"cell #{e.cell_index}"
        write_reason(f"{where} raised {e.ename}: {e.evalue}")
        print(f"[aicloud] {where} raised {e.ename}: {e.evalue}", file=sys.stderr)
        return 1
    return 0


def export_outputs(args: argparse.Namespace) -> None:
    """The HTML copy of the output notebook, if there is one (also after a failed cell)."""
    output = Path(args.output)
    if output.exists():
        export_html(output, Path(args.html))


def run(args: argparse.Namespace) -> int:
    """Execute the notebook in a fresh kernel and export the HTML; the exit code."""
    code = execute(args)
    export_outputs(args)
    return code


def main(argv: list[str] | None = None) -> int:
    """Execute the notebook in a fresh kernel; exit 1 when a cell fails."""
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
