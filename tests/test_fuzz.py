"""A bounded schemathesis run over every operation of the REST API, against a real server.

Every operation goes through schemathesis' examples, coverage and fuzzing phases, positive and
negative data alike, against a ``jupyter server`` started for this module. No response may be
a 5xx; each must have a documented status code, content type and headers, and match its schema.

Generated job specs would run whatever they name, so each request body is made harmless just
before it is sent (see :func:`harmless`): hooks are not enough, the coverage phase skips them.

``AICLOUD_FUZZ_EXAMPLES`` raises the number of fuzzed examples per operation, and
``AICLOUD_FUZZ_RANDOM=1`` draws new ones on every run instead of the same ones.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from importlib.resources import files
from pathlib import Path

import hypothesis.strategies as st
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import LiveServer, wait_for

SPEC_FILE = Path(str(files("aicloud").joinpath("api", "openapi.yaml")))
EXAMPLES = int(os.environ.get("AICLOUD_FUZZ_EXAMPLES", "30"))
RANDOM = os.environ.get("AICLOUD_FUZZ_RANDOM", "") == "1"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
TIMEOUT = 30

# -- harmless job specs --------------------------------------------------------------------------

TRUE = shutil.which("true") or "/bin/true"
NOOP = "noop"  # noop.py, an empty file in the server's root directory
ENTRYPOINTS = ("command", "script", "module", "source", "notebook")
HARMLESS = {
    "command": [TRUE],
    "script": f"{NOOP}.py",
    "module": NOOP,
    "source": "pass",
    "notebook": f"{NOOP}.ipynb",
}
# Variables that change what a harmless program does: the dynamic loader's and Python's.
UNSAFE_ENV_PREFIXES = ("LD_", "PYTHON")
# Resources that multiply the processes of a job.
SCALE = ("nodes", "min_nodes", "procs_per_node")
NOWHERE = "http://127.0.0.1:9/"  # the discard port: webhooks are refused at once


def could_run(field: str, value: object) -> bool:
    """Whether ``value`` may pass validation as entry point ``field`` (JSON types only)."""
    if field == "command":
        return isinstance(value, list) and all(isinstance(arg, str) for arg in value)
    return isinstance(value, str)


def harmless(body: object) -> object:
    """``body`` with each entry point that could run replaced by one that does nothing.

    Values that cannot pass validation (a number for ``script``, say) stay, so that negative
    cases keep testing validation; so does everything else in the spec. A schedule's job
    template is made harmless the same way, and its webhook goes nowhere. A body sent as raw
    bytes or text is made harmless too if the server could read a JSON object from it.
    """
    if isinstance(body, (bytes, str)):
        try:
            decoded = json.loads(body)
        except ValueError:
            return body
        if not isinstance(decoded, dict):
            return body
        encoded = json.dumps(harmless(decoded))
        return encoded.encode() if isinstance(body, bytes) else encoded
    if not isinstance(body, dict):
        return body
    body = dict(body)
    for field, value in HARMLESS.items():
        if could_run(field, body.get(field)):
            body[field] = value
    if isinstance(body.get("job"), dict):
        body["job"] = harmless(body["job"])
    if isinstance(body.get("webhook_url"), str):
        body["webhook_url"] = NOWHERE
    if isinstance(body.get("env"), dict):
        body["env"] = {
            name: value
            for name, value in body["env"].items()
            if not str(name).upper().startswith(UNSAFE_ENV_PREFIXES)
        }
    if isinstance(body.get("resources"), dict):
        # One process, whatever the kind: a torch job of 1024 nodes would start 1024 agents.
        body["resources"] = {
            name: 1 if name in SCALE and isinstance(value, int) and value > 1 else value
            for name, value in body["resources"].items()
        }
    return body


def test_harmless():
    body = {"command": ["rm", "-rf", "/"], "args": ["x"], "env": {"LD_PRELOAD": "x", "A": "1"}}
    assert harmless(body) == {"command": [TRUE], "args": ["x"], "env": {"A": "1"}}
    assert harmless({"module": "http.server", "script": 3}) == {"module": NOOP, "script": 3}
    assert harmless({"source": "import os", "notebook": None}) == {
        "source": "pass",
        "notebook": None,
    }
    assert harmless({"command": [1, "rm"]}) == {"command": [1, "rm"]}
    assert harmless(["rm"]) == ["rm"]
    assert json.loads(harmless(b'{"command": ["rm"]}')) == {"command": [TRUE]}
    assert harmless(b"\x00{") == b"\x00{"
    resources = {"nodes": 1024, "procs_per_node": 0, "cpu": 8}
    assert harmless({"resources": resources})["resources"] == {**resources, "nodes": 1}
    schedule = {"job": {"module": "http.server"}, "webhook_url": "https://example.com/x"}
    assert harmless(schedule) == {"job": {"module": NOOP}, "webhook_url": NOWHERE}


# -- the schema ----------------------------------------------------------------------------------

schema = schemathesis.openapi.from_path(SPEC_FILE)
schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])
schema.config.generation.update(
    max_examples=EXAMPLES,
    deterministic=not RANDOM,
    database="none",
    # The token goes with every request; refusing bad ones is test_auth.py's business.
    with_security_parameters=False,
)

# Jobs and schedules on the server under test, so that fuzzed ids sometimes hit a real one.
KNOWN_IDS: dict[str, list[str]] = {"job_id": [], "schedule_id": []}


@schema.hook
def map_body(context, body):
    """Fuzzed job specs (alone, or a schedule's template) that get past the rules the document
    cannot state (fuzzing phase only).

    The coverage phase already sends specs with no or several entry points, other kinds and
    shapes; here the generated spec keeps one entry point, of a kind that has it, on one process,
    with valid variable names, so that the rest of it (cwd, env values, tags, limits, retries)
    reaches the job manager and the store.
    """
    if not isinstance(body, dict):
        return body
    if context.operation.path.startswith("/schedules"):
        if isinstance(body.get("job"), dict):
            body = {**body, "job": plausible_job(body["job"])}
        return body
    return plausible_job(body)


def plausible_job(body: dict) -> dict:
    """A job spec with one entry point, of a kind that has it, on one process."""
    present = [field for field in ENTRYPOINTS if body.get(field) is not None] or ["command"]
    body = {field: value for field, value in body.items() if field not in ENTRYPOINTS}
    entrypoint = present[0]
    body[entrypoint] = HARMLESS[entrypoint]
    body["kind"] = "notebook" if entrypoint == "notebook" else "command"
    if entrypoint != "notebook":
        body.pop("parameters", None)
        body.pop("kernel", None)
    if entrypoint == "command":
        body.pop("args", None)
    if isinstance(body.get("resources"), dict):
        body["resources"] = {**body["resources"], "nodes": 1, "procs_per_node": 1}
    if isinstance(body.get("env"), dict):
        body["env"] = {
            name: value
            for name, value in body["env"].items()
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and not name.startswith("AICLOUD_")
        }
    return body


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Half the time, a job or schedule that exists instead of the generated id (fuzzing phase
    only)."""
    for name, ids in KNOWN_IDS.items():
        if ids and name in (path_parameters or {}):
            known = [{**path_parameters, name: value} for value in ids]
            return st.one_of(st.just(path_parameters), st.sampled_from(known))
    return st.just(path_parameters)


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory):
    """A fresh server for this module, with a script to run; no job of it is left running."""
    tmp = tmp_path_factory.mktemp("fuzz")
    (tmp / "root").mkdir()
    (tmp / "root" / f"{NOOP}.py").write_text("")
    server = LiveServer(
        root_dir=tmp / "root",
        data_dir=tmp / "data",
        home=tmp / "home",
        extra_args=("--AICloudApp.notebook_pool_size=0",),
    ).start()
    yield server
    with server.api() as api:
        # Generated jobs do nothing and end at once; make sure no process of theirs is left.
        active = api.get("jobs", params={"status": ["queued", "starting", "running"]}).json()
        for job in active["jobs"]:
            api.post(f"jobs/{job['id']}/cancel")
    server.stop()


