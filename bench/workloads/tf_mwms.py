"""A small TensorFlow MultiWorkerMirroredStrategy job (an MLP on synthetic data) that times itself.

Worker 0 (``TF_CONFIG`` task index 0) writes a JSON file: when the script started, when its
first and last training steps were done, how many steps ran, and the thread settings it saw.
A custom training loop (``strategy.run``), since Keras 3's ``fit`` fails under MWMS.
"""

import time

STARTED = time.time()  # before the heavy imports: they belong to the time to first step

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

IMPORTED = time.time()

THREAD_VARIABLES = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def runqueue_wait() -> float | None:
    """Seconds this process's live threads spent runnable but waiting for a CPU (Linux)."""
    total = 0
    for path in glob.glob("/proc/self/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9 if total else None


def parse_args() -> argparse.Namespace:
    """Model size, steps, batch and where the timings go."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True, help="JSON file worker 0 writes")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=128, help="samples per worker and step")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--depth", type=int, default=3)
    return parser.parse_args()


def task_index() -> int:
    """This worker's index in ``TF_CONFIG`` (0 without one)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    return int(config.get("task", {}).get("index", 0))


def build(width: int, depth: int) -> tuple[list[tf.Variable], tf.keras.optimizers.Optimizer]:
    """The MLP's weights (``depth`` hidden layers of ``width``, 10 classes) and an SGD."""
    init = tf.keras.initializers.GlorotUniform(seed=0)
    sizes = [width] * (depth + 1) + [10]
    weights = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        weights.append(tf.Variable(init((n_in, n_out))))
        weights.append(tf.Variable(tf.zeros((n_out,))))
    return weights, tf.keras.optimizers.SGD(0.01)


def forward(weights: list[tf.Variable], x: tf.Tensor) -> tf.Tensor:
    """Logits of the MLP."""
    for i in range(0, len(weights) - 2, 2):
        x = tf.nn.relu(x @ weights[i] + weights[i + 1])
    return x @ weights[-2] + weights[-1]


def main() -> None:
    """Train for ``--steps`` steps; worker 0 records the timings."""
    args = parse_args()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # waits for every worker
    joined = time.time()
    with strategy.scope():
        weights, optimizer = build(args.width, args.depth)
    generator = tf.random.Generator.from_seed(1 + task_index())
    x = generator.normal((args.batch, args.width))
    y = generator.uniform((args.batch,), 0, 10, dtype=tf.int64)

    def replica_step():
        with tf.GradientTape() as tape:
            logits = forward(weights, x)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            )
        optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights, strict=True))
        return loss

    @tf.function
    def train_step():
        losses = strategy.run(replica_step)
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, losses, axis=None)

    first = first_cpu = 0.0
    first_wait = None
    for step in range(args.steps):
        loss = float(train_step())  # float() waits for the step to finish
        if step == 0:
            first = time.time()
            first_cpu = time.process_time()  # this process's CPU seconds so far
            first_wait = runqueue_wait()
    last = time.time()
    if task_index() == 0:
        record = {
            "started": STARTED,
            "imported": IMPORTED,
            "joined": joined,
            "first_step": first,
            "first_step_cpu": first_cpu,
            "first_step_runqueue_wait": first_wait,
            "last_step": last,
            "steps": args.steps,
            "world_size": strategy.num_replicas_in_sync,
            "samples_per_step": args.batch * strategy.num_replicas_in_sync,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            **{name.lower(): os.environ.get(name) for name in THREAD_VARIABLES},
            "loss": loss,
        }
        with open(args.out + ".tmp", "w") as f:
            json.dump(record, f)
        os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
