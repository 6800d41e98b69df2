# The local aicloud hub: what `make up` runs (jupyterhub -f spawner_config/jupyterhub_config.py).
#
# One machine, for development and trying aicloud out: a development authenticator (any user
# name; the password is $AICLOUD_HUB_PASSWORD when set, else anything), servers as local
# processes, SQLite, configurable-http-proxy from npm, and the aicloud service with the local
# backend. Every variable below has a default; see docs/operators/hub.md.
import os
import sys
from pathlib import Path

from jupyter_core.paths import jupyter_data_dir

from aicloud.catalog import CatalogError
from aicloud.hub.config import configure_aicloud_service, configure_culling
from aicloud.hub.local_users import configure_local_users
from aicloud.hub.profiles import HubProfiles

c = get_config()  # noqa: F821 (provided by JupyterHub)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
env = os.environ.get
# As root the state is where every hub user's Unix user can pass through to their home.
DEFAULT_STATE = (
    "/var/lib/aicloud-hub" if os.geteuid() == 0 else os.path.join(jupyter_data_dir(), "aicloud-hub")
)
STATE = Path(env("AICLOUD_HUB_STATE", DEFAULT_STATE))
STATE.mkdir(parents=True, exist_ok=True)
(STATE / "users").mkdir(exist_ok=True)
CATALOG = env("AICLOUD_CATALOG", str(HERE / "hardware.yaml"))
SERVICE_PORT = int(env("AICLOUD_SERVICE_PORT", "10101"))

# --- where the hub listens, and its state ------------------------------------------------------
c.JupyterHub.ip = env("AICLOUD_HUB_IP", "127.0.0.1")
c.JupyterHub.port = int(env("AICLOUD_HUB_PORT", "8000"))
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(env("AICLOUD_HUB_API_PORT", "8081"))
c.JupyterHub.db_url = "sqlite:///" + str(STATE / "jupyterhub.sqlite")
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True

# --- the proxy: configurable-http-proxy installed by `make setup` into .venv/node -----------
CHP = Path(sys.prefix) / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
c.ConfigurableHTTPProxy.command = [
    env("AICLOUD_CHP", str(CHP) if CHP.exists() else "configurable-http-proxy")
]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:" + env("AICLOUD_PROXY_API_PORT", "8001")
c.ConfigurableHTTPProxy.pid_file = str(STATE / "proxy.pid")

# --- who may log in ------------------------------------------------------------------------------
c.JupyterHub.authenticator_class = "dummy"
if env("AICLOUD_HUB_PASSWORD"):
    c.DummyAuthenticator.password = env("AICLOUD_HUB_PASSWORD")
c.Authenticator.allow_all = True
ADMINS = set(filter(None, env("AICLOUD_HUB_ADMINS", "admin").split(",")))
c.Authenticator.admin_users = ADMINS

# --- user servers: local processes running this venv's jupyterhub-singleuser ---------------------
c.JupyterHub.spawner_class = "aicloud.hub.spawner.LocalProfileSpawner"
c.Spawner.cmd = [str(Path(sys.prefix) / "bin" / "jupyterhub-singleuser")]
c.Spawner.args = ["--allow-root", "--ServerApp.port_retries=0"]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
HOMES = str(STATE / "users" / "{username}")
c.SimpleLocalProcessSpawner.home_dir_template = HOMES
# Each new home gets the example notebooks (never overwriting a file the user has).
c.LocalProfileSpawner.examples_dir = env("AICLOUD_EXAMPLES", str(REPO / "notebooks"))

# --- the hardware catalog: profiles, the 400 for unknown choices, GPU quotas ---------------------
try:
    profiles = HubProfiles(
        CATALOG, job_store_url="sqlite:///" + str(STATE / "aicloud" / "aicloud.db")
    )
    from kubespawner import KubeSpawner  # overrides in the catalog are KubeSpawner traits

    profiles.check(KubeSpawner)
except CatalogError as e:
    sys.exit(f"aicloud: the hardware catalog is not valid: {e}")
c.Spawner.options_form = profiles.options_form
c.Spawner.apply_user_options = profiles.apply_user_options

# --- the aicloud service: the job service of every user, with schedules that outlive servers ---
configure_aicloud_service(
    c,
    url=f"http://127.0.0.1:{SERVICE_PORT}",
    data_dir=str(STATE / "aicloud"),
    catalog_path=CATALOG,
    root_dir=str(STATE / "users"),
    home_dir_template=HOMES,
    admin_users=ADMINS,
)

# --- hub users and Unix users: AICLOUD_HUB_USERS=system (as root) | single | shared ---------
# system: each hub user is a Unix user of their own; their server, kernels and jobs run as it.
# single (not root): only the account's owner may log in. shared: several users, one account.
try:
    print(configure_local_users(c, env("AICLOUD_HUB_USERS"), STATE))
except SystemExit as e:
    sys.exit(str(e))

# --- culling: idle GPU servers stop sooner (the catalog's idle_timeout_seconds) ------------------
configure_culling(
    c,
    catalog_path=CATALOG,
    cpu_timeout=int(env("AICLOUD_CULL_CPU_TIMEOUT", "3600")),
    gpu_timeout=int(env("AICLOUD_CULL_GPU_TIMEOUT", "1200")),
)