@pytest.fixture
def server(fuzzed_server):
    """The server, with two jobs that have ended (one with a log) and a paused schedule."""
    with fuzzed_server.api() as api:
        jobs = [
            api.post("jobs", json={"command": ["sh", "-c", "echo out; echo err >&2"]}).json()["id"],
            api.post("jobs", json={"command": ["sh", "-c", "exit 3"], "tags": ["x"]}).json()["id"],
        ]
        for job_id in jobs:
            wait_for(lambda job_id=job_id: api.get(f"jobs/{job_id}").json()["finished_at"])
        template = {"command": [TRUE]}
        schedule = {"job": template, "cron": "0 0 1 1 *", "paused": True}
        schedules = [api.post("schedules", json=schedule).json()["id"]]
    KNOWN_IDS.update(job_id=jobs, schedule_id=schedules)
    yield fuzzed_server
    KNOWN_IDS.update(job_id=[], schedule_id=[])


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_api(case, server):
    """No 5xx, and every answer as documented."""
    case.body = harmless(case.body)
    case.call_and_validate(
        base_url=server.url.rstrip("/") + schema.declared_base_path(),
        headers={"Authorization": f"token {server.token}"},
        checks=CHECKS,
        timeout=TIMEOUT,
    )


# -- documented bounds ---------------------------------------------------------------------------

SCHEMAS = yaml.safe_load(SPEC_FILE.read_text())["components"]["schemas"]
# Entry points that would run what they name; script is a path that stays inside the root.
RUNNABLE = {"command", "module", "source"}


def bounds(prop: dict) -> list:
    """Values at the documented bounds of a property: the longest string, the extreme integers."""
    if prop.get("type") == "string" and "maxLength" in prop:
        return ["a" * prop["maxLength"]]
    if prop.get("type") == "integer":
        return [prop[key] for key in ("minimum", "maximum") if key in prop]
    return []


def bound_specs() -> list[tuple[str, dict]]:
    """A one-process command job with one property at one documented bound, for each bound."""
    specs = []
    for name, prop in SCHEMAS["JobSpec"]["properties"].items():
        if name not in RUNNABLE:
            base = {} if name in ENTRYPOINTS else {"command": [TRUE]}
            specs += [(name, {**base, name: value}) for value in bounds(prop)]
    for name, prop in SCHEMAS["ResourceRequest"]["properties"].items():
        specs += [
            (f"resources.{name}", {"command": [TRUE], "resources": {name: value}})
            for value in bounds(prop)
        ]
    return specs


def test_documented_bounds(server):
    """Specs at the bounds of the document (the coverage phase only sends them in specs that
    fail earlier, with every entry point at once) get a documented answer, never a 5xx."""
    create = schema["/jobs"]["POST"]
    specs = bound_specs()
    assert len(specs) > 20
    for where, body in specs:
        case = create.Case(body=body, media_type="application/json")
        response = case.call_and_validate(
            base_url=server.url.rstrip("/") + schema.declared_base_path(),
            headers={"Authorization": f"token {server.token}"},
            checks=CHECKS,
            timeout=TIMEOUT,
        )
        assert response.status_code in (201, 400), (where, response.status_code, response.text)
