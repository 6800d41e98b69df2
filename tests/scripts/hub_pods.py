"""Print, as JSON, the pod KubeSpawner builds for each catalog profile (a member of ml-team).

Run with $KUBECONFIG pointing at a FAKE kubeconfig (test_hub_profiles writes one): the
Kubernetes client reads it when first imported, and never contacts its server. The user is a
FAKE hub user with only the attributes a spawner reads.
"""

import asyncio
import json
import sys
from types import SimpleNamespace

from kubernetes_asyncio.client import ApiClient
from kubespawner import KubeSpawner

from aicloud.hub.profiles import HubProfiles


class FakeHubUser:
    """A FAKE JupyterHub user (no hub runs here)."""

    name = "ana"
    id = 7
    admin = False
    url = "/user/ana/"
    groups = [SimpleNamespace(name="ml-team")]
    spawners: dict = {}


async def build(profiles: HubProfiles, slug: str) -> dict:
    """The pod for ``slug``, through the same hook and profile list the hub uses."""
    hub = SimpleNamespace(api_url="http://hub:8081/hub/api", public_host="", base_url="/hub/")
    spawner = KubeSpawner(
        user=FakeHubUser(), hub=hub, profile_list=profiles.profile_list, image="quay.io/x:1"
    )
    options = {"profile": slug}
    profiles.apply_user_options(spawner, options)
    spawner.user_options = options
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    async with ApiClient() as client:
        return {"apiVersion": "v1", "kind": "Pod", **client.sanitize_for_serialization(pod)}


async def main(catalog: str) -> None:
    profiles = HubProfiles(catalog)
    pods = {p.slug: await build(profiles, p.slug) for p in profiles.catalog.profiles}
    json.dump(pods, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
