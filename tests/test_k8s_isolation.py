"""Job pods of one user on Kubernetes see nothing of another's (issue 15, item 1): each runs as
its owner's uid, mounts only its owner's home and its own run directory, and never the runs
directory of other jobs. Pure builders, checked against the official schemas."""

from __future__ import annotations

import json

import pytest

from aicloud.backends.kubernetes.builders import (
    ClusterConfig,
    OwnerError,
    check_owner,
    expand_owner,
)
from aicloud.backends.kubernetes.planning import make_manifests
from aicloud.spec import JobSpec
from tests.test_k8s_builders import SPECS, check_schema, context

RUNS = "/srv/aicloud/runs"
HUB = ClusterConfig(
    namespace="ml",
    runs_claim="aicloud-data",
    runs_path=RUNS,
    runs_subpath="runs",
    workspace_claim="claim-{username}",
    workspace_path="/home/jovyan",
    owner_uids={"alice": 1001, "bob": 1002},
    default_uid=None,
)
ALICE_JOB, BOB_JOB = "job-a11ce0000001", "job-b0b000000002"


def attempt(spec: JobSpec, owner: str | None, job_id: str, **overrides):
    values = {
        "job_id": job_id,
        "run_dir": f"{RUNS}/{job_id}",
        "owner": owner,
        "env": {"AICLOUD_JOB_ID": job_id, "AICLOUD_RUN_DIR": f"{RUNS}/{job_id}"},
    }
    return context(spec, **{**values, **overrides})


