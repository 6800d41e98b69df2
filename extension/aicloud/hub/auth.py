"""Who calls the hub service: JupyterHub users identified by ``HubOAuth``."""

from __future__ import annotations

from jupyter_server.auth import AllowAllAuthorizer
from jupyterhub.singleuser.extension import JupyterHubIdentityProvider, JupyterHubUser

from aicloud.hub import ADMIN_SCOPE


def is_admin(user: object) -> bool:
    """Whether ``user`` holds the aicloud admin scope (sees and touches everyone's jobs)."""
    hub_user = getattr(user, "hub_user", None) or {}
    return ADMIN_SCOPE in hub_user.get("scopes", ())


class HubServiceIdentityProvider(JupyterHubIdentityProvider):
    """Authenticates hub users (tokens or the OAuth cookie) who may access the service.

    The base class lets in a user whose token holds one of ``HubOAuth.access_scopes``
    (``access:services!service=aicloud``, from ``$JUPYTERHUB_OAUTH_ACCESS_SCOPES``). Unlike a
    single-user server, the service does not expose its own hub token: :attr:`token` is empty,
    so nothing hands it on to the jobs the service starts.
    """

    async def get_user(self, handler):
        """The hub user, unless the request's token is a job token this service revoked."""
        user = await super().get_user(handler)
        revoked = handler.settings.get("aicloud_revoked_tokens")
        if user is None or revoked is None:
            return user
        # in_cookie: a job token sent as ?token= is kept in the OAuth cookie
        token = self.hub_auth.get_token(handler, in_cookie=True)
        if token and revoked.refuses(token):
            handler._jupyterhub_user = None
            return None
        return user

    @property
    def token(self) -> str:
        """No token of the service's own is shared (jobs get no hub credentials)."""
        return ""

    @property
    def auth_enabled(self) -> bool:
        """Authentication is always on: every request needs a hub token or cookie."""
        return True


class HubServiceAuthorizer(AllowAllAuthorizer):
    """Any authenticated hub user may call the API; ownership checks are the manager's."""

    def is_authorized(self, handler, user, action, resource) -> bool:
        """Only hub users (the identity provider already checked the access scope)."""
        return isinstance(user, JupyterHubUser)
