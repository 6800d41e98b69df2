"""The ``serve`` kind: one long-running Open Inference Protocol (v2) model server.

The server (``python -m aicloud.inference.server``) binds 127.0.0.1 on a free port (or
``inference.port``) and, once the model is loaded, writes ``outputs/endpoint.json`` in the
run directory: the URL that ``GET /jobs/{id}/outputs/endpoint.json`` hands to clients. Stop
it by cancelling the job.

On the local backend every route but the health probes needs a token (see
:mod:`aicloud.inference.auth`); the server writes its own serving token to ``serving.token``
in the run directory (mode 0600, not in ``outputs/``). On Kubernetes the pod's network policy
guards the server instead, and it runs without tokens. Each server process runs the model
with ``inference.threads`` intra-op threads (1 by default) unless the spec's ``env`` says
otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path

from aicloud.errors import InvalidSpec
from aicloud.launchers.base import LaunchContext, Launcher
from aicloud.launchers.infer import check_model, model_name
from aicloud.launchers.plan import LaunchPlan, LocalNetwork, Role
from aicloud.launchers.tensorflow import worker_env
from aicloud.spec import Framework, JobKind, JobSpec

ENDPOINT_FILE = "endpoint.json"
CONFIG_FILE = "serve-config.json"
HTTP_PORT = "http"
READY_PATH = "/v2/health/ready"
TOKEN_FILE = "serving.token"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


class ServeLauncher(Launcher):
    """Plans the model server of ``kind=serve`` (torch or TensorFlow models)."""

    kinds = frozenset({JobKind.serve})
    frameworks = frozenset(Framework)

    def validate(self, spec: JobSpec, cwd: Path) -> None:
        """The model exists; one server process."""
        if spec.resources.world_size != 1:
            raise InvalidSpec(
                "resources", "a serve job runs one server process (inference.workers spawns more)"
            )
        check_model(spec, cwd, self.root_dir or cwd)

    def plan(self, spec: JobSpec, context: LaunchContext) -> LaunchPlan:
        """The server, with its config in the run directory; a stale endpoint file is removed."""
        options = check_model(spec, context.cwd, self.root_dir or context.cwd)
        endpoint = context.run_dir / "outputs" / ENDPOINT_FILE
        endpoint.unlink(missing_ok=True)  # an earlier attempt's server is gone
        network = context.network
        port = options.port if options.port is not None else network.port("server", HTTP_PORT)
        config = {
            "options": {**options.model_dump(mode="json"), "port": port},
            "name": model_name(spec),
            "cwd": str(context.cwd),
            "endpoint_file": str(endpoint),
            "host": network.bind_host,
            "advertise_url": network.url("server", port),
        }
        if isinstance(network, LocalNetwork):
            config["token_file"] = str(context.run_dir / TOKEN_FILE)
        env = worker_env(spec, context, 1)
        env.update({k: str(options.threads) for k in THREAD_VARIABLES if k not in spec.env})
        config_path = context.run_dir / CONFIG_FILE
        argv = (context.python, "-m", "aicloud.inference.server", f"--config={config_path}")
        server = Role(
            "server",
            argv,
            env,
            ports={HTTP_PORT: port},
            serves=HTTP_PORT,
            ready_path=READY_PATH,
        )
        files = {CONFIG_FILE: json.dumps(config, indent=2)}
        return LaunchPlan((server,), cwd=context.cwd, files=files)