def pod_specs(manifest: dict) -> list[dict]:
    """The pod specs of a Job or of a TrainJob's runtime patch."""
    if manifest["kind"] == "TrainJob":
        jobs = manifest["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]
        return [job["template"]["spec"]["template"]["spec"] for job in jobs["replicatedJobs"]]
    return [manifest["spec"]["template"]["spec"]]


def claims(pod: dict) -> set[str]:
    return {
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }


@pytest.mark.parametrize("trainjob", [False, True])
@pytest.mark.parametrize("values", SPECS)
def test_alice_runs_as_alice_with_only_her_home_and_run_dir(values, trainjob):
    spec = JobSpec(**values)
    manifests = make_manifests(spec, attempt(spec, "alice", ALICE_JOB), HUB, trainjob)
    check_schema(manifests.primary)
    for pod in pod_specs(manifests.primary):
        assert pod["securityContext"] == {
            "runAsUser": 1001,
            "runAsGroup": 100,
            "fsGroup": 100,
            "fsGroupChangePolicy": "OnRootMismatch",
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        assert "automountServiceAccountToken" not in pod or not pod["automountServiceAccountToken"]
        assert claims(pod) == {"aicloud-data", "claim-alice"}
        (container,) = pod["containers"]
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        }
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["runs"] == {
            "name": "runs",
            "mountPath": f"{RUNS}/{ALICE_JOB}",
            "subPath": f"runs/{ALICE_JOB}",
        }
        assert mounts["workspace"] == {"name": "workspace", "mountPath": "/home/jovyan"}
        # Nothing of the claim that holds the service's state but her own run directory.
        runs_volume = {
            v["name"]
            for v in pod["volumes"]
            if v.get("persistentVolumeClaim", {}).get("claimName") == "aicloud-data"
        }
        for mount in container["volumeMounts"]:
            if mount["name"] in runs_volume:
                assert mount.get("subPath") == f"runs/{ALICE_JOB}"


BOB_NAMING_ALICE = [
    {"command": ["cat", "/home/alice/private.txt", f"{RUNS}/{ALICE_JOB}/plan.json"]},
    {"script": "../alice/train.py", "cwd": "../alice", "env": {"HOME": "/home/alice"}},
    {"kind": "notebook", "notebook": "../alice/private.ipynb"},
    {
        "kind": "train",
        "framework": "torch",
        "script": "/home/alice/t.py",
        "resources": {"nodes": 2},
    },
]


@pytest.mark.parametrize("trainjob", [False, True])
@pytest.mark.parametrize("values", BOB_NAMING_ALICE)
def test_bobs_spec_naming_alices_paths_gets_nothing_of_alice(values, trainjob):
    """Whatever bob's spec names, his pods hold only his volumes and run as his uid: a path of
    alice's resolves inside bob's own home, or nowhere."""
    spec = JobSpec(**values)
    manifests = make_manifests(spec, attempt(spec, "bob", BOB_JOB), HUB, trainjob)
    check_schema(manifests.primary)
    for pod in pod_specs(manifests.primary):
        assert pod["securityContext"]["runAsUser"] == 1002
        assert claims(pod) == {"aicloud-data", "claim-bob"}
        (container,) = pod["containers"]
        mounted = json.dumps([pod["volumes"], container["volumeMounts"], pod["securityContext"]])
        assert "alice" not in mounted and ALICE_JOB not in mounted
        # Staged files (the files ConfigMap, made of his own spec) aside.
        subpaths = {m.get("subPath") for m in container["volumeMounts"] if m["name"] != "files"}
        assert subpaths == {f"runs/{BOB_JOB}", None}


def test_a_shared_home_volume_mounts_only_the_owners_directory():
    config = ClusterConfig(
        runs_claim="aicloud-runs",
        workspace_claim="home-nfs",
        workspace_subpath="homes/{username}",
        owner_uids={"alice": 1001},
    )
    spec = JobSpec(command=["true"])
    pod = make_manifests(spec, attempt(spec, "alice", ALICE_JOB), config).primary
    mounts = pod["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "workspace", "mountPath": "/home/jovyan", "subPath": "homes/alice"} in mounts
    assert {"name": "runs", "mountPath": f"{RUNS}/{ALICE_JOB}", "subPath": ALICE_JOB} in mounts
    check_schema(pod)


def test_claim_names_follow_kubespawners_slugs():
    assert expand_owner("claim-{username}", "alice") == "claim-alice"
    safe = expand_owner("claim-{username}", "Alice.Smith@example.org")
    assert safe.startswith("claim-alice-smith-example-org---") and safe == safe.lower()
    assert expand_owner("claim-{escaped_username}", "Alice.S") == "claim--41lice-2e-53"
    assert expand_owner("home-nfs", None) == "home-nfs"  # no template: nobody needed


def test_unknown_owner_root_uid_and_missing_owner_are_refused():
    spec = JobSpec(command=["true"])
    with pytest.raises(OwnerError, match="owner_uids"):
        make_manifests(spec, attempt(spec, "carol", "job-ca401"), HUB)
    root = ClusterConfig(owner_uids={"alice": 0})
    with pytest.raises(OwnerError, match="never run as root"):
        make_manifests(spec, attempt(spec, "alice", ALICE_JOB), root)
    with pytest.raises(OwnerError, match="has none"):
        make_manifests(spec, attempt(spec, None, ALICE_JOB), HUB)
    outside = attempt(spec, "alice", ALICE_JOB, run_dir="/srv/aicloud/state")
    with pytest.raises(OwnerError, match="not inside"):
        make_manifests(spec, outside, HUB)
    dotdot = attempt(spec, "alice", ALICE_JOB, run_dir=f"{RUNS}/../state")
    with pytest.raises(OwnerError, match="not inside"):
        make_manifests(spec, dotdot, HUB)


def test_check_owner_says_before_submission_what_would_fail():
    check_owner("alice", HUB)
    with pytest.raises(OwnerError, match="owner_uids"):
        check_owner("carol", HUB)
    with pytest.raises(OwnerError, match="only {username}"):
        check_owner("alice", ClusterConfig(workspace_claim="claim-{user}"))


# -- one shared homes volume, seen by the service at /home/<name> ------------------------------

HOMES = ClusterConfig(
    namespace="ml",
    runs_claim="aicloud-runs",
    runs_path=RUNS,
    workspace_claim="aicloud-homes",
    workspace_subpath="{unescaped_username}",
    workspace_path="/home/jovyan",
    owner_uids={"alice": 1001, "bob": 1002},
    default_uid=None,
)


def workspace_mounts(pod: dict) -> list[dict]:
    (container,) = pod["containers"]
    return [m for m in container["volumeMounts"] if m["name"] == "workspace"]


@pytest.mark.parametrize("trainjob", [False, True])
@pytest.mark.parametrize("values", SPECS)
def test_the_owners_home_is_mounted_where_notebooks_and_the_service_see_it(values, trainjob):
    spec = JobSpec(**values)
    ctx = attempt(spec, "alice", ALICE_JOB, root="/home/alice", working_dir="/home/alice/work")
    manifests = make_manifests(spec, ctx, HOMES, trainjob)
    check_schema(manifests.primary)
    for pod in pod_specs(manifests.primary):
        assert workspace_mounts(pod) == [
            {"name": "workspace", "mountPath": "/home/jovyan", "subPath": "alice"},
            {"name": "workspace", "mountPath": "/home/alice", "subPath": "alice"},
        ]
        assert claims(pod) == {"aicloud-runs", "aicloud-homes"}
        if not trainjob or manifests.primary["kind"] == "Job":
            (container,) = pod["containers"]
            assert container["workingDir"] == "/home/alice/work"  # inside the second mount


@pytest.mark.parametrize("trainjob", [False, True])
@pytest.mark.parametrize("values", BOB_NAMING_ALICE)
def test_bob_never_gets_alices_folder_of_the_shared_homes_volume(values, trainjob):
    spec = JobSpec(**values)
    ctx = attempt(spec, "bob", BOB_JOB, root="/home/bob", working_dir="/home/bob")
    manifests = make_manifests(spec, ctx, HOMES, trainjob)
    check_schema(manifests.primary)
    for pod in pod_specs(manifests.primary):
        assert pod["securityContext"]["runAsUser"] == 1002
        assert {m["subPath"] for m in workspace_mounts(pod)} == {"bob"}
        (container,) = pod["containers"]
        mounted = json.dumps([pod["volumes"], container["volumeMounts"]])
        assert "alice" not in mounted and ALICE_JOB not in mounted
    # The folder is the owner's whatever the root says: a root of alice's (a service
    # misconfigured) shows bob's own folder there, never hers.
    wrong = attempt(spec, "bob", BOB_JOB, root="/home/alice", working_dir="/home/alice")
    pod = pod_specs(make_manifests(spec, wrong, HOMES, trainjob).primary)[0]
    assert {m["subPath"] for m in workspace_mounts(pod)} == {"bob"}


def test_one_mount_where_the_service_sees_the_home_where_notebooks_do():
    spec = JobSpec(command=["true"])
    for root in ("/home/jovyan", "/home/jovyan/", "/home/jovyan/projects", "/home", "/"):
        ctx = attempt(spec, "alice", ALICE_JOB, root=root, working_dir="/home/jovyan")
        pod = pod_specs(make_manifests(spec, ctx, HOMES).primary)[0]
        assert workspace_mounts(pod) == [
            {"name": "workspace", "mountPath": "/home/jovyan", "subPath": "alice"}
        ], root
    no_root = attempt(spec, "alice", ALICE_JOB, working_dir="/home/jovyan")
    assert len(workspace_mounts(pod_specs(make_manifests(spec, no_root, HOMES).primary)[0])) == 1
    for bad in ("home/alice", "/home/../srv"):
        ctx = attempt(spec, "alice", ALICE_JOB, root=bad, working_dir="/home/jovyan")
        with pytest.raises(OwnerError, match="not an absolute path"):
            make_manifests(spec, ctx, HOMES)


def test_the_workspace_path_may_name_the_owner():
    config = ClusterConfig(
        workspace_claim="aicloud-homes",
        workspace_subpath="{unescaped_username}",
        workspace_path="/users/{username}",
        owner_uids={"Alice.Smith": 1001},
    )
    spec = JobSpec(command=["true"])
    ctx = attempt(spec, "Alice.Smith", ALICE_JOB, root="/home/Alice.Smith")
    pod = pod_specs(make_manifests(spec, ctx, config).primary)[0]
    slug = expand_owner("{username}", "Alice.Smith")
    assert slug != "Alice.Smith" and slug.startswith("alice-smith---")
    assert workspace_mounts(pod) == [
        {"name": "workspace", "mountPath": f"/users/{slug}", "subPath": "Alice.Smith"},
        {"name": "workspace", "mountPath": "/home/Alice.Smith", "subPath": "Alice.Smith"},
    ]
    check_owner("Alice.Smith", config)
    with pytest.raises(OwnerError, match="has none"):
        check_owner(None, config)


def test_the_unescaped_name_is_the_hubs_name_and_one_folder_only():
    assert expand_owner("{unescaped_username}", "Alice.Smith@Example.org") == (
        "Alice.Smith@Example.org"
    )
    for owner in ("..", ".", "bob/../alice", "a\0b"):
        with pytest.raises(OwnerError, match="cannot name a folder"):
            expand_owner("homes/{unescaped_username}", owner)
    # The slug schemes make any name one safe component.
    assert "/" not in expand_owner("{username}", "bob/../alice")
