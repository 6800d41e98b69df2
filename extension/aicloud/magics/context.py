"""What the magics know about where they run: the service, the notebook, the cell, the frontend."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from aicloud.client import AICloudClient, APIError, ServiceNotFound, discover
from aicloud.magics.errors import MagicError

CELL_FILE_ENV = "AICLOUD_CELL_FILE"
CELL_ID = re.compile(r"[A-Za-z0-9_.:-]{1,200}")  # as spec.Origin.cell_id
START_HINT = "start one with `jupyter lab` (or `make up`), or set AICLOUD_URL and AICLOUD_TOKEN"


def connect() -> AICloudClient:
    """A client of the discovered service, or a one-line error that says how to start one."""
    try:
        return AICloudClient(discover())
    except ServiceNotFound as e:
        raise MagicError(str(e)) from None


@contextlib.contextmanager
def service_errors(source: Any = None) -> Iterator[None]:
    """Turn the client's failures into one line each.

    ``source`` is the client, or an object whose ``_client`` is (looked up when it fails).
    """
    try:
        yield
    except APIError as e:
        raise MagicError(f"{e.message} (HTTP {e.status})") from None
    except httpx.TransportError as e:
        client = getattr(source, "_client", source)
        where = client.connection.url if isinstance(client, AICloudClient) else "the service"
        raise MagicError(
            f"cannot reach the aicloud service at {where} ({e}); {START_HINT}"
        ) from None


def _parent(shell) -> dict[str, Any]:
    """The request this cell runs for (its header and metadata), or ``{}`` outside a kernel."""
    kernel = getattr(shell, "kernel", None)
    if kernel is not None:
        with contextlib.suppress(Exception):
            parent = kernel.get_parent()
            if parent:
                return parent
    return getattr(shell, "parent_header", None) or {}


def sent_cell_id(shell) -> str | None:
    """The id of the cell being run, when the frontend sends it (JupyterLab, Notebook 7)."""
    value = _parent(shell).get("metadata", {}).get("cellId")
    return str(value) if value else None


def runner_cell_id() -> str | None:
    """The id of the cell a notebook job's runner is executing (nbclient sends none; the
    runner writes it to the file named by ``AICLOUD_CELL_FILE`` before each cell)."""
    path = os.environ.get(CELL_FILE_ENV)
    if not path:
        return None
    try:
        value = Path(path).read_text().strip()
    except OSError:
        return None
    return value if CELL_ID.fullmatch(value) else None


def cell_id(shell) -> str | None:
    """The id of the cell being run: from the frontend, or from a notebook job's runner."""
    return sent_cell_id(shell) or runner_cell_id()


def notebook_path(shell) -> str | None:
    """The notebook this kernel serves, as the Jupyter server told the kernel."""
    return os.environ.get("JPY_SESSION_NAME") or shell.user_ns.get("__session__") or None


def origin(shell) -> dict[str, str] | None:
    """``spec.origin`` for a job launched from this cell, or None outside a notebook."""
    path = notebook_path(shell)
    if not path:
        return None
    found = {"notebook": path}
    if (cell := cell_id(shell)) is not None:
        found["cell_id"] = cell
    return found


def widget_frontend(shell, setting: str) -> bool:
    """Whether widgets will render: ``on``/``off``, or ``auto``.

    ``auto`` trusts that a frontend which sends cell ids (JupyterLab, Notebook 7, VS Code)
    renders widgets, and that one which does not (papermill, nbconvert, nbclient) does not.
    """
    setting = os.environ.get("AICLOUD_WIDGETS", setting)
    if setting == "off":
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return setting == "on" or sent_cell_id(shell) is not None
