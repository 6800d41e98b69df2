"""The ``infer`` kind: batch inference of a saved model over data files, in N workers.

Each worker is one ``python -m aicloud.inference.runner --rank R --world-size N`` with a
``[rankR]:`` prefix; ``resources.nodes * procs_per_node`` is N. The shards, the skipping of
shards done by an earlier attempt and the merge are the runner's (:mod:`aicloud.inference`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from aicloud.errors import InvalidSpec
from aicloud.inference.options import MODEL_NAME, TORCH_FORMATS, InferenceOptions
from aicloud.launchers.base import LaunchContext, Launcher
from aicloud.launchers.plan import INDEX, LaunchPlan, Role, per_node
from aicloud.launchers.tensorflow import worker_env
from aicloud.spec import Framework, JobKind, JobSpec

PREDICTIONS = "predictions.npy"
CONFIG_FILE = "config.json"


def inside(root: Path, path: Path, field: str, given: str) -> Path:
    """``path`` resolved, refused (naming ``field``) if it leaves ``root``."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as e:
        raise InvalidSpec(field, f"{given!r} cannot be used: {e}") from None
    root = root.resolve()
    if resolved != root and root not in resolved.parents:
        raise InvalidSpec(field, f"{given!r} is outside the server's root directory")
    return resolved


def check_model(spec: JobSpec, cwd: Path, root: Path) -> InferenceOptions:
    """The spec's inference options, with the model found and its framework consistent."""
    options = spec.inference
    if options is None:  # JobSpec's own validation refuses this first
        raise InvalidSpec("inference", f"required for kind {spec.kind.value!r}")
    path = inside(root, cwd / options.model, "inference.model", options.model)
    if not path.exists():
        raise InvalidSpec("inference.model", f"{options.model!r} not found in {cwd}")
    torch_model = options.resolved_format in TORCH_FORMATS
    if spec.framework is Framework.tensorflow and torch_model:
        raise InvalidSpec(
            "inference.format",
            f"{options.resolved_format.value} is a torch format; framework is tensorflow",
        )
    if spec.framework is Framework.torch and not torch_model:
        raise InvalidSpec(
            "inference.format",
            f"{options.resolved_format.value} is a TensorFlow format; framework is torch",
        )
    return options


def data_files(options: InferenceOptions, cwd: Path, root: Path) -> list[str]:
    """The data files of an infer job, as :class:`InvalidSpec` naming the field on error."""
    from aicloud.inference.data import DataError  # numpy: only when an infer job comes
    from aicloud.inference.sharding import expand_data

    try:
        return expand_data(options.data, cwd, root)
    except DataError as e:
        field, _, message = str(e).partition(": ")
        raise InvalidSpec(field, message) from None


def model_name(spec: JobSpec) -> str:
    """The name the model is served under: ``inference.model_name``, the job's, or ``model``."""
    assert spec.inference is not None
    if spec.inference.model_name:
        return spec.inference.model_name
    if spec.name and re.match(MODEL_NAME, spec.name):
        return spec.name
    return "model"


class InferLauncher(Launcher):
    """Plans the batch workers of ``kind=infer`` (torch or TensorFlow models)."""

    kinds = frozenset({JobKind.infer})
    frameworks = frozenset(Framework)

    def validate(self, spec: JobSpec, cwd: Path) -> None:
        """The model and every data file exist; the output directory stays inside the root."""
        root = self.root_dir or cwd
        options = check_model(spec, cwd, root)
        data_files(options, cwd, root)
        if options.output_dir is not None:
            inside(root, cwd / options.output_dir, "inference.output_dir", options.output_dir)

    def plan(self, spec: JobSpec, context: LaunchContext) -> LaunchPlan:
        """One runner per worker, all reading ``inference/config.json``."""
        root = self.root_dir or context.cwd
        options = check_model(spec, context.cwd, root)
        work_dir = context.run_dir / "inference"
        if options.output_dir is not None:
            output = context.cwd / options.output_dir / PREDICTIONS
        else:
            output = context.run_dir / "outputs" / PREDICTIONS
        config = {
            "options": options.model_dump(mode="json"),
            "cwd": str(context.cwd),
            "work_dir": str(work_dir),
            "output": str(output),
            "files": data_files(options, context.cwd, root),
        }
        world = spec.resources.world_size
        env = {
            **worker_env(spec, context, world),
            "RANK": per_node(INDEX),
            "WORLD_SIZE": str(world),
        }
        argv = (
            context.python,
            "-m",
            "aicloud.inference.runner",
            f"--config={work_dir / CONFIG_FILE}",
            per_node("--rank=", INDEX),
            f"--world-size={world}",
        )
        worker = Role("worker", argv, env, nodes=world, prefix=per_node("[rank", INDEX, "]:"))
        files = {f"inference/{CONFIG_FILE}": json.dumps(config, indent=2)}
        return LaunchPlan((worker,), cwd=context.cwd, files=files)
