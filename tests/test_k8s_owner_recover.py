"""The Kubernetes backend with owners and crashes, against the FAKE API server.

The owner reaches the pods (uid, own claim) through ``start``; a bad owner is a 400 at
``validate``; ``recover`` adopts the attempt's Job by its name, or finds that it never ran.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aicloud.backends.kubernetes.backend import KubernetesBackend
from aicloud.errors import InvalidSpec
from aicloud.launchers import LaunchPlan
from aicloud.spec import JobSpec
from tests.helpers import start_attempt
from tests.k8s_fake import FakeKubernetes

CATALOG = Path(__file__).parent.parent / "spawner_config" / "hardware.yaml"
JOB_ID = "job-0123456789ab"


@pytest.fixture
def fake():
    server = FakeKubernetes().start()
    yield server
    server.stop()


def backend_for(fake: FakeKubernetes, tmp_path: Path, **traits) -> KubernetesBackend:
    return KubernetesBackend(
        kubeconfig=fake.kubeconfig(tmp_path / "kubeconfig"),
        catalog_path=str(CATALOG),
        runs_claim="aicloud-runs",
        workspace_claim="claim-{username}",
        owner_uids={"alice": 1001, "bob": 1002},
        default_uid=None,
        explain_interval=0.0,
        **traits,
    )


def plan_for(run_dir: Path, tmp_path: Path) -> LaunchPlan:
    env = {"AICLOUD_JOB_ID": JOB_ID, "AICLOUD_RUN_DIR": str(run_dir)}
    return LaunchPlan.single(["python", "-c", "print(1)"], env, tmp_path)


async def test_the_owner_reaches_the_pod_and_recover_adopts_it(fake, tmp_path):
    backend = backend_for(fake, tmp_path)
    spec = JobSpec(command=["python", "-c", "print(1)"])
    run_dir = tmp_path / "runs" / JOB_ID
    run_dir.mkdir(parents=True)
    launch = backend.prepare(JOB_ID, 1)
    # Before the start: the cluster has nothing of that name, so it never ran.
    assert await backend.recover(launch, run_dir, 1) is None
    try:
        handle = await start_attempt(
            backend,
            plan_for(run_dir, tmp_path),
            run_dir,
            1,
            None,
            spec,
            owner="alice",
            launch=launch,
        )
        pod = fake.get("jobs", handle["name"])["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == 1001
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in pod["volumes"]
            if "persistentVolumeClaim" in v
        ]
        assert "claim-alice" in claims and "claim-bob" not in claims
        # A server that died before storing the handle finds the same Job again.
        adopted = await backend.recover(launch, run_dir, 1)
        assert adopted["name"] == handle["name"] == launch["name"]
        assert adopted["uid"] == handle["uid"]
    finally:
        await backend.close()


async def test_an_owner_without_a_uid_is_refused_before_the_job_is_stored(fake, tmp_path):
    backend = backend_for(fake, tmp_path)
    spec = JobSpec(command=["true"])
    backend.validate(spec, "alice")
    with pytest.raises(InvalidSpec) as refused:
        backend.validate(spec, "mallory")
    assert refused.value.field == "owner"
    await backend.close()
