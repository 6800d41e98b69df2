"""Set up the aicloud hub service, its roles and scopes in a ``jupyterhub_config.py``.

Works with JupyterHub 5.5 (what z2jh ships) and 6.x::

    from aicloud.hub.config import configure_aicloud_service
    configure_aicloud_service(c, url="http://127.0.0.1:10101", data_dir="/srv/aicloud")
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from aicloud.hub import ACCESS_SCOPE, ADMIN_SCOPE, SERVICE_NAME

ADMIN_GROUP = "aicloud-admins"
SERVICE_SCOPES = ["list:users", "read:users:groups", "read:servers"]
#: Lets the service issue (and revoke) each job attempt a token of the job's owner, limited to
#: calling the service (aicloud.hub.tokens). Narrow it with a filter (``tokens!group=ml``) to
#: give job tokens to some users only.
JOB_TOKEN_SCOPE = "tokens"
#: What a user server's $JUPYTERHUB_API_TOKEN may do: the default "server" role, plus calling
#: the aicloud service as its user. The hub grants only the part the user holds, so the admin
#: scope reaches the servers of aicloud admins alone.
SERVER_TOKEN_SCOPES = ["access:servers!server", "users:activity!user", ACCESS_SCOPE, ADMIN_SCOPE]
FORWARD_ARGS = [
    "--ServerApp.jpserver_extensions=aicloud=False",
    "--ServerApp.jpserver_extensions=aicloud.hub.forward=True",
]


def service_entry(
    url: str,
    data_dir: str,
    catalog_path: str = "",
    root_dir: str = "",
    python: str = sys.executable,
    home_dir_template: str = "",
    **extra,
) -> dict:
    """The ``c.JupyterHub.services`` entry of a hub-managed aicloud service."""
    command = [python, "-m", "aicloud.hub.service", f"--AICloudApp.data_dir={data_dir}"]
    if root_dir:
        command.append(f"--ServerApp.root_dir={root_dir}")
    if home_dir_template:
        command.append(f"--JobManager.home_dir_template={home_dir_template}")
    if catalog_path:
        command.append(f"--AICloudHubApp.catalog_path={catalog_path}")
    entry = {"name": SERVICE_NAME, "url": url, "command": command, "oauth_no_confirm": True}
    entry.update(extra)
    return entry


def aicloud_roles(admin_users: Iterable[str] = (), job_tokens: bool = True) -> list[dict]:
    """Roles: users may call the service; the service reads users and issues job tokens."""
    service_scopes = [*SERVICE_SCOPES, *([JOB_TOKEN_SCOPE] if job_tokens else [])]
    return [
        {"name": "user", "scopes": ["self", ACCESS_SCOPE]},
        {"name": "aicloud-service", "services": [SERVICE_NAME], "scopes": service_scopes},
        {
            "name": "aicloud-admin",
            "description": "See and manage every user's aicloud jobs and schedules",
            "scopes": [ADMIN_SCOPE, ACCESS_SCOPE],
            "users": sorted(admin_users),
            "groups": [ADMIN_GROUP],
        },
    ]


def configure_aicloud_service(
    c,
    *,
    url: str,
    data_dir: str,
    catalog_path: str = "",
    root_dir: str = "",
    home_dir_template: str = "",
    admin_users: Iterable[str] = (),
    public_service_url: str | None = None,
    python: str = sys.executable,
    job_tokens: bool = True,
) -> None:
    """Register the service, its scopes and roles, and make user servers forward to it.

    ``root_dir`` is the service's Jupyter root; ``home_dir_template`` (``{username}`` for the
    owner) is where each user's jobs start and which their relative paths may not leave: give
    it the spawner's home directory template.
    ``public_service_url`` is where user servers reach the service (default: ``url`` plus
    ``/services/aicloud/``, the service's own address). ``job_tokens``: each job attempt gets
    a token of its owner for calling the service back (the service's role then holds
    ``tokens``); False gives jobs no credentials.
    """
    services = [s for s in (c.JupyterHub.get("services") or []) if s.get("name") != SERVICE_NAME]
    entry = service_entry(
        url, data_dir, catalog_path, root_dir, python, home_dir_template=home_dir_template
    )
    if not job_tokens:
        entry["command"].append("--AICloudHubApp.job_tokens=False")
    c.JupyterHub.services = [*services, entry]
    scopes = dict(c.JupyterHub.get("custom_scopes") or {})
    scopes[ADMIN_SCOPE] = {"description": "See and manage every user's aicloud jobs."}
    c.JupyterHub.custom_scopes = scopes
    roles = [r for r in (c.JupyterHub.get("load_roles") or []) if r["name"] not in _role_names()]
    c.JupyterHub.load_roles = [*roles, *aicloud_roles(admin_users, job_tokens)]
    groups = dict(c.JupyterHub.get("load_groups") or {})
    groups.setdefault(ADMIN_GROUP, {"users": []})
    c.JupyterHub.load_groups = groups
    c.Spawner.server_token_scopes = SERVER_TOKEN_SCOPES
    service_url = public_service_url or url.rstrip("/") + f"/services/{SERVICE_NAME}/"
    c.Spawner.environment = {
        **(c.Spawner.get("environment") or {}),
        "AICLOUD_HUB_SERVICE_URL": service_url,
    }
    c.Spawner.args = [*(c.Spawner.get("args") or []), *FORWARD_ARGS]


def _role_names() -> set[str]:
    return {role["name"] for role in aicloud_roles()}


CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]


def configure_culling(
    c,
    *,
    catalog_path: str,
    cpu_timeout: int = 3600,
    gpu_timeout: int = 1200,
    every: int = 60,
    python: str = sys.executable,
) -> None:
    """jupyterhub-idle-culler with the CPU limit, plus aicloud's per-profile GPU culler."""
    services = [
        s
        for s in (c.JupyterHub.get("services") or [])
        if s.get("name") not in ("idle-culler", "aicloud-culler")
    ]
    services += [
        {
            "name": "idle-culler",
            "command": [
                python,
                "-m",
                "aicloud.hub.interruptible",  # stops on the hub's SIGINT (see there)
                "jupyterhub_idle_culler",
                f"--timeout={cpu_timeout}",
                f"--cull-every={every}",
            ],
        },
        {
            "name": "aicloud-culler",
            "command": [
                python,
                "-m",
                "aicloud.hub.culling",
                f"--catalog={catalog_path}",
                f"--cpu-timeout={cpu_timeout}",
                f"--gpu-timeout={gpu_timeout}",
                f"--every={every}",
            ],
        },
    ]
    c.JupyterHub.services = services
    roles = [r for r in (c.JupyterHub.get("load_roles") or []) if r["name"] != "aicloud-cullers"]
    roles.append(
        {
            "name": "aicloud-cullers",
            "services": ["idle-culler", "aicloud-culler"],
            "scopes": CULLER_SCOPES,
        }
    )
    c.JupyterHub.load_roles = roles
