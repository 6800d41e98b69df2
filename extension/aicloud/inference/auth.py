"""Who may call a model server: its serving token, or its owner's tokens.

A request carries ``Authorization: token <t>`` (or ``Bearer <t>``). It passes when ``<t>`` is

- the server's own serving token: random per attempt, written with mode 0600 to a file in
  the run directory (never in ``outputs/``, never logged), for the service and its job page;
- the token the job was started with (``AICLOUD_TOKEN``): in a standalone Jupyter server the
  server's token, which its user's CLI, client and magics hold too;
- under JupyterHub (``JUPYTERHUB_API_URL`` set), any hub token of the job's owner (whom the
  hub names for ``AICLOUD_TOKEN``) or of a hub admin, as ``HubAuth`` learns from the hub's
  ``/user`` (cached for ``cache_max_age`` seconds).

Without a token the answer is 401, with another one 403.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
from pathlib import Path
from typing import Any

TOKEN_HEADER = re.compile(r"^(?:token|bearer)\s+(\S+)\s*$", re.IGNORECASE)
HUB_CACHE_SECONDS = 60
log = logging.getLogger("aicloud.inference")


class AuthError(Exception):
    """A refused request: ``status`` 401 (no token) or 403 (a wrong one), or 503."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def write_token(path: Path) -> str:
    """A new random serving token, written to ``path`` readable by its owner only."""
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # an earlier attempt's
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as f:
        f.write(token)
    return token


class ServingAuth:
    """Checks the ``Authorization`` header of every request but the health probes."""

    def __init__(self, tokens: list[str], hub_api_url: str | None = None):
        self._tokens = [t.encode() for t in tokens if t]
        self._job_token = tokens[1] if len(tokens) > 1 else ""
        self._hub = None
        self._owner: str | None = None
        if hub_api_url and self._job_token:
            from jupyterhub.services.auth import HubAuth

            self._hub = HubAuth(
                api_url=hub_api_url, api_token=self._job_token, cache_max_age=HUB_CACHE_SECONDS
            )

    @classmethod
    def for_job(cls, token_file: Path, serving_token: str | None = None) -> ServingAuth:
        """The auth of a serve job: a new serving token (or the one a worker was given)."""
        token = serving_token or write_token(token_file)
        return cls(
            [token, os.environ.get("AICLOUD_TOKEN", "")], os.environ.get("JUPYTERHUB_API_URL")
        )

    async def check(self, header: str | None) -> None:
        """Return if ``header`` authorizes the request, else raise :class:`AuthError`."""
        match = TOKEN_HEADER.match(header or "")
        if match is None:
            raise AuthError(401, "authentication required: send Authorization: token <token>")
        given = match.group(1).encode()
        if any(hmac.compare_digest(given, t) for t in self._tokens):
            return
        if self._hub is not None and await self._hub_allows(given.decode()):
            return
        raise AuthError(403, "this token may not call this model server")

    async def _hub_allows(self, token: str) -> bool:
        try:
            if self._owner is None:
                owner = await self._hub.user_for_token(self._job_token, sync=False)
                self._owner = (owner or {}).get("name", "")
            user: dict[str, Any] | None = await self._hub.user_for_token(token, sync=False)
        except Exception as e:  # the hub is down or answers garbage: no decision
            log.warning("aicloud: cannot check a token with the hub: %s", type(e).__name__)
            raise AuthError(503, "cannot reach JupyterHub to check the token") from None
        if not user:
            return False
        is_owner = bool(self._owner) and user.get("name") == self._owner
        return is_owner or bool(user.get("admin"))
