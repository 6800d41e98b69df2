"""The hardware catalog: parsing, validation messages, and what a profile means for a pod."""

from __future__ import annotations

from pathlib import Path

import pytest

from aicloud.catalog import CatalogError, load_catalog, parse_catalog, pod_resources

SHIPPED = Path(__file__).parent.parent / "spawner_config" / "hardware.yaml"


def profile(**fields):
    return {"slug": "p", "display_name": "P", **fields}


def test_the_shipped_catalog_is_valid():
    catalog = load_catalog(SHIPPED)
    assert catalog.get("cpu-small").default
    assert {p.slug for p in catalog.profiles} >= {"cpu-small", "a100-1", "tpu-v5e-2x4"}
    assert catalog.image_for(catalog.get("a100-1")) == catalog.images["cuda"]


def test_gpu_profile_pod_resources():
    catalog = parse_catalog(
        {"profiles": [profile(cpu=8, memory="64Gi", gpu={"count": 2, "product": "NVIDIA-H100"})]}
    )
    assert pod_resources(catalog.get("p")) == {
        "requests": {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "2"},
        "limits": {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "2"},
        "node_selector": {"nvidia.com/gpu.product": "NVIDIA-H100"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }


def test_mig_profile_asks_for_the_mig_resource():
    p = parse_catalog({"profiles": [profile(gpu={"mig": "3g.40gb"})]}).get("p")
    assert p.accelerator == "nvidia.com/mig-3g.40gb"
    assert pod_resources(p)["limits"] == {"nvidia.com/mig-3g.40gb": "1"}


@pytest.mark.parametrize(
    ("accelerator", "topology", "per_host", "hosts"),
    [
        ("tpu-v5-lite-podslice", "1x1", 1, 1),
        ("tpu-v5-lite-podslice", "2x4", 8, 1),
        ("tpu-v5-lite-podslice", "4x4", 4, 4),
        ("tpu-v4-podslice", "2x2x1", 4, 1),
        ("tpu-v4-podslice", "2x2x4", 4, 4),
        ("tpu-v5p-slice", "2x4x4", 4, 8),
    ],
)
def test_tpu_chips_per_host_rule(accelerator, topology, per_host, hosts):
    p = parse_catalog(
        {"profiles": [profile(tpu={"accelerator": accelerator, "topology": topology})]}
    )
    tpu = p.get("p").tpu
    assert (tpu.chips_per_host, tpu.hosts) == (per_host, hosts)
    resources = pod_resources(p.get("p"))
    assert resources["limits"] == {"google.com/tpu": str(per_host)}
    assert resources["node_selector"] == {
        "cloud.google.com/gke-tpu-accelerator": accelerator,
        "cloud.google.com/gke-tpu-topology": topology,
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"tpu": {"accelerator": "tpu-v5-lite-podslice", "topology": "4x4", "chips": 8}},
            "profiles[p].tpu: topology 4x4 has 16 chips, not the 8 given",
        ),
        (
            {"tpu": {"accelerator": "tpu-v4-podslice", "topology": "2x2"}},
            "profiles[p].tpu: topology '2x2' of tpu-v4-podslice needs 3 dimensions",
        ),
        (
            {"tpu": {"accelerator": "tpu-v9", "topology": "2x2"}},
            "profiles[p].tpu: accelerator 'tpu-v9' is not one of",
        ),
        ({"gpu": {"mig": "big"}}, "profiles[p].gpu.mig: 'big' is not a MIG profile name"),
        ({"memory": "lots"}, "profiles[p].memory: must be a quantity"),
        ({"image": "nope"}, "image 'nope' is neither a key of images"),
        (
            {"gpu": {"count": 1}, "tpu": {"accelerator": "tpu-v4-podslice", "topology": "2x2x1"}},
            "a profile has gpu or tpu, not both",
        ),
        ({"colour": "red"}, "profiles[p].colour: Extra inputs are not permitted"),
    ],
)
def test_bad_profiles_are_named(fields, message):
    with pytest.raises(CatalogError) as raised:
        parse_catalog({"profiles": [profile(**fields)]}, "hardware.yaml")
    assert str(raised.value).startswith("hardware.yaml: ")
    assert message in str(raised.value)


def test_duplicate_slugs_and_two_defaults_are_refused():
    with pytest.raises(CatalogError, match="unique: p"):
        parse_catalog({"profiles": [profile(), profile()]})
    with pytest.raises(CatalogError, match="at most one profile may be the default"):
        parse_catalog({"profiles": [profile(default=True), {**profile(default=True), "slug": "q"}]})


def test_groups_filter_and_quota():
    catalog = parse_catalog(
        {
            "profiles": [profile(), {**profile(groups=["ml"]), "slug": "gpu"}],
            "gpu_quota": {"ml": 4, "big": 16},
        }
    )
    assert [p.slug for p in catalog.for_groups([])] == ["p"]
    assert [p.slug for p in catalog.for_groups(["ml"])] == ["p", "gpu"]
    assert [p.slug for p in catalog.for_groups([], admin=True)] == ["p", "gpu"]
    assert catalog.quota_for(["ml", "big"]) == 16
    assert catalog.quota_for(["other"]) is None
    with pytest.raises(CatalogError, match="unknown profile 'x'; known: p, gpu"):
        catalog.get("x")


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(CatalogError, match="cannot read the catalog"):
        load_catalog(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("profiles: [\n")
    with pytest.raises(CatalogError, match="not valid YAML"):
        load_catalog(bad)
