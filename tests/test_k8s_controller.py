"""The Kubernetes backend against the FAKE API server of ``tests/k8s_fake.py``.

kubernetes_asyncio talks HTTP to the fake as to a cluster: create, list-then-watch, pod logs,
events, delete. The tests play the kubelet and the scheduler (pods run, print, exit).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from aicloud.backends.kubernetes.backend import KubernetesBackend
from aicloud.manager import classify
from aicloud.spec import JobSpec, ReasonCode
from tests.helpers import plan_for_backend, start_attempt
from tests.k8s_fake import FakeKubernetes

CATALOG = Path(__file__).parent.parent / "spawner_config" / "hardware.yaml"
TORCH = {"kind": "train", "framework": "torch", "script": "train.py"}


@pytest.fixture
def fake():
    server = FakeKubernetes().start()
    yield server
    server.stop()


@pytest.fixture
def fake_trainer():
    server = FakeKubernetes(trainjob=True).start()
    yield server
    server.stop()


def make_backend(fake: FakeKubernetes, tmp_path: Path) -> KubernetesBackend:
    return KubernetesBackend(
        kubeconfig=fake.kubeconfig(tmp_path / "kubeconfig"),
        catalog_path=str(CATALOG),
        explain_interval=0.0,
        cancel_grace_seconds=1.0,
        log_drain_seconds=5.0,
    )


async def start(
    backend: KubernetesBackend, tmp_path: Path, spec: JobSpec, job_id="job-aaaabbbbcccc"
):
    run_dir = tmp_path / "runs" / job_id
    run_dir.mkdir(parents=True)
    (tmp_path / "train.py").touch()
    env = {"AICLOUD_JOB_ID": job_id, "AICLOUD_RUN_DIR": str(run_dir)}
    plan = plan_for_backend(backend, spec, job_id, run_dir, tmp_path, env)
    return await start_attempt(backend, plan, run_dir, 1, spec.timeout_seconds, spec), run_dir


@pytest.fixture(autouse=True)
def server_secret(monkeypatch):
    """A variable of the service's own that no pod may see."""
    monkeypatch.setenv("SECRET_OF_SERVER", "x")


async def until(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while not (result := await predicate()):
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)
    return result


async def outcome_of(backend, handle, timeout: float = 15.0):
    async def ended():
        return await backend.poll(handle)

    return await until(ended, timeout)


