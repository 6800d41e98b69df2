"""TensorFlow train jobs: the launcher's plan, bad specs, and a 2-worker MWMS job end to end."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import psutil
import pytest

from aicloud.launchers import LaunchContext, LocalNetwork, launcher_for
from aicloud.launchers.base import threads_per_process
from aicloud.launchers.tensorflow import TensorFlowLauncher
from aicloud.launchers.torch import TorchLauncher
from aicloud.spec import JobSpec
from tests.helpers import api, job_log, submit, wait_job

TF = {"kind": "train", "framework": "tensorflow"}
THREADS = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")

# y = 3x - 2 with MultiWorkerMirroredStrategy and a custom training loop (Keras 3 ``fit`` is
# broken under MWMS). Each worker draws its own batches; the gradients are all-reduced.
TRAIN = """\
import json, os, shutil, tempfile

import tensorflow as tf

from aicloud import runtime

names = ["TF_CONFIG", "OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
         "TF_CPP_MIN_LOG_LEVEL"]
env = {name: os.environ.get(name) for name in names}
print("env", json.dumps(env), flush=True)
print("runtime", runtime.rank(), runtime.world_size(), runtime.is_chief(), flush=True)
strategy = tf.distribute.MultiWorkerMirroredStrategy()


class Line(tf.Module):
    def __init__(self):
        self.w = tf.Variable(0.0)
        self.b = tf.Variable(0.0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def __call__(self, x):
        return self.w * x + self.b


with strategy.scope():
    model = Line()
    optimizer = tf.keras.optimizers.SGD(0.1)


@tf.function
def train_step(x, y):
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(x) - y) ** 2)
        grads = tape.gradient(loss, [model.w, model.b])
        optimizer.apply_gradients(zip(grads, [model.w, model.b]))
        return loss

    return strategy.reduce("MEAN", strategy.run(step, args=(x, y)), axis=None)


for i in range(30):
    x = tf.random.stateless_normal([32], seed=[runtime.rank(), i])
    loss = train_step(x, 3.0 * x - 2.0)
    runtime.report(step=i + 1, total=30, loss=float(loss))
print("replicas", strategy.num_replicas_in_sync, "loss", float(loss), flush=True)
print("weights", json.dumps([float(model.w.numpy()), float(model.b.numpy())]), flush=True)
# Every worker saves (saving may run collectives); only the chief writes where it is kept.
final = str(runtime.checkpoint_dir() / "model")
target = final if runtime.is_chief() else tempfile.mkdtemp()
tf.saved_model.save(model, target)
print("saved", target, flush=True)
if not runtime.is_chief():
    shutil.rmtree(target)
"""

LOAD = """\
import json, sys

import tensorflow as tf

