"""The ``%aicloud`` magics: ``%load_ext aicloud``, then ``%aicloud --help``.

Subcommands live in small modules that register themselves in :mod:`aicloud.magics.registry`;
a new family (inference: serve, predict) adds its module to ``SUBCOMMAND_MODULES``.
"""

from __future__ import annotations

import importlib

SUBCOMMAND_MODULES = [
    "aicloud.magics.commands",
    "aicloud.magics.cli_commands",
    "aicloud.magics.train",
    "aicloud.magics.inference",
]


def _register_subcommands() -> None:
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name)


def load_ipython_extension(ipython) -> None:
    """Register ``%aicloud``/``%%aicloud`` and make their settings reachable by ``%config``."""
    from aicloud.magics import awaiting
    from aicloud.magics.core import AICloudMagics

    _register_subcommands()
    awaiting.install(ipython)
    magics = AICloudMagics(shell=ipython)
    ipython.register_magics(magics)
    if magics not in ipython.configurables:
        ipython.configurables.append(magics)


def magics_for():
    """The magics of the running IPython (loading them if needed), or a shell-less instance."""
    from aicloud.magics.core import AICloudMagics

    _register_subcommands()
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        get_ipython = None
    shell = get_ipython() if get_ipython else None
    if shell is None:
        return AICloudMagics(shell=None)
    for item in shell.configurables:
        if isinstance(item, AICloudMagics):
            return item
    load_ipython_extension(shell)
    return magics_for()


__all__ = ["load_ipython_extension", "magics_for"]
