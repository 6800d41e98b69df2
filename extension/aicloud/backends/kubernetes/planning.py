"""A job spec's manifests in one call: its launcher plans it for the cluster's network, the
builders place the plan. For tests, the docs and operators who want to see what a job makes."""

from __future__ import annotations

from pathlib import Path

from aicloud.backends.kubernetes.builders import (
    AttemptContext,
    ClusterConfig,
    ClusterNetwork,
    Manifests,
    place,
)
from aicloud.launchers import LaunchContext, LaunchPlan, launcher_for
from aicloud.spec import JobSpec, is_secret_env


def cluster_plan(
    spec: JobSpec, ctx: AttemptContext, config: ClusterConfig, env: dict[str, str] | None = None
) -> LaunchPlan:
    """The plan of one attempt of ``spec`` as its pods would run it."""
    context = LaunchContext(
        job_id=ctx.job_id,
        attempt=ctx.attempt,
        run_dir=Path(ctx.run_dir),
        cwd=Path(ctx.working_dir),
        env={"PYTHONUNBUFFERED": "1", **(env or {}), **ctx.env, **spec.env},
        python="python",
        network=ClusterNetwork(ctx.name, config.namespace, config.ports),
        cores=ctx.shape.cpu,
    )
    return launcher_for(spec).plan(spec, context)


def make_manifests(
    spec: JobSpec,
    ctx: AttemptContext,
    config: ClusterConfig,
    trainjob: bool = False,
    env: dict[str, str] | None = None,
) -> Manifests:
    """The objects of one attempt of ``spec`` (``trainjob``: the TrainJob CRD is installed)."""
    plan = cluster_plan(spec, ctx, config, env)
    names = {n for role in plan.roles for n in role.env if is_secret_env(n, spec.secret_env)}
    return place(plan, ctx, config, trainjob, frozenset(names))