async def test_torch_job_runs_and_streams_every_rank(fake, tmp_path):
    backend = make_backend(fake, tmp_path)
    spec = JobSpec(**TORCH, resources={"nodes": 2, "cpu": 1})
    handle, run_dir = await start(backend, tmp_path, spec)
    try:
        assert handle["kind"] == "Job" and handle["name"] == "job-aaaabbbbcccc-a1"
        job = fake.get("jobs", handle["name"])
        service = fake.get("services", handle["name"])
        assert service["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
        env = {e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert "SECRET_OF_SERVER" not in env and "AICLOUD_JOB_ID" in env
        assert await backend.poll(handle) is None
        woken = asyncio.Event()
        backend.watch(handle, woken.set)

        pods = fake.pod_names(handle["name"])
        assert len(pods) == 2
        for pod in pods:
            fake.run_pod(pod)
        fake.log(pods[0], "agent starting\n[rank0]:step 1 loss 0.5")
        fake.log(pods[1], "[rank1]:step 1 loss 0.6")
        await until(lambda: _contains(run_dir / "output.log", "[rank1]:step 1"))
        fake.log(pods[0], "[rank0]:done")
        fake.finish_pod(pods[1], 0)
        fake.finish_pod(pods[0], 0)
        await asyncio.wait_for(woken.wait(), 10)
        outcome = await outcome_of(backend, handle)
        assert outcome.succeeded
        log = (run_dir / "output.log").read_text()
        assert "[aicloud]: created Job job-aaaabbbbcccc-a1" in log
        for line in (
            "agent starting",
            "[rank0]:step 1 loss 0.5",
            "[rank1]:step 1 loss 0.6",
            "[rank0]:done",
        ):
            assert f"{line}\n" in log
    finally:
        await backend.close()


async def _contains(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text()


async def test_tensorflow_worker_lines_get_their_rank(fake, tmp_path):
    backend = make_backend(fake, tmp_path)
    spec = JobSpec(kind="train", framework="tensorflow", script="train.py", resources={"nodes": 2})
    handle, run_dir = await start(backend, tmp_path, spec)
    try:
        pods = fake.pod_names(handle["name"])
        for index, pod in enumerate(pods):
            fake.run_pod(pod)
            fake.log(pod, f"worker {index} ready")
            fake.finish_pod(pod, 0)
        assert (await outcome_of(backend, handle)).succeeded
        log = (run_dir / "output.log").read_text()
        assert "[rank0]:worker 0 ready\n" in log and "[rank1]:worker 1 ready\n" in log
    finally:
        await backend.close()


async def test_user_code_exit_fails_the_attempt_with_its_code(fake, tmp_path):
    backend = make_backend(fake, tmp_path)
    handle, _ = await start(backend, tmp_path, JobSpec(**TORCH, resources={"nodes": 2}))
    try:
        pods = fake.pod_names(handle["name"])
        fake.run_pod(pods[0])
        fake.run_pod(pods[1])
        fake.finish_pod(pods[1], 3)
        outcome = await outcome_of(backend, handle)
        assert outcome.exit_code == 3
        assert classify(outcome, None) == (ReasonCode.user_error, "exited with code 3")
        job = fake.get("jobs", handle["name"])
        assert job["status"]["conditions"][-1]["reason"] == "PodFailurePolicy"
    finally:
        await backend.close()


async def test_out_of_memory_is_an_infrastructure_failure(fake, tmp_path):
    backend = make_backend(fake, tmp_path)
    handle, _ = await start(backend, tmp_path, JobSpec(**TORCH))
    try:
        (pod,) = fake.pod_names(handle["name"])
        fake.run_pod(pod)
        fake.finish_pod(pod, 137, reason="OOMKilled")
        outcome = await outcome_of(backend, handle)
        assert classify(outcome, None)[0] is ReasonCode.infrastructure
    finally:
        await backend.close()


async def test_disruption_does_not_count_and_the_pod_is_replaced(fake, tmp_path):
    backend = make_backend(fake, tmp_path)
    handle, _ = await start(backend, tmp_path, JobSpec(**TORCH, resources={"nodes": 2}))
    try:
        first = fake.pod_names(handle["name"])
        fake.run_pod(first[0])
        fake.disrupt_pod(first[0])
        now = fake.pod_names(handle["name"])
        assert len(now) == 3 and first[0] in now  # the evicted pod and its replacement
        assert await backend.poll(handle) is None
    finally:
        await backend.close()


async def test_deadline_exceeded_is_a_timeout(fake, tmp_path):
    backend = make_backend(fake, tmp_path)
    spec = JobSpec(**TORCH, timeout_seconds=5)
    handle, _ = await start(backend, tmp_path, spec)
    try:
        assert fake.get("jobs", handle["name"])["spec"]["activeDeadlineSeconds"] == 5
        fake.fail_job(handle["name"], "DeadlineExceeded", "Job was active longer than specified")
        outcome = await outcome_of(backend, handle)
        assert classify(outcome, 5) == (ReasonCode.timeout, "timed out after 5 s")
    finally:
        await backend.close()


async def test_lost_pods_beyond_the_backoff_limit_are_infrastructure(fake, tmp_path):
    backend = make_backend(fake, tmp_path)
    handle, _ = await start(backend, tmp_path, JobSpec(**TORCH))
    try:
        fake.fail_job(
            handle["name"], "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        )
        outcome = await outcome_of(backend, handle)
        code, reason = classify(outcome, None)
        assert code is ReasonCode.infrastructure and "BackoffLimitExceeded" in reason
    finally:
        await backend.close()


async def test_cancel_deletes_everything_with_foreground_propagation(fake, tmp_path):
    backend = make_backend(fake, tmp_path)
    handle, _ = await start(backend, tmp_path, JobSpec(**TORCH, resources={"nodes": 2}))
    try:
        for pod in fake.pod_names(handle["name"]):
            fake.run_pod(pod)
        await backend.cancel(handle)
        assert fake.deletes == [
            {
                "plural": "jobs",
                "name": handle["name"],
                "propagationPolicy": "Foreground",
                "gracePeriodSeconds": 1,
            }
        ]
        assert fake.names("jobs") == fake.names("pods") == fake.names("services") == []
        outcome = await backend.poll(handle)
        assert outcome.lost  # nothing is left of it
    finally:
        await backend.close()


async def test_pending_job_says_why_in_its_log(fake, tmp_path):
    backend = make_backend(fake, tmp_path)
    spec = JobSpec(**TORCH, resources={"accelerator": "nvidia.com/gpu", "accelerator_count": 1})
    handle, run_dir = await start(backend, tmp_path, spec)
    try:
        (pod,) = fake.pod_names(handle["name"])
        fake.event(
            pod,
            "FailedScheduling",
            "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. "
            "preemption: 0/3 nodes are available.",
        )
        assert await backend.poll(handle) is None
        why = "pending: no node can run the pod (0/3 available): 3 node(s) lack free nvidia.com/gpu"
        assert f"[aicloud]: {why}\n" in (run_dir / "output.log").read_text()
        fake.waiting_pod(
            pod, "ImagePullBackOff", 'Back-off pulling image "ghcr.io/aicloud/worker-cuda:0.1.0"'
        )
        explanation = await until(lambda: _pull_explained(backend, handle))
        assert explanation.startswith("image pull back-off: ghcr.io/aicloud/worker-cuda:0.1.0")
    finally:
        await backend.close()


async def _pull_explained(backend, handle):
    why = await backend.explain(handle)
    return why if why and why.startswith("image pull") else None


async def test_trainjob_is_used_where_the_crd_is_installed(fake_trainer, tmp_path):
    backend = make_backend(fake_trainer, tmp_path)
    handle, _ = await start(backend, tmp_path, JobSpec(**TORCH, resources={"nodes": 2}))
    try:
        assert handle["kind"] == "TrainJob"
        trainjob = fake_trainer.get("trainjobs", handle["name"])
        assert trainjob["spec"]["trainer"]["numNodes"] == 2
        assert backend.describe()["trainjob"] is True
        fake_trainer.complete("trainjobs", handle["name"])
        assert (await outcome_of(backend, handle)).succeeded
        # Elastic torch jobs stay Indexed Jobs: Trainer v2 has no MIN:MAX node counts.
        elastic = JobSpec(**TORCH, resources={"nodes": 2, "min_nodes": 1})
        handle2, _ = await start(backend, tmp_path, elastic, job_id="job-elasticccccc")
        assert handle2["kind"] == "Job"
    finally:
        await backend.close()


async def test_a_restarted_service_finds_the_attempt_and_resumes_its_log(fake, tmp_path):
    backend = make_backend(fake, tmp_path)
    spec = JobSpec(kind="train", framework="tensorflow", script="train.py")
    handle, run_dir = await start(backend, tmp_path, spec)
    (pod,) = fake.pod_names(handle["name"])
    fake.run_pod(pod)
    fake.log(pod, "before")
    await until(lambda: _contains(run_dir / "output.log", "[rank0]:before"))
    await backend.close()  # the service stops; the job goes on
    fake.log(pod, "while away")
    again = make_backend(fake, tmp_path)
    try:
        assert await again.poll(handle) is None
        fake.finish_pod(pod, 0)
        assert (await outcome_of(again, handle)).succeeded
        log = (run_dir / "output.log").read_text()
        assert log.count("[rank0]:before\n") == 1 and "[rank0]:while away\n" in log
    finally:
        await again.close()
