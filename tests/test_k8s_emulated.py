"""Emulated pods: the generated Indexed Job and headless Service of a 2-node torch job and a
2-worker TensorFlow job, run pod by pod in network namespaces (see ``tests/k8s_pods.py``).

Nothing in the manifests names an IP address: torchrun's c10d rendezvous and TensorFlow's
workers find each other only through the pods' headless-Service DNS names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aicloud.backends.kubernetes.builders import AttemptContext, ClusterConfig
from aicloud.backends.kubernetes.planning import make_manifests
from aicloud.backends.kubernetes.shapes import PodShape
from aicloud.spec import JobSpec
from tests.k8s_pods import PodNetwork, expand, job_pods, run_pods

SCRIPTS = Path(__file__).parent / "scripts"
CONFIG = ClusterConfig(namespace="team-a")

TF_TRAIN = """\
import json, os
import tensorflow as tf

config = json.loads(os.environ["TF_CONFIG"])
print("task", config["task"]["index"], "of", config["cluster"]["worker"], flush=True)
strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    w = tf.Variable(0.0)
optimizer = tf.keras.optimizers.SGD(0.1)


@tf.function
def train_step(x):
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((w * x - 3.0 * x) ** 2)
        optimizer.apply_gradients([(tape.gradient(loss, w), w)])
        return loss

    return strategy.reduce("MEAN", strategy.run(step, args=(x,)), axis=None)


for i in range(5):
    loss = train_step(tf.random.stateless_normal([16], seed=[config["task"]["index"], i]))
print("replicas", strategy.num_replicas_in_sync, "w", json.dumps(float(w.numpy())), flush=True)
"""


@pytest.fixture
def network():
    """Open pod networks for a test; every namespace is removed even if the test fails."""
    opened: list[PodNetwork] = []

    def open_for(pods):
        net = PodNetwork(pods)
        opened.append(net)
        return net.open()

    yield open_for
    for net in opened:
        net.close()
        assert not any(Path("/run/netns", name).exists() for name in (net.switch,))


def attempt(tmp_path: Path, job_id: str, working_dir: Path) -> AttemptContext:
    run_dir = tmp_path / "run"
    run_dir.mkdir()  # the job service makes it, on the runs volume
    env = {
        "AICLOUD_JOB_ID": job_id,
        "AICLOUD_RUN_DIR": str(run_dir),
        "AICLOUD_ATTEMPT": "1",
        "AICLOUD_CHECKPOINT_DIR": str(run_dir / "checkpoints"),
    }
    shape = PodShape(image="ghcr.io/aicloud/worker-cpu:0.1.0", limits={"cpu": "1"})
    return AttemptContext(job_id, 1, shape, str(working_dir), str(run_dir), env)


def test_expand_follows_kubernetes_rules():
    env = {"A": "x"}
    assert expand("$(A)-$(B)-$$(A)-$$$(A)-$", env) == "x-$(B)-$(A)-$x-$"


def test_torch_two_nodes_rendezvous_through_pod_dns(tmp_path, network):
    spec = JobSpec(
        kind="train",
        framework="torch",
        script="ddp_train.py",
        args=["3", str(tmp_path / "model.pt")],
        resources={"nodes": 2, "procs_per_node": 1},
        env={"LITERAL": "$(HOME)"},
    )
    ctx = attempt(tmp_path, "job-emutorch0001", SCRIPTS)
    manifests = make_manifests(spec, ctx, CONFIG)
    job, service = manifests.all
    pods = job_pods(job)
    assert [p.env["PET_NODE_RANK"] for p in pods] == ["0", "1"]
    assert (
        pods[0].env["PET_MASTER_ADDR"]
        == f"{job['metadata']['name']}-0.{service['metadata']['name']}"
    )
    assert pods[1].env["LITERAL"] == "$(HOME)"  # escaped: reaches the process as given
    assert pods[1].env["PET_RDZV_ENDPOINT"] == f"{pods[0].env['PET_MASTER_ADDR']}:29400"

    codes = run_pods(pods, network(pods), tmp_path / "logs", timeout=240)
    logs = {p.index: (tmp_path / "logs" / f"{p.name}.log").read_text() for p in pods}
    assert codes == [0, 0], logs
    for rank in (0, 1):
        assert f"[rank{rank}]:step 2 loss" in logs[0] + logs[1], logs
    assert (tmp_path / "model.pt").stat().st_size > 0
    assert (tmp_path / "run" / "checkpoints" / "ckpt.pt").exists()


def test_tensorflow_two_workers_through_tf_config(tmp_path, network):
    (tmp_path / "tf_train.py").write_text(TF_TRAIN)
    spec = JobSpec(
        kind="train",
        framework="tensorflow",
        script="tf_train.py",
        resources={"nodes": 2},
    )
    ctx = attempt(tmp_path, "job-emutf000001", tmp_path)
    job, _service = make_manifests(spec, ctx, CONFIG).all
    pods = job_pods(job)
    configs = [json.loads(p.env["TF_CONFIG"]) for p in pods]
    assert [c["task"] for c in configs] == [
        {"type": "worker", "index": 0},
        {"type": "worker", "index": 1},
    ]
    name = job["metadata"]["name"]
    assert configs[0]["cluster"]["worker"] == [f"{name}-0.{name}:2222", f"{name}-1.{name}:2222"]

    codes = run_pods(pods, network(pods), tmp_path / "logs", timeout=240)
    logs = [(tmp_path / "logs" / f"{p.name}.log").read_text() for p in pods]
    assert codes == [0, 0], logs
    weights = []
    for index, log in enumerate(logs):
        assert f"task {index} of" in log
        line = next(x for x in log.splitlines() if x.startswith("replicas"))
        assert line.startswith("replicas 2 w "), log
        weights.append(json.loads(line.split(" w ")[1]))
    assert weights[0] == weights[1] != 0.0  # all-reduced gradients: one model on both workers