model = tf.saved_model.load(sys.argv[1])
y = model(tf.constant([0.0, 1.0])).numpy().tolist()
print("loaded", json.dumps([float(model.w.numpy()), float(model.b.numpy()), *y]), flush=True)
"""


class RepeatingPorts(LocalNetwork):
    """Loopback whose "free" ports repeat, as the OS may hand one out twice."""

    def __init__(self, ports: list[int]):
        super().__init__()
        self.ports = ports

    def free_port(self) -> int:
        return self.ports.pop(0)


def context(tmp_path: Path, env: dict[str, str] | None = None, cls=LaunchContext, **extra):
    return cls(
        job_id="job-tf",
        attempt=1,
        run_dir=tmp_path,
        cwd=tmp_path,
        env={"PATH": "/usr/bin", **(env or {})},
        python="/venv/bin/python",
        **extra,
    )


def spec(**fields) -> JobSpec:
    return JobSpec.model_validate({**TF, "script": "train.py", **fields})


def test_tensorflow_train_jobs_get_the_tensorflow_launcher():
    assert isinstance(launcher_for(spec()), TensorFlowLauncher)
    assert isinstance(launcher_for(spec(framework="torch")), TorchLauncher)


def test_plan_gives_each_worker_its_tf_config_and_rank_prefix(tmp_path):
    job = spec(args=["--epochs", "1"], resources={"nodes": 2, "procs_per_node": 2})
    plan = TensorFlowLauncher().plan(job, context(tmp_path))
    assert plan.cwd == tmp_path and plan.min_success is None
    assert [p.name for p in plan.processes] == ["worker-0", "worker-1", "worker-2", "worker-3"]
    configs = [json.loads(p.env["TF_CONFIG"]) for p in plan.processes]
    addresses = configs[0]["cluster"]["worker"]
    assert len(set(addresses)) == 4
    assert all(a.startswith("127.0.0.1:") and int(a.split(":")[1]) > 0 for a in addresses)
    threads = str(threads_per_process(4))
    for index, (process, config) in enumerate(zip(plan.processes, configs, strict=True)):
        assert config == {
            "cluster": {"worker": addresses},
            "task": {"type": "worker", "index": index},
        }
        assert process.argv == ["/venv/bin/python", "train.py", "--epochs", "1"]
        assert process.prefix == f"[rank{index}]:"
        assert not process.service
        assert process.env["PATH"] == "/usr/bin"
        assert all(process.env[name] == threads for name in THREADS)
        assert process.env["TF_CPP_MIN_LOG_LEVEL"] == "1"
    json.dumps(plan.to_json())  # what the supervisor reads


def test_ports_are_distinct_even_when_the_os_repeats_one(tmp_path):
    repeating = context(tmp_path, network=RepeatingPorts([5001, 5001, 5002, 5001, 5003]))
    plan = TensorFlowLauncher().plan(spec(resources={"procs_per_node": 3}), repeating)
    workers = [json.loads(p.env["TF_CONFIG"])["cluster"]["worker"] for p in plan.processes]
    assert workers == [["127.0.0.1:5001", "127.0.0.1:5002", "127.0.0.1:5003"]] * 3


def test_settings_the_user_chose_win(tmp_path):
    mine = {"OMP_NUM_THREADS": "7", "TF_NUM_INTEROP_THREADS": "3", "TF_CPP_MIN_LOG_LEVEL": "0"}
    # The manager merges the spec's env into the context's; the launcher must not override it.
    plan = TensorFlowLauncher().plan(spec(env=mine), context(tmp_path, env=mine))
    (worker,) = plan.processes
    assert {name: worker.env[name] for name in mine} == mine
    assert worker.env["TF_NUM_INTRAOP_THREADS"] == str(threads_per_process(1))
    assert json.loads(worker.env["TF_CONFIG"])["task"] == {"type": "worker", "index": 0}


def test_module_and_source_entry_points(tmp_path):
    launcher = TensorFlowLauncher()
    job = JobSpec.model_validate({**TF, "module": "pkg.train", "args": ["-v"]})
    assert launcher.plan(job, context(tmp_path)).processes[0].argv == [
        "/venv/bin/python",
        "-m",
        "pkg.train",
        "-v",
    ]
    job = JobSpec.model_validate({**TF, "source": "print(1)", "resources": {"nodes": 2}})
    plan = launcher.plan(job, context(tmp_path))
    argv = ["/venv/bin/python", str(tmp_path / "source.py")]
    assert [p.argv for p in plan.processes] == [argv] * 2
    assert plan.files == {"source.py": "print(1)"}  # staged by the backend


# (case, body, message prefix)
BAD_TF_SPECS = [
    (
        "max_restarts",
        {**TF, "source": "pass", "max_restarts": 2},
        "max_restarts: TensorFlow has no elastic restarts; use max_retries",
    ),
    ("command", {**TF, "command": ["python", "train.py"]}, "command: TensorFlow train jobs run"),
    ("missing script", {**TF, "script": "nope.py"}, "script: 'nope.py' not found"),
    (
        "elastic",
        {**TF, "source": "pass", "resources": {"nodes": 2, "min_nodes": 1}},
        "resources.min_nodes: TensorFlow jobs are not elastic",
    ),
]


@pytest.mark.parametrize(
    "body,message", [case[1:] for case in BAD_TF_SPECS], ids=[case[0] for case in BAD_TF_SPECS]
)
async def test_bad_tensorflow_specs_are_refused(jp_fetch, body, message):
    code, error = await api(jp_fetch, "POST", "jobs", body=body)
    assert code == 400, error
    assert error["message"].startswith(message), error["message"]
    _, page = await api(jp_fetch, "GET", "jobs")
    assert page["total"] == 0


def rank_lines(log: str, rank: int) -> list[str]:
    """The lines of one rank, without their prefix."""
    prefix = f"[rank{rank}]:"
    return [line.removeprefix(prefix) for line in log.splitlines() if line.startswith(prefix)]


def tagged(lines: list[str], tag: str) -> str:
    """The rest of the one line that starts with ``tag``."""
    (found,) = [line.removeprefix(tag + " ") for line in lines if line.startswith(tag + " ")]
    return found


async def test_two_worker_multi_worker_mirrored_job(jp_fetch, jp_root_dir, aicloud_data_dir):
    (jp_root_dir / "train_tf.py").write_text(TRAIN)
    job = await submit(
        jp_fetch, {**TF, "script": "train_tf.py", "resources": {"procs_per_node": 2}}
    )
    job = await wait_job(jp_fetch, job["id"], timeout=240)
    log = await job_log(jp_fetch, job["id"])
    assert job["status"] == "succeeded", log
    assert job["attempt_count"] == 1

    ranks = [rank_lines(log, rank) for rank in (0, 1)]
    envs = [json.loads(tagged(lines, "env")) for lines in ranks]
    configs = [json.loads(env["TF_CONFIG"]) for env in envs]
    addresses = configs[0]["cluster"]["worker"]
    assert len(set(addresses)) == 2 and all(a.startswith("127.0.0.1:") for a in addresses)
    threads = str(threads_per_process(2))
    for rank, (env, config, lines) in enumerate(zip(envs, configs, ranks, strict=True)):
        assert config == {
            "cluster": {"worker": addresses},
            "task": {"type": "worker", "index": rank},
        }
        assert all(env[name] == threads for name in THREADS)
        assert env["TF_CPP_MIN_LOG_LEVEL"] == "1"
        assert tagged(lines, "runtime") == f"{rank} 2 {rank == 0}"
        assert tagged(lines, "replicas").startswith("2 loss ")

    # The logs API's rank filter picks one worker's lines; only the chief reported metrics.
    _, rank1 = await api(jp_fetch, "GET", "jobs", job["id"], "logs", rank="1")
    assert rank1.splitlines() == [line for line in log.splitlines() if line.startswith("[rank1]:")]
    _, metrics = await api(jp_fetch, "GET", "jobs", job["id"], "metrics")
    assert len(metrics["points"]) == 30 and {p["rank"] for p in metrics["points"]} == {0}
    assert metrics["progress"]["fraction"] == 1.0

    # The gradients were all-reduced: both workers hold the same, trained, weights.
    weights = [json.loads(tagged(lines, "weights")) for lines in ranks]
    assert weights[0] == weights[1]
    w, b = weights[0]
    assert abs(w - 3) < 0.01 and abs(b + 2) < 0.01, weights

    # Only the chief wrote the kept model; the other worker's copy went to a temporary dir.
    model_dir = aicloud_data_dir / "runs" / job["id"] / "checkpoints" / "model"
    assert tagged(ranks[0], "saved") == str(model_dir)
    assert not Path(tagged(ranks[1], "saved")).exists()
    assert (model_dir / "saved_model.pb").is_file()
    assert sorted(p.name for p in model_dir.parent.iterdir()) == ["model"]

    # The saved model loads in a fresh process and computes with the trained weights.
    load = await submit(
        jp_fetch, {"source": LOAD, "args": [str(model_dir)], "env": {"TF_CPP_MIN_LOG_LEVEL": "2"}}
    )
    load = await wait_job(jp_fetch, load["id"], timeout=120)
    load_log = await job_log(jp_fetch, load["id"])
    assert load["status"] == "succeeded", load_log
    loaded = json.loads(tagged(load_log.splitlines(), "loaded"))
    assert loaded[:2] == [w, b]
    assert loaded[2:] == pytest.approx([b, w + b])


async def test_a_failing_worker_fails_the_job(jp_fetch):
    code = (
        "from aicloud import runtime\n"
        "if runtime.rank() == 1:\n"
        "    raise SystemExit('worker 1 gives up')\n"
    )
    job = await submit(jp_fetch, {**TF, "source": code, "resources": {"nodes": 2}})
    job = await wait_job(jp_fetch, job["id"], timeout=60)
    log = await job_log(jp_fetch, job["id"])
    assert job["status"] == "failed" and job["exit_code"] == 1, job
    assert "[rank1]:worker 1 gives up\n" in log


async def test_cancel_reaches_workers_in_their_own_sessions(jp_fetch, jp_root_dir):
    """Each worker leads a session (a CPU share of its own, as torchrun's workers do); a
    cancel still gives each its SIGTERM, and nothing is left afterwards."""
    code = (
        "import os, pathlib, signal, sys, time\n"
        "from aicloud import runtime\n"
        "def stop(signum, frame):\n"
        "    pathlib.Path(f'term-{runtime.rank()}').write_text(str(os.getsid(0) == os.getpid()))\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    job = await submit(jp_fetch, {**TF, "source": code, "resources": {"nodes": 2}})
    for _ in range(300):
        if ((await job_log(jp_fetch, job["id"])) or "").count("ready") == 2:
            break
        await asyncio.sleep(0.05)
    status, cancelled = await api(jp_fetch, "POST", "jobs", job["id"], "cancel")
    assert status == 200 and cancelled["status"] == "cancelled"
    assert [(jp_root_dir / f"term-{rank}").read_text() for rank in (0, 1)] == ["True", "True"]
    left = [
        p
        for p in psutil.process_iter(["environ"])
        if (p.info["environ"] or {}).get("AICLOUD_JOB_ID") == job["id"]
    ]
    assert left == []
