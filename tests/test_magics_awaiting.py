"""Which cells become awaiting cells (``aicloud.magics.awaiting``), on a real IPython shell."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell

from aicloud.magics.awaiting import AwaitingCells

RUNNER = "await __import__('aicloud.magics.awaiting', fromlist=['run_magic']).run_magic"


@pytest.fixture
def rewrite():
    shell = InteractiveShell.instance()
    transformer = AwaitingCells(shell)

    def apply(cell: str) -> str:
        lines = shell.input_transformer_manager.transform_cell(cell).splitlines(keepends=True)
        return "".join(transformer(lines))

    apply.transformer, apply.shell = transformer, shell
    yield apply
    shell.events.unregister("pre_execute", transformer._enter)
    shell.events.unregister("post_execute", transformer._leave)


def test_waiting_magics_are_awaited(rewrite):
    cell = "%%aicloud train --procs 2\nprint('é', 1)  # ünïcode\n"
    assert rewrite(cell) == (
        f"{RUNNER}('cell', 'aicloud', 'train --procs 2', \"print('é', 1)  # ünïcode\\n\")\n"
    )
    assert rewrite("%aicloud attach {job}\nresult = %aicloud run nb.ipynb -p a 1\n") == (
        f"{RUNNER}('line', 'aicloud', 'attach {{job}}')\n"
        f"result = {RUNNER}('line', 'aicloud', 'run nb.ipynb -p a 1')\n"
    )


@pytest.mark.parametrize(
    "cell",
    [
        "%aicloud jobs",  # returns at once
        "%aicloud logs job-1 -f",  # follows, but has no monitor and no interrupt hook
        "%aicloud attach job-1\nimport time; time.sleep(5)",  # other code stays interruptible
        "for job in ['a']:\n    %aicloud attach {job}",  # not at the top
        "print('%aicloud attach x')",
        "%time %aicloud attach job-1",
    ],
)
def test_other_cells_are_left_alone(rewrite, cell):
    assert RUNNER not in rewrite(cell)


def test_nested_runs_and_other_runners_are_left_alone(rewrite):
    cell = "%aicloud attach job-1"
    assert RUNNER in rewrite(cell)
    rewrite.shell.events.trigger("pre_execute")  # a cell runs: %time, %%capture, run_cell...
    assert RUNNER not in rewrite(cell)
    rewrite.shell.events.trigger("post_execute")
    assert RUNNER in rewrite(cell)
    rewrite.shell.autoawait = False
    try:
        assert RUNNER not in rewrite(cell)
    finally:
        rewrite.shell.autoawait = True
