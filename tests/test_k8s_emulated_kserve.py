"""Emulated pods (see ``tests/k8s_pods.py``) of the KServe predictor and of Kubeflow Trainer v2
TrainJobs: the generated ``InferenceService`` serves its model on the pod IP, where the
kubelet's readiness probe and clients reach it; a TrainJob's pods get what Trainer gives them
and run torchrun across two pods, the script named relative to the job's directory.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from aicloud.backends.kubernetes.builders import AttemptContext, ClusterConfig
from aicloud.backends.kubernetes.planning import make_manifests
from aicloud.backends.kubernetes.shapes import PodShape
from aicloud.inference.kserve import inference_service
from aicloud.spec import JobSpec
from tests.conftest import wait_for
from tests.inference_models import rows, save_torch_models, tiny_net, torch_outputs
from tests.k8s_pods import (
    COMPLETION_INDEX,
    TRAINER_SOURCE,
    Pod,
    inference_service_pods,
    pod_networks,
    run_pods,
    running_pods,
    trainjob_pods,
)

SCRIPTS = Path(__file__).parent / "scripts"
READY = {"httpGet": {"path": "/v2/health/ready", "port": 8081}}


@pytest.fixture
def network():
    with pod_networks() as open_for:
        yield open_for


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """The folder of a saved TinyNet (``tiny.pt``): what the model's bucket holds."""
    folder = tmp_path_factory.mktemp("bucket")
    save_torch_models(folder)
    return folder


def get_json(net, url: str) -> tuple[int, dict]:
    """GET from the node's namespace: the status and JSON body, or 0 and the error's words."""
    status, body = net.http("GET", url)
    return status, json.loads(body) if status else {"error": body.decode()}


# --- the KServe predictor ---------------------------------------------------------------


