"""Hub tokens for jobs: each attempt of a job calls the service back as the job's owner.

In the hub, the service has no token of its own to hand to jobs (a user's server passes on
the user's; a job started by the service, a scheduled notebook say, has no server). So, per
attempt, the service asks the hub for a short-lived token of the job's *owner*::

    POST /hub/api/users/{owner}/tokens
    {"scopes": ["access:services!service=aicloud"], "expires_in": ..., "note": "aicloud job ..."}

which needs the ``tokens`` scope on those users in the service's role (see
:func:`aicloud.hub.config.aicloud_roles`). The token can do nothing but call the aicloud service
as its owner, who therefore sees only their own jobs. It reaches the attempt's processes as
``AICLOUD_TOKEN`` (next to ``AICLOUD_URL``, the service), lives in the attempt's plan (a file
only the service's user may read) and nowhere else: it is never logged and never in API output.
Its id goes into the attempt's handle, so the token is revoked when the attempt ends, is
cancelled or is found ended after a restart of the service; ``expires_in`` bounds it anyway.
``HubOAuth`` caches what the hub said of a token for minutes, so the service also refuses a
revoked job token itself (:class:`RevokedTokens`, by the token's hash: the hub reuses the ids
of deleted tokens), from the moment it is revoked.

:class:`WithJobTokens` wraps a backend so that every attempt it starts gets such a token; the
rest of the backend is untouched.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from aicloud.backends.base import Attempt
from aicloud.hub import ACCESS_SCOPE

#: What a job's token may do: call the aicloud service, as the job's owner, and nothing else.
JOB_TOKEN_SCOPES = [ACCESS_SCOPE]
TOKEN_ENV = "AICLOUD_TOKEN"
#: In an attempt's handle: ``{"owner", "id", "note"}`` of its token (never the token itself).
HANDLE_KEY = "hub_token"
REQUEST_TIMEOUT = 20.0


def digest(token: str) -> str:
    """What the service keeps of a job's token: its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()


class RevokedTokens:
    """Job tokens this service revoked (their digests), kept while ``HubOAuth`` may trust them."""

    def __init__(self, keep_seconds: float):
        self.keep_seconds = keep_seconds
        self._revoked: dict[str, float] = {}

    def add(self, token_digest: str) -> None:
        """Refuse the token with this digest from now on."""
        now = time.monotonic()
        self._revoked = {d: t for d, t in self._revoked.items() if now - t < self.keep_seconds}
        self._revoked[token_digest] = now

    def refuses(self, token: str) -> bool:
        """Whether ``token`` is a job token revoked here."""
        return bool(self._revoked) and digest(token) in self._revoked


class JobTokenError(RuntimeError):
    """The hub refused or failed to issue a job's token (the attempt cannot start)."""


class HubTokens:
    """Issues and revokes hub tokens of users, with the service's own hub token."""

    def __init__(self, api_url: str, api_token: str, log: logging.Logger):
        self.api_url = api_url.rstrip("/")
        self._auth = {"Authorization": f"token {api_token}"}
        self.log = log

    def _url(self, owner: str, *rest: str) -> str:
        return "/".join([self.api_url, "users", quote(owner, safe=""), "tokens", *rest])

    async def issue(self, owner: str, note: str, expires_in: int) -> tuple[str, str]:
        """A new token of ``owner`` for one attempt: ``(token, token_id)``."""
        body = {"scopes": JOB_TOKEN_SCOPES, "expires_in": int(expires_in), "note": note}
        request = HTTPRequest(
            self._url(owner),
            method="POST",
            headers={**self._auth, "Content-Type": "application/json"},
            body=json.dumps(body),
            request_timeout=REQUEST_TIMEOUT,
        )
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as e:
            raise JobTokenError(
                f"the hub refused a token for {owner}: {e.code} {_message(e)}"
            ) from None
        except OSError as e:
            raise JobTokenError(f"the hub is unreachable for {owner}'s token: {e}") from None
        model = json.loads(response.body)
        return model["token"], model["id"]

    async def revoke(self, owner: str, token_id: str, note: str) -> None:
        """Revoke ``owner``'s token ``token_id`` if it is still the one issued with ``note``.

        The hub reuses the ids of deleted tokens, so the id alone may by now name another
        token of the same user; one already gone (expired, revoked) is fine.
        """
        url = self._url(owner, quote(token_id, safe=""))
        client = AsyncHTTPClient()
        try:
            response = await client.fetch(
                HTTPRequest(url, headers=self._auth, request_timeout=REQUEST_TIMEOUT),
                raise_error=False,
            )
            if response.code == 404:  # expired or revoked already
                return
            if response.code != 200:
                self.log.warning(
                    "aicloud: cannot read %s's job token %s to revoke it: %s",
                    owner,
                    token_id,
                    response.code,
                )
                return
            if json.loads(response.body).get("note") != note:
                return
            response = await client.fetch(
                HTTPRequest(
                    url, method="DELETE", headers=self._auth, request_timeout=REQUEST_TIMEOUT
                ),
                raise_error=False,
            )
        except (OSError, HTTPClientError) as e:  # tornado's timeouts and closed streams
            self.log.warning("aicloud: cannot revoke %s's job token %s: %s", owner, token_id, e)
            return
        if response.code not in (204, 404):
            self.log.warning(
                "aicloud: revoking %s's job token %s: %s", owner, token_id, response.code
            )


