"""``serve``, ``predict`` and ``infer``: the inference commands of the CLI, as magics.

Same flags as ``aicloud serve|predict|infer`` (the CLI's parser); failures are one line.
"""

from __future__ import annotations

from aicloud.cli import inference as cli_inference
from aicloud.magics.cli_commands import cli_subcommand
from aicloud.magics.errors import MagicError

#: ``(name, its line in the overview, an example)`` of each inference magic.
MAGICS = (
    (
        "serve",
        "serve a saved model over the Open Inference Protocol (v2): MODEL --name NAME",
        "``%aicloud serve model.pt2 --name churn``: a serve job; prints its endpoint.",
    ),
    (
        "predict",
        "call a served model: TARGET DATA (a file, or a JSON list of rows)",
        "``%aicloud predict churn data.npy``: the model's predictions.",
    ),
    (
        "infer",
        "score data files in a batch job: MODEL --data FILES --procs N [--wait]",
        "``%aicloud infer model.pt2 --data 'data/*.npy' --procs 4 --wait``.",
    ),
)


def _run(magics, name: str, args) -> None:
    from aicloud.inference.v2client import V2Error

    try:
        code = cli_inference.execute(args, magics.client)
    except (ValueError, LookupError, RuntimeError) as e:
        raise MagicError(f"{name}: {e.message if isinstance(e, V2Error) else e}") from None
    if code != 0:
        raise MagicError(f"{name}: the job did not succeed (see above)")


def _register(name: str, summary: str, example: str) -> None:
    def run(magics, args):
        _run(magics, name, args)

    run.__name__ = run.__qualname__ = name
    run.__doc__ = example
    cli_subcommand(name, summary)(run)


for _name, _summary, _example in MAGICS:
    _register(_name, _summary, _example)
