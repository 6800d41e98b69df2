# The Kubernetes aicloud hub: KubeSpawner with the hardware catalog, the aicloud service with
# its Kubernetes backend, and GPU-aware culling. z2jh loads this file through values.yaml
# (hub.extraFiles, into jupyterhub_config.d); it also works as a plain `jupyterhub -f` config
# in a hub image that has aicloud[hub] installed (spawner_config/images/hub/Dockerfile).
#
# Environment (set in values.yaml, hub.extraEnv; z2jh sets POD_NAMESPACE):
#   AICLOUD_CATALOG       the mounted hardware.yaml;
#   AICLOUD_DATA_DIR      the service's store; its runs/ is the runs PVC (hub.extraVolumeMounts);
#   AICLOUD_SERVICE_URL   where user pods reach the service (default http://hub:10101);
#   AICLOUD_BACKENDS      comma-separated (default "kubernetes": no job runs in the hub pod);
#   AICLOUD_RUNS_CLAIM    the ReadWriteMany PVC of run directories (aicloud-storage.yaml);
#   AICLOUD_HOME_CLAIM    the ReadWriteMany PVC of users' homes (singleuser.storage.static.pvcName);
#   AICLOUD_HOME_SUBPATH  a user's folder in it (singleuser.storage.static.subPath);
#   AICLOUD_HOME_PATH     where users' servers mount it (singleuser.storage.homeMountPath);
#   AICLOUD_HOMES_DIR     where the hub pod mounts the whole of it (hub.extraVolumeMounts):
#                         the service finds a user's files in AICLOUD_HOMES_DIR/<name>;
#   AICLOUD_ROOT_DIR      the service's Jupyter root, an empty read-only folder;
#   AICLOUD_UID, AICLOUD_GID  the uid and gid of job pods (singleuser.uid, singleuser.fsGid);
#   AICLOUD_JOBS_SERVICE_ACCOUNT  the account of job pods (aicloud-rbac.yaml);
#   AICLOUD_WORKER_IMAGE, AICLOUD_WORKER_GPU_IMAGE  images of CPU and accelerator job pods.
import os
import sys

from kubespawner import KubeSpawner

from aicloud.catalog import CatalogError
from aicloud.hub import SERVICE_NAME
from aicloud.hub.config import configure_aicloud_service, configure_culling
from aicloud.hub.profiles import HubProfiles

c = get_config()  # noqa: F821 (provided by JupyterHub)

env = os.environ.get
CATALOG = env("AICLOUD_CATALOG", "/etc/aicloud/hardware.yaml")
DATA_DIR = env("AICLOUD_DATA_DIR", "/srv/jupyterhub/aicloud")
SERVICE_URL = env("AICLOUD_SERVICE_URL", "http://hub:10101")
HOME_PATH = env("AICLOUD_HOME_PATH", "/home/jovyan")
HOMES_DIR = env("AICLOUD_HOMES_DIR", "/home")
ROOT_DIR = env("AICLOUD_ROOT_DIR", "/srv/aicloud/empty")
BACKENDS = [name.strip() for name in env("AICLOUD_BACKENDS", "kubernetes").split(",") if name]
PUBLIC_SERVICE_URL = SERVICE_URL.rstrip("/") + f"/services/{SERVICE_NAME}/"
# Job pods run in the hub's namespace: PVCs are namespaced, and they mount the runs claim and
# the homes claim that the hub pod mounts. The owner's folder of the homes claim goes at
# HOME_PATH (as in their server) and at HOMES_DIR/<name>, where the service checked the job's
# files (the attempt's root): the job's paths and the user's own absolute paths both work.
KUBERNETES_BACKEND = {
    "namespace": env("POD_NAMESPACE", "jupyterhub"),
    "catalog_path": CATALOG,
    "runs_claim": env("AICLOUD_RUNS_CLAIM", "aicloud-runs"),
    "workspace_claim": env("AICLOUD_HOME_CLAIM", "aicloud-homes"),
    # The hub name itself, as JobManager.home_dir_template's {username} (KubeSpawner's
    # {username} would be its slug: another folder for names such as alice.smith@example.org).
    "workspace_subpath": env("AICLOUD_HOME_SUBPATH", "{unescaped_username}"),
    "workspace_path": HOME_PATH,
    "default_uid": env("AICLOUD_UID", "1000"),
    "run_as_group": env("AICLOUD_GID", "100"),
    "service_account": env("AICLOUD_JOBS_SERVICE_ACCOUNT", "aicloud-jobs"),
    "worker_image": env("AICLOUD_WORKER_IMAGE", ""),
    "worker_gpu_image": env("AICLOUD_WORKER_GPU_IMAGE", ""),
    # Job pods call the service back as user servers do (the hub Service's port 10101).
    "service_url": PUBLIC_SERVICE_URL,
}

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
    public_service_url=PUBLIC_SERVICE_URL,
    data_dir=DATA_DIR,
    catalog_path=CATALOG,
    # A job's relative cwd, script and notebook are checked in the owner's folder of the homes
    # volume, as the hub pod mounts it; job pods mount that folder at the same path.
    home_dir_template=HOMES_DIR.rstrip("/") + "/{username}",
    # Not users' files: the service serves nothing from its Jupyter root.
    root_dir=ROOT_DIR,
    admin_users=set(filter(None, env("AICLOUD_ADMINS", "").split(","))),
)
configure_culling(
    c,
    catalog_path=CATALOG,
    cpu_timeout=int(env("AICLOUD_CULL_CPU_TIMEOUT", "3600")),
    gpu_timeout=int(env("AICLOUD_CULL_GPU_TIMEOUT", "1200")),
)

# The service's backends and the Kubernetes backend's settings, as its command-line options.
service = next(s for s in c.JupyterHub.services if s["name"] == SERVICE_NAME)
service["command"] += [f"--AICloudApp.backends={name}" for name in BACKENDS]
if "local" not in BACKENDS:
    service["command"].append("--AICloudApp.notebook_pool_size=0")  # the pool is local's
service["command"] += [
    f"--KubernetesBackend.{name}={value}" for name, value in KUBERNETES_BACKEND.items() if value
]
# A hub-managed service inherits almost nothing of the hub's environment: in-cluster
# configuration needs the API server's address (the token is the pod's mounted file). Its HOME
# (Jupyter's runtime files) is its data directory: without one it would be the image user's,
# /home/jovyan, a folder of the homes volume.
service["environment"] = {
    **service.get("environment", {}),
    "HOME": DATA_DIR,
    **{
        name: os.environ[name]
        for name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")
        if name in os.environ
    },
}