def _message(error: HTTPClientError) -> str:
    """The hub's own words from an error response, if it gave any."""
    body = error.response.body if error.response is not None else b""
    try:
        return json.loads(body).get("message", "")
    except (ValueError, AttributeError):
        return ""


def with_token(attempt: Attempt, token: str) -> Attempt:
    """``attempt`` with ``AICLOUD_TOKEN`` in the environment of every role but services."""
    roles = tuple(
        r if r.service else dataclasses.replace(r, env={**r.env, TOKEN_ENV: token})
        for r in attempt.plan.roles
    )
    return dataclasses.replace(attempt, plan=dataclasses.replace(attempt.plan, roles=roles))


class WithJobTokens:
    """A backend whose attempts each get a fresh hub token of their job's owner.

    Everything but :meth:`start`, :meth:`poll` and :meth:`cancel` is the wrapped backend's own.
    ``owner_of(job_id)`` names a job's owner; ``lifetime`` is the token's ``expires_in`` for
    attempts without a timeout (with one: the timeout plus ``margin``, capped at ``lifetime``).
    Revoked tokens go into ``revoked`` at once.
    """

    def __init__(
        self,
        backend,
        tokens: HubTokens,
        revoked: RevokedTokens,
        owner_of: Callable[[str], str],
        lifetime: int,
        margin: int = 300,
    ):
        self._backend = backend
        self._tokens = tokens
        self._revoked = revoked
        self._digests: dict[tuple[str, str], str] = {}  # (owner, token id) -> digest
        self._owner_of = owner_of
        self.lifetime = lifetime
        self.margin = margin
        self._revoking: set[asyncio.Task] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def expires_in(self, timeout_seconds: int | None) -> int:
        """Seconds the token of an attempt with this timeout lives."""
        if timeout_seconds:
            return min(self.lifetime, int(timeout_seconds) + self.margin)
        return self.lifetime

    async def start(self, attempt: Attempt) -> dict[str, Any]:
        """Issue the owner's token, then start the attempt with it in its environment."""
        job_id, number = attempt.job_id, attempt.number
        owner = attempt.owner or self._owner_of(job_id)
        note = f"aicloud job {job_id} attempt {number}"
        try:
            token, token_id = await self._tokens.issue(
                owner, note, self.expires_in(attempt.timeout_seconds)
            )
        except JobTokenError as e:  # jobs that never call back should still run
            self._tokens.log.warning(
                "aicloud: job %s attempt %d starts without a token: %s", job_id, number, e
            )
            return await self._backend.start(attempt)
        self._digests[owner, token_id] = digest(token)
        issued = {HANDLE_KEY: {"owner": owner, "id": token_id, "note": note}}
        try:
            handle = await self._backend.start(with_token(attempt, token))
        except BaseException:
            self._revoke_later(issued)
            raise
        return {**handle, **issued}

    async def poll(self, handle: dict[str, Any]):
        """The backend's answer; once the attempt has ended, its token is revoked."""
        outcome = await self._backend.poll(handle)
        if outcome is not None:
            self._revoke_later(handle)
        return outcome

    async def cancel(self, handle: dict[str, Any]) -> None:
        """Cancel the attempt, then revoke its token."""
        try:
            await self._backend.cancel(handle)
        finally:
            self._revoke_later(handle)

    def _revoke_later(self, handle: dict[str, Any]) -> None:
        issued = handle.get(HANDLE_KEY)
        if not issued:  # started before tokens were issued, or by another backend
            return
        token_digest = self._digests.pop((issued["owner"], issued["id"]), None)
        if token_digest is not None:  # else issued before a restart: HubOAuth's cache is new
            self._revoked.add(token_digest)
        task = asyncio.create_task(
            self._tokens.revoke(issued["owner"], issued["id"], issued.get("note", ""))
        )
        self._revoking.add(task)
        task.add_done_callback(self._revoking.discard)

    async def close(self) -> None:
        """Finish pending revocations, then close the backend."""
        if self._revoking:
            await asyncio.gather(*self._revoking, return_exceptions=True)
        await self._backend.close()
