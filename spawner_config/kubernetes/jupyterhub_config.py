# The Kubernetes aicloud hub: KubeSpawner with the hardware catalog, the aicloud service and
# GPU-aware culling. z2jh loads this file through values.yaml (hub.extraConfig); it also works
# as a plain `jupyterhub -f` config in a hub image that has aicloud[hub] installed.
#
# Environment (set in values.yaml): AICLOUD_CATALOG (the mounted hardware.yaml),
# AICLOUD_DATA_DIR (the service's store and run directories, on the hub's volume),
# AICLOUD_SERVICE_URL (where user pods reach the service, default http://hub:10101).
import os
import sys

from kubespawner import KubeSpawner

from aicloud.catalog import CatalogError
from aicloud.hub.config import configure_aicloud_service, configure_culling
from aicloud.hub.profiles import HubProfiles

c = get_config()  # noqa: F821 (provided by JupyterHub)

env = os.environ.get
CATALOG = env("AICLOUD_CATALOG", "/etc/aicloud/hardware.yaml")
DATA_DIR = env("AICLOUD_DATA_DIR", "/srv/jupyterhub/aicloud")
SERVICE_URL = env("AICLOUD_SERVICE_URL", "http://hub:10101")

try:
    profiles = HubProfiles(
        CATALOG, job_store_url="sqlite:///" + os.path.join(DATA_DIR, "aicloud.db")
    )
    profiles.check(KubeSpawner)  # a misspelt override key stops the hub here, by name
except CatalogError as e:
    sys.exit(f"aicloud: the hardware catalog is not valid: {e}")

c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.KubeSpawner.profile_list = profiles.profile_list  # filtered by the user's hub groups
c.KubeSpawner.apply_user_options = profiles.apply_user_options  # 400s, GPU quota
c.KubeSpawner.default_url = "/lab"

configure_aicloud_service(
    c,
    url="http://0.0.0.0:10101",
    public_service_url=SERVICE_URL.rstrip("/") + "/services/aicloud/",
    data_dir=DATA_DIR,
    catalog_path=CATALOG,
    root_dir=DATA_DIR,
    admin_users=set(filter(None, env("AICLOUD_ADMINS", "").split(","))),
)
configure_culling(
    c,
    catalog_path=CATALOG,
    cpu_timeout=int(env("AICLOUD_CULL_CPU_TIMEOUT", "3600")),
    gpu_timeout=int(env("AICLOUD_CULL_GPU_TIMEOUT", "1200")),
)
