"""Notebook parameters: discovered with papermill's inspection, typed, checked before a run.

A parameter's type comes from its annotation in the ``parameters`` cell (``days: int = 7``),
else from its default's literal (``region = "eu"`` is a str). Values arrive as JSON, so a str
parameter takes ``"eu"`` as is: nobody quotes Python expressions by hand.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aicloud.errors import InvalidSpec

if TYPE_CHECKING:  # nbformat's import builds JSON-schema parsers (~1.5 s): the CLI waits less
    import nbformat

TYPES = {"int": int, "float": float, "bool": bool, "str": str, "list": list, "dict": dict}
MAX_NOTEBOOK_BYTES = 50 * 2**20


def resolve_notebook(root: Path, cwd: Path, path: str, field: str = "notebook") -> Path:
    """The notebook's absolute path, refused if outside ``root``, missing or not a notebook."""
    try:
        candidate = (cwd / path).resolve()
        root = root.resolve()
        if candidate != root and root not in candidate.parents:
            raise InvalidSpec(field, "must stay inside the server's root directory")
        if not candidate.is_file():
            raise InvalidSpec(field, f"{path!r} not found")
    except (OSError, RuntimeError, ValueError) as e:  # too long, a symlink loop, a NUL
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise InvalidSpec(field, f"{path!r} cannot be used: {reason}") from None
    if candidate.suffix != ".ipynb":
        raise InvalidSpec(field, f"{path!r} is not a notebook (.ipynb)")
    if candidate.stat().st_size > MAX_NOTEBOOK_BYTES:
        raise InvalidSpec(field, f"{path!r} is larger than {MAX_NOTEBOOK_BYTES} bytes")
    return candidate


def read_notebook(path: Path, field: str = "notebook") -> nbformat.NotebookNode:
    """Read a v4 notebook, or say why it is not one."""
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except Exception as e:  # nbformat raises a zoo of errors for bad files
        raise InvalidSpec(field, f"{path.name!r} is not a readable notebook: {e}") from None


def _type_of(annotation: str, default: str) -> str:
    if annotation in TYPES:
        return annotation
    try:
        value = ast.literal_eval(default)
    except (ValueError, SyntaxError):
        return "any"
    for name, kind in TYPES.items():
        if type(value) is kind:
            return name
    return "any"


def _default(source: str) -> Any:
    try:
        value = ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, (int, float, bool, str, list, dict, type(None))) else None


def notebook_parameters(path: Path) -> list[dict[str, Any]]:
    """The typed parameters of a notebook's ``parameters`` cell, in order."""
    from papermill.exceptions import PapermillException
    from papermill.inspection import _infer_parameters  # the public wrapper needs a kernel
    from papermill.iorw import load_notebook_node

    read_notebook(path)  # a clear error for a file that is not a notebook
    notebook = load_notebook_node(str(path))
    kernel = notebook_kernel(notebook) or "python3"
    # The kernelspec's language is optional; without it, a notebook is taken to be Python.
    info, spec = notebook.metadata.get("language_info", {}), notebook.metadata.get("kernelspec", {})
    language = info.get("name") or spec.get("language") or "python"
    try:
        found = _infer_parameters(notebook, name=kernel, language=language)
    except PapermillException as e:  # no translator for the kernel's language
        raise InvalidSpec("notebook", f"{path.name!r}: {e}") from None
    parameters = []
    for parameter in found:
        parameters.append(
            {
                "name": parameter.name,
                "type": _type_of(parameter.inferred_type_name, parameter.default),
                "default": _default(parameter.default),
                "default_source": parameter.default,
                "help": parameter.help,
            }
        )
    return parameters


def notebook_kernel(notebook: nbformat.NotebookNode) -> str | None:
    """The kernel named in a notebook's metadata."""
    return notebook.get("metadata", {}).get("kernelspec", {}).get("name")


def _matches(value: Any, kind: str) -> bool:
    if kind == "any":
        return True
    if kind == "float":
        return type(value) in (int, float)
    return type(value) is TYPES[kind]


def check_parameters(given: dict[str, Any], known: list[dict[str, Any]]) -> None:
    """Refuse unknown parameters and values of the wrong type, listing what is known."""
    types = {p["name"]: p["type"] for p in known}
    listing = ", ".join(f"{name} ({kind})" for name, kind in types.items()) or "none"
    for name, value in given.items():
        if name not in types:
            raise InvalidSpec("parameters", f"unknown parameter {name!r}; known: {listing}")
        if not _matches(value, types[name]):
            raise InvalidSpec(
                f"parameters.{name}",
                f"expected {types[name]}, got {type(value).__name__}; known: {listing}",
            )


def coerce_cli_value(raw: str, kind: str) -> Any:
    """Turn a ``-p name value`` string from the command line into the parameter's type."""
    import json

    if kind == "str":
        return raw
    if kind == "bool":
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"expected true or false, got {raw!r}")
    if kind in ("int", "float"):
        return TYPES[kind](raw)
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        if kind == "any":
            return raw
        raise ValueError(f"expected JSON for a {kind}, got {raw!r}") from None
