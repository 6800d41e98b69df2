"""The table of ``%aicloud`` subcommands: the place where new ones (serve, predict...) plug in.

A subcommand is a function ``run(magics, rest_of_line, cell)`` registered with
:func:`subcommand`. Its parser is IPython's ``magic_arguments`` (decorate the function) or any
``MagicArgumentParser`` returned by ``parser``; ``--help`` prints it. A module that adds
subcommands only needs to be imported by :mod:`aicloud.magics` (see ``SUBCOMMAND_MODULES``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser, parse_argstring
from IPython.utils.text import dedent

from aicloud.magics.errors import MagicError


@dataclass(frozen=True)
class Subcommand:
    """One ``%aicloud NAME``: ``cell`` ones are ``%%aicloud NAME`` cell magics."""

    name: str
    run: Callable[..., Any]
    help: str
    cell: bool = False
    parser: Callable[[], MagicArgumentParser] | None = None

    def argument_parser(self) -> MagicArgumentParser:
        """The parser whose help ``--help`` prints."""
        return self.parser() if self.parser else self.run.parser


SUBCOMMANDS: dict[str, Subcommand] = {}


def subcommand(name: str, help: str, cell: bool = False, parser=None):
    """Register the decorated function as ``%aicloud NAME`` (``%%aicloud NAME`` with ``cell``)."""

    def decorate(func):
        SUBCOMMANDS[name] = Subcommand(name, func, help, cell, parser)
        return func

    return decorate


def parse(func, line: str):
    """Parse ``line`` with a ``magic_arguments`` function's parser; errors are one line."""
    try:
        return parse_argstring(func, line)
    except UsageError as e:
        raise MagicError(f"{func.parser.prog.lstrip('%').split()[-1]}: {e}") from None


def wants_help(line: str) -> bool:
    """Whether the line asks for help (``-h`` or ``--help`` before any ``--``)."""
    words = line.split()
    words = words[: words.index("--")] if "--" in words else words
    return "-h" in words or "--help" in words


def overview() -> str:
    """The list of subcommands, for ``%aicloud`` and ``%aicloud --help``."""
    lines = ["Usage: %aicloud SUBCOMMAND [options]   (each takes --help)", ""]
    for sub in sorted(SUBCOMMANDS.values(), key=lambda s: (s.cell, s.name)):
        usage = f"%%aicloud {sub.name}" if sub.cell else f"%aicloud {sub.name}"
        lines.append(f"  {usage:<24} {dedent(sub.help)}")
    return "\n".join(lines)
