"""The GPU-aware culling policy, as a pure function of the hub's user models."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from aicloud.catalog import load_catalog, parse_catalog
from aicloud.hub.culling import CullPolicy, servers_to_cull

CATALOG = Path(__file__).resolve().parent.parent / "spawner_config" / "hardware.yaml"
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


def server(profile: str | None, idle: timedelta, **fields) -> dict:
    """A hub server model idle for ``idle``."""
    model = {
        "ready": True,
        "pending": None,
        "started": (NOW - idle - timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        "last_activity": (NOW - idle).isoformat().replace("+00:00", "Z"),
        "user_options": {"profile": profile} if profile else {},
    }
    model.update(fields)
    return model


def test_catalog_limits_gpu_profiles_shorter():
    policy = CullPolicy(load_catalog(CATALOG), cpu_timeout=3600, gpu_timeout=900)
    assert policy.idle_limit({"profile": "cpu-small"}) == 3600  # from the catalog
    assert policy.idle_limit({"profile": "a100-1"}) == 1200  # from the catalog
    assert policy.idle_limit({}) == 3600  # the default profile is cpu-small
    assert policy.idle_limit({"profile": "gone"}) == 3600  # unknown: the longest limit


def test_defaults_apply_when_the_catalog_sets_no_limit():
    catalog = parse_catalog(
        {
            "profiles": [
                {"slug": "cpu", "display_name": "CPU", "default": True},
                {"slug": "gpu", "display_name": "GPU", "gpu": {"count": 1}},
                {
                    "slug": "tpu",
                    "display_name": "TPU",
                    "tpu": {"accelerator": "tpu-v6e-slice", "topology": "2x2"},
                },
            ]
        }
    )
    policy = CullPolicy(catalog, cpu_timeout=3600, gpu_timeout=600)
    assert [policy.idle_limit({"profile": s}) for s in ("cpu", "gpu", "tpu")] == [3600, 600, 600]


def test_servers_to_cull():
    policy = CullPolicy(load_catalog(CATALOG))
    users = [
        {"name": "ana", "servers": {"": server("a100-1", timedelta(minutes=21))}},
        {"name": "ben", "servers": {"": server("cpu-small", timedelta(minutes=50))}},
        {"name": "cy", "servers": {"big": server("cpu-large", timedelta(minutes=61))}},
        {"name": "di", "servers": {"": server("a100-1", timedelta(minutes=19))}},
        {"name": "ed", "servers": {"": server("a100-1", timedelta(hours=5), pending="stop")}},
        {"name": "fu", "servers": {"": server("a100-1", timedelta(hours=5), ready=False)}},
        {"name": "gi", "servers": {"": server("a100-1", timedelta(hours=2), last_activity=None)}},
        {"name": "ho", "servers": {}},
    ]
    decisions = servers_to_cull(users, NOW, policy)
    assert [(d.user, d.server, d.limit) for d in decisions] == [
        ("ana", "", 1200),
        ("cy", "big", 3600),
        ("gi", "", 1200),  # never active: idle since it started
    ]
    assert round(decisions[0].idle_seconds) == 21 * 60