def test_the_kserve_predictor_serves_on_its_pod_ip(tmp_path, network, saved):
    spec = JobSpec.model_validate(
        {"kind": "serve", "name": "Tiny Model", "image": "ghcr.io/acme/aicloud:1.0",
         "inference": {"model": "models/tiny.pt", "input_shape": [4], "max_wait_ms": 1}}
    )  # fmt: skip
    isvc = inference_service(spec, "pvc://models/tiny.pt", namespace="team-a")
    mnt = tmp_path / "mnt-models"  # the storage initializer's download of STORAGE_URI
    mnt.mkdir()
    shutil.copy(saved / "tiny.pt", mnt / "tiny.pt")
    (pod,) = inference_service_pods(isvc, mounts={"/mnt/models": mnt})
    assert pod.name == "tiny-model-predictor-emulated-0" and pod.cwd == str(mnt)
    assert pod.argv[:3] == [sys.executable, "-m", "aicloud.inference.server"]
    assert "--model=tiny.pt" in pod.argv and "--host=0.0.0.0" in pod.argv
    assert pod.env["STORAGE_URI"] == "pvc://models/tiny.pt"
    probe = pod.readiness_probe["httpGet"]

    net = network([pod])
    logs = tmp_path / "logs"
    with running_pods([pod], net, logs, ready_timeout=240) as (process,):
        base = f"http://{pod.ip}:{probe['port']}"
        # Ready through the probe's own path and port on the pod IP, as the kubelet saw it.
        assert get_json(net, base + probe["path"]) == (200, {"ready": True})
        assert get_json(net, f"{base}/v2/health/live") == (200, {"live": True})
        status, server = get_json(net, f"{base}/v2")
        assert status == 200 and server["name"] == "aicloud"
        status, meta = get_json(net, f"{base}/v2/models/tiny-model")
        assert status == 200, meta
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
        assert meta["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 2]}]
        assert meta["platform"] == "pytorch_torchscript"
        assert get_json(net, f"{base}/v2/models/tiny-model/ready")[0] == 200

        x = rows(5, seed=3)
        request = {"id": "r-1", "inputs": [{"name": "input", "shape": [5, 4], "datatype": "FP32",
                                            "data": x.reshape(-1).tolist()}]}  # fmt: skip
        status, body = net.http(
            "POST", f"{base}/v2/models/tiny-model/infer", json.dumps(request).encode(),
            {"Content-Type": "application/json"},
        )  # fmt: skip
        assert status == 200, body
        answer = json.loads(body)
        assert answer["id"] == "r-1" and answer["model_name"] == "tiny-model"
        (out,) = answer["outputs"]
        assert out["shape"] == [5, 2] and out["datatype"] == "FP32"
        expected = torch_outputs(tiny_net(saved), x)
        np.testing.assert_allclose(np.array(out["data"]).reshape(5, 2), expected, atol=1e-5)
        assert process.poll() is None
    log = (logs / f"{pod.name}.log").read_text()
    assert process.returncode == 0, log  # SIGTERM: a clean stop
    assert f"listening on http://{pod.ip}:8080 (bound to 0.0.0.0:8080)" in log, log
    assert log.rstrip().endswith("stopped"), log


def test_the_predictor_needs_the_storage_initializer_download(tmp_path):
    spec = JobSpec.model_validate(
        {"kind": "serve", "name": "m", "image": "img:1", "inference": {"model": "m.pt"}}
    )
    isvc = inference_service(spec, "s3://bucket/m.pt")
    with pytest.raises(ValueError, match="storage initializer would download 's3://bucket/m.pt'"):
        inference_service_pods(isvc)
    with pytest.raises(ValueError, match="storage initializer"):
        inference_service_pods(isvc, mounts={"/mnt/models": tmp_path})  # empty: not downloaded


def server_pod(name: str, index: int, folder: Path, config: dict, probe: bool = True) -> Pod:
    """A pod that runs the model server in ``--config`` mode, as the serve launcher writes it."""
    path = folder / f"{name}.json"
    path.write_text(json.dumps(config))
    return Pod(
        name=name,
        index=index,
        namespace="team-a",
        subdomain=None,
        argv=[sys.executable, "-m", "aicloud.inference.server", f"--config={path}"],
        env={"HOSTNAME": name},
        cwd=str(folder),
        readiness_probe=READY if probe else None,
    )


def test_config_host_and_advertise_url(tmp_path, network, saved):
    def config(index: int, **extra) -> dict:
        options = {"model": "tiny.pt", "input_shape": [4], "port": 8081}
        return {"options": options, "name": "tiny", "cwd": str(saved),
                "endpoint_file": str(tmp_path / f"endpoint-{index}.json"), **extra}  # fmt: skip

    pods = [
        server_pod("any-0", 0, tmp_path, config(0, host="0.0.0.0")),
        server_pod("named-1", 1, tmp_path, config(1, host="0.0.0.0",
                                                  advertise_url="http://tiny.team-a.svc:8081/")),
        server_pod("local-2", 2, tmp_path, config(2), probe=False),  # no host: 127.0.0.1
    ]  # fmt: skip
    net = network(pods)
    with running_pods(pods, net, tmp_path / "logs", ready_timeout=240):
        endpoints = [tmp_path / f"endpoint-{i}.json" for i in range(3)]
        wait_for(lambda: endpoints[2].exists(), timeout=240)
        urls = [json.loads(e.read_text())["url"] for e in endpoints]
        # 0.0.0.0 reaches nobody: the server advertises its pod's address.
        assert urls[0] == f"http://{pods[0].ip}:8081"
        assert urls[1] == "http://tiny.team-a.svc:8081"
        assert json.loads(endpoints[1].read_text())["infer_url"] == (
            "http://tiny.team-a.svc:8081/v2/models/tiny/infer"
        )
        assert get_json(net, f"{urls[0]}/v2/health/ready") == (200, {"ready": True})
        assert get_json(net, f"http://{pods[1].ip}:8081/v2/health/live") == (200, {"live": True})
        # The default is unchanged: 127.0.0.1 only, so nothing answers on the pod IP.
        assert urls[2] == "http://127.0.0.1:8081"
        status, answer = get_json(net, f"http://{pods[2].ip}:8081/v2/health/live")
        assert status == 0 and "Connection refused" in answer["error"]


# --- Kubeflow Trainer v2 TrainJob -----------------------------------------------------------

MINIMAL_TRAINJOB = {
    "apiVersion": "trainer.kubeflow.org/v1alpha1",
    "kind": "TrainJob",
    "metadata": {"name": "mnist", "namespace": "team-a"},
    "spec": {
        "runtimeRef": {"name": "torch-distributed"},
        "trainer": {
            "image": "ghcr.io/acme/train:1",
            "command": ["torchrun", "train.py"],
            "args": ["--rank=$(PET_NODE_RANK)"],
            "numNodes": 2,
            "env": [{"name": "LOG_LEVEL", "value": "debug"}],
            "resourcesPerNode": {"requests": {"cpu": "1500m"}},
        },
    },
}


def test_trainjob_pods_get_what_trainer_gives_them(tmp_path):
    """Expected values read in Kubeflow Trainer at ``TRAINER_SOURCE`` (8c0f5059, 2026-08-21):

    - ``pkg/runtime/framework/plugins/torch/torch.go`` (EnforceMLPolicy): PET_NNODES is
      ``numNodes``; PET_NPROC_PER_NODE "auto" becomes the rounded-up CPU request when no GPU is
      asked for (getNumCPUPerNode); PET_NODE_RANK is a fieldRef of the completion-index
      annotation; PET_MASTER_ADDR ``fmt.Sprintf("%s-%s-0-0.%s", trainJob.Name, "node",
      trainJob.Name)``; PET_MASTER_PORT ``constants.ContainerTrainerPort`` (29500); the trainer's
      env first, the PET_* after it; torch_test.go expects ``test-job-node-0-0.test-job``.
    - ``pkg/runtime/framework/plugins/jobset/jobset.go`` (syncPodNetwork): endpoints
      ``<trainjob>-<replicatedJob>-<jobIndex>-<podIndex>.<subdomain>``, the subdomain the
      TrainJob's name.
    - ``manifests/base/runtimes/torch_distributed.yaml``: the ``node`` container has no
      workingDir, so a pod starts in the image's directory, never the job's.
    """
    assert TRAINER_SOURCE.endswith("8c0f5059bd51ec3ba6d6a6a7b2e1471de7bc13b3")
    pods = trainjob_pods(MINIMAL_TRAINJOB, image_root=tmp_path)
    assert [p.name for p in pods] == ["mnist-node-0-0", "mnist-node-0-1"]
    assert {p.subdomain for p in pods} == {"mnist"}
    assert pods[1].fqdn == "mnist-node-0-1.mnist.team-a.svc.cluster.local"
    for index, pod in enumerate(pods):
        assert pod.annotations[COMPLETION_INDEX] == str(index)
        assert pod.labels["jobset.sigs.k8s.io/jobset-name"] == "mnist"
        assert list(pod.env) == [
            "LOG_LEVEL", "PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR",
            "PET_MASTER_PORT", "JOB_COMPLETION_INDEX", "HOSTNAME",
        ]  # fmt: skip
        assert pod.env["PET_NNODES"] == "2"
        assert pod.env["PET_NPROC_PER_NODE"] == "2"  # 1500m CPU, rounded up
        assert pod.env["PET_NODE_RANK"] == str(index)
        assert pod.env["PET_MASTER_ADDR"] == "mnist-node-0-0.mnist"
        assert pod.env["PET_MASTER_PORT"] == "29500"
        assert pod.env["HOSTNAME"] == pod.name
        assert pod.argv == ["torchrun", "train.py", f"--rank={index}"]
        cwd = Path(pod.cwd)  # the image's working directory: empty, the pod's own
        assert cwd.parent == tmp_path and not any(cwd.iterdir())
    assert pods[0].cwd != pods[1].cwd


def test_trainjob_patches_and_what_trainer_refuses(tmp_path):
    trainjob = json.loads(json.dumps(MINIMAL_TRAINJOB))
    trainjob["spec"]["trainer"]["numProcPerNode"] = 4
    mount = {"name": "runs", "mountPath": "/srv/runs/job-1"}
    node = {"name": "node", "volumeMounts": [mount]}
    pod_template = {"metadata": {"labels": {"aicloud.dev/job-id": "job-1"}},
                    "spec": {"containers": [node]}}  # fmt: skip
    patch = {"name": "node", "template": {"spec": {"template": pod_template}}}
    trainjob["spec"]["runtimePatches"] = [
        {"manager": "aicloud.dev/test",
         "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [patch]}}}}
    ]  # fmt: skip
    trainjob["spec"]["trainer"]["args"] = ["--out=/srv/runs/job-1/model.pt"]
    with pytest.raises(ValueError, match="'/srv/runs/job-1' is mounted .* map it"):
        trainjob_pods(trainjob, image_root=tmp_path)
    pods = trainjob_pods(
        trainjob, mounts={"/srv/runs/job-1": tmp_path / "run"}, image_root=tmp_path
    )
    assert pods[0].volume_mounts == [mount]
    assert pods[0].labels["aicloud.dev/job-id"] == "job-1"
    assert pods[0].env["PET_NPROC_PER_NODE"] == "4"
    assert pods[0].argv[-1] == f"--out={tmp_path / 'run'}/model.pt"

    reserved = json.loads(json.dumps(MINIMAL_TRAINJOB))
    reserved["spec"]["trainer"]["env"].append({"name": "PET_MASTER_PORT", "value": "1"})
    with pytest.raises(ValueError, match=r"must not have reserved envs.*PET_MASTER_PORT"):
        trainjob_pods(reserved)  # torch.go Validate
    node["env"] = [{"name": "A", "value": "b"}]
    with pytest.raises(ValueError, match="must not have envs for the .*node containers"):
        trainjob_pods(trainjob, mounts={"/srv/runs/job-1": tmp_path})  # jobset.go Validate


def test_a_trainjob_runs_torchrun_across_two_pods_with_a_relative_script(tmp_path, network):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = {
        "AICLOUD_JOB_ID": "job-emutj000001",
        "AICLOUD_RUN_DIR": str(run_dir),
        "AICLOUD_ATTEMPT": "1",
        "AICLOUD_CHECKPOINT_DIR": str(run_dir / "checkpoints"),
    }
    shape = PodShape(image="ghcr.io/aicloud/worker-cpu:0.1.0", limits={"cpu": "1"})
    ctx = AttemptContext("job-emutj000001", 1, shape, str(SCRIPTS), str(run_dir), env)
    spec = JobSpec(
        kind="train",
        framework="torch",
        script="ddp_train.py",  # relative to the job's directory, not the image's
        args=["3", str(tmp_path / "model.pt")],
        resources={"nodes": 2, "procs_per_node": 1},
    )
    trainjob = make_manifests(spec, ctx, ClusterConfig(namespace="team-a"), trainjob=True).primary
    assert trainjob["kind"] == "TrainJob"
    pods = trainjob_pods(trainjob, image_root=tmp_path)
    name = trainjob["metadata"]["name"]
    assert [p.env["PET_MASTER_ADDR"] for p in pods] == [f"{name}-node-0-0.{name}"] * 2
    assert all(Path(p.cwd).parent == tmp_path for p in pods)  # not the job's directory

    codes = run_pods(pods, network(pods), tmp_path / "logs", timeout=240)
    logs = {p.index: (tmp_path / "logs" / f"{p.name}.log").read_text() for p in pods}
    assert codes == [0, 0], logs
    for rank in (0, 1):
        assert f"[rank{rank}]:step 2 loss" in logs[0] + logs[1], logs
    assert (tmp_path / "model.pt").stat().st_size > 0
    assert (run_dir / "checkpoints" / "ckpt.pt").exists()
