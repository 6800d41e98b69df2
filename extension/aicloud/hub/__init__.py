"""The hub home of aicloud: the job service as a JupyterHub service, and the hub's plumbing.

- :mod:`aicloud.hub.service` hosts the job service as a JupyterHub-managed service
  (``python -m aicloud.hub.service``), authenticated with ``HubOAuth``;
- :mod:`aicloud.hub.forward` is the server extension of each user's server that forwards
  ``/aicloud/api/...`` to that service with the user's own token;
- :mod:`aicloud.hub.profiles`, :mod:`aicloud.hub.quota` and :mod:`aicloud.hub.culling` turn the
  hardware catalog into KubeSpawner profiles, GPU quotas and idle limits;
- :mod:`aicloud.hub.config` sets these up in a ``jupyterhub_config.py``.
"""

SERVICE_NAME = "aicloud"
ADMIN_SCOPE = "custom:aicloud:admin"
ACCESS_SCOPE = f"access:services!service={SERVICE_NAME}"
