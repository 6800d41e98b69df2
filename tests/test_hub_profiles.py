"""The hardware catalog as KubeSpawner profiles: pods built by KubeSpawner itself, no cluster.

KubeSpawner is given a fake kubeconfig (``FAKE_KUBECONFIG``: a server on 127.0.0.1:1 that
nothing answers, never contacted) and a fake hub user (``FakeHubUser``: the few attributes a
spawner reads). Every pod is checked against the official Kubernetes schemas bundled in the
``kubernetes-validate`` package (strict: unknown fields are errors).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import kubernetes_validate
import pytest
import yaml

from aicloud.catalog import CatalogError, load_catalog
from aicloud.hub.profiles import HubProfiles, check_overrides, choose_profile
from tests.conftest import free_port

REPO = Path(__file__).resolve().parent.parent
CATALOG = REPO / "spawner_config" / "hardware.yaml"
K8S_VERSION = "1.33"
FAKE_KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: fake, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: fake, context: {cluster: fake, user: fake, namespace: aicloud}}]
current-context: fake
users: [{name: fake, user: {token: fake-token}}]
"""

# slug -> (extended resources in limits, node selector, toleration keys)
EXPECTED = {
    "cpu-small": ({}, {}, set()),
    "cpu-large": ({}, {}, set()),
    "a100-1": (
        {"nvidia.com/gpu": "1"},
        {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
        {"nvidia.com/gpu"},
    ),
    "a100-mig-1g": ({"nvidia.com/mig-1g.10gb": "1"}, {}, {"nvidia.com/gpu"}),
    "tpu-v5e-2x4": (
        {"google.com/tpu": "8"},
        {
            "cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
            "cloud.google.com/gke-tpu-topology": "2x4",
        },
        {"google.com/tpu"},
    ),
}


class FakeHubUser:
    """A FAKE JupyterHub user: only what a spawner reads (no hub runs in these tests)."""

    def __init__(self, name: str, groups: list[str], admin: bool = False):
        self.name = name
        self.admin = admin
        self.groups = [SimpleNamespace(name=g) for g in groups]
        self.spawners: dict = {}


@pytest.fixture(scope="module")
def pods(tmp_path_factory) -> dict:
    """Pods built by KubeSpawner for every catalog entry (in a process with the fake config)."""
    kubeconfig = tmp_path_factory.mktemp("kube") / "config"
    kubeconfig.write_text(FAKE_KUBECONFIG)
    result = subprocess.run(
        [sys.executable, str(REPO / "tests" / "scripts" / "hub_pods.py"), str(CATALOG)],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout)


def test_every_catalog_entry_builds_a_valid_pod(pods):
    profiles = HubProfiles(CATALOG)
    assert set(pods) == {p.slug for p in profiles.catalog.profiles} == set(EXPECTED)
    for profile in profiles.catalog.profiles:
        pod = pods[profile.slug]
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
        container = pod["spec"]["containers"][0]
        limits, selector, toleration_keys = EXPECTED[profile.slug]
        resources = container["resources"]
        for name, value in limits.items():
            assert resources["limits"][name] == value and resources["requests"][name] == value
        assert float(resources["limits"]["cpu"]) == profile.cpu
        assert pod["spec"].get("nodeSelector", {}) == selector
        assert {t["key"] for t in pod["spec"].get("tolerations", [])} == toleration_keys
        assert container["image"] == profiles.catalog.image_for(profile)
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["AICLOUD_PROFILE"] == profile.slug
        if limits:
            assert env["AICLOUD_ACCELERATOR_COUNT"] == next(iter(limits.values()))


def test_profile_list_follows_the_users_groups():
    profiles = HubProfiles(CATALOG)
    spawner = SimpleNamespace(user=FakeHubUser("sam", ["students"]))
    assert [p["slug"] for p in profiles.profile_list(spawner)] == [
        "cpu-small",
        "cpu-large",
        "a100-mig-1g",
    ]
    spawner = SimpleNamespace(user=FakeHubUser("root", [], admin=True))
    assert len(profiles.profile_list(spawner)) == len(EXPECTED)
    ml = SimpleNamespace(user=FakeHubUser("ana", ["ml-team"]))
    assert "tpu-v5e-2x4" in [p["slug"] for p in profiles.profile_list(ml)]


def test_choose_profile_defaults_and_refusals():
    catalog = load_catalog(CATALOG)
    allowed = catalog.for_groups([])
    assert choose_profile(allowed, None).slug == "cpu-small"
    assert choose_profile(allowed, {"profile": ""}).slug == "cpu-small"
    with pytest.raises(Exception, match="allowed values: cpu-small, cpu-large, a100-mig-1g"):
        choose_profile(allowed, {"profile": "tpu-v5e-2x4"})


def _catalog_with(tmp_path, extra: str) -> Path:
    path = tmp_path / "hardware.yaml"
    path.write_text("profiles:\n  - slug: cpu\n    display_name: CPU\n    default: true\n" + extra)
    return path


def test_unknown_kubespawner_trait_is_named():
    from kubespawner import KubeSpawner

    catalog = load_catalog(CATALOG).model_copy()
    catalog.profiles[2].kubespawner_override = {"node_selectr": {"pool": "gpu"}, "cpu_limit": 2}
    with pytest.raises(CatalogError) as error:
        check_overrides(catalog, KubeSpawner)
    assert str(error.value) == (
        "profiles[a100-1].kubespawner_override: 'node_selectr' is not a trait of KubeSpawner"
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "    kubespawner_override: {extra_resource_limit: {nvidia.com/gpu: '1'}}\n",
            "profiles[cpu].kubespawner_override: 'extra_resource_limit' is not a trait "
            "of KubeSpawner",
        ),
        (
            "    tpu: {accelerator: tpu-v5-lite-podslice, topology: 4x4, chips: 8}\n",
            "profiles[cpu].tpu: topology 4x4 has 16 chips, not the 8 given",
        ),
    ],
)
def test_a_bad_catalog_stops_the_hub_at_start(tmp_path, extra, message):
    """A real ``jupyterhub`` with a bad catalog exits at once, naming the problem."""
    env = {
        "AICLOUD_CATALOG": str(_catalog_with(tmp_path, extra)),
        "AICLOUD_HUB_STATE": str(tmp_path / "state"),
        "AICLOUD_HUB_PORT": str(free_port()),
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("jupyterhub")),
            "-f",
            str(CATALOG.parent / "jupyterhub_config.py"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert "aicloud: the hardware catalog is not valid" in result.stderr + result.stdout


K8S_CHECK = """
import json, sys
from traitlets.config import PyFileConfigLoader
config = PyFileConfigLoader(sys.argv[1]).load_config()
print(json.dumps({
    "spawner": config.JupyterHub.spawner_class,
    "profile_list_callable": callable(config.KubeSpawner.profile_list),
    "services": [s["name"] for s in config.JupyterHub.services],
    "server_token_scopes": config.Spawner.server_token_scopes,
    "service_url": config.Spawner.environment["AICLOUD_HUB_SERVICE_URL"],
}))
"""


def test_kubernetes_config_loads(tmp_path):
    """The Kubernetes jupyterhub_config.py loads with the catalog and registers everything."""
    values = yaml.safe_load((REPO / "spawner_config" / "kubernetes" / "values.yaml").read_text())
    assert values["hub"]["extraEnv"]["AICLOUD_CATALOG"] == "/etc/aicloud/hardware.yaml"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            K8S_CHECK,
            str(REPO / "spawner_config" / "kubernetes" / "jupyterhub_config.py"),
        ],
        env={**os.environ, "AICLOUD_CATALOG": str(CATALOG), "AICLOUD_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = json.loads(result.stdout)
    assert loaded["spawner"] == "kubespawner.KubeSpawner" and loaded["profile_list_callable"]
    assert loaded["services"] == ["aicloud", "idle-culler", "aicloud-culler"]
    assert "access:services!service=aicloud" in loaded["server_token_scopes"]
    assert loaded["service_url"] == "http://hub:10101/services/aicloud/"
