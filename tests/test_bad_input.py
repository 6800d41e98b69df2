"""Bad input through REST and the CLI: a precise 4xx naming the field, and nothing written."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli, wait_for
from tests.helpers import api, submit, wait_job

OK = {"command": ["true"]}

# (case, body, status, text the message must contain)
BAD_BODIES = [
    ("malformed JSON", "{not json", 400, "malformed JSON"),
    ("not an object", "[1, 2]", 400, "body: must be a JSON object"),
    ("empty body", "", 400, "malformed JSON"),
    ("unknown field", {**OK, "colour": "red"}, 400, "colour: Extra inputs are not permitted"),
    ("command not a list", {"command": "true"}, 400, "command:"),
    ("string for an integer", {**OK, "max_retries": "5"}, 400, "max_retries:"),
    ("string for a boolean", {**OK, "retry_on_timeout": "yes"}, 400, "retry_on_timeout:"),
    ("zero nodes", {**OK, "resources": {"nodes": 0}}, 400, "resources.nodes:"),
    (
        "negative procs",
        {**OK, "resources": {"procs_per_node": -1}},
        400,
        "resources.procs_per_node",
    ),
    ("absurd node count", {**OK, "resources": {"nodes": 100000}}, 400, "resources.nodes:"),
    ("absurd memory", {**OK, "resources": {"memory": "900Ti"}}, 400, "resources.memory:"),
    ("malformed memory", {**OK, "resources": {"memory": "lots"}}, 400, "resources.memory:"),
    ("gpus without type", {**OK, "resources": {"accelerator_count": 1}}, 400, "accelerator"),
    ("unknown kind", {**OK, "kind": "mine"}, 400, "kind:"),
    ("kind without launcher", {"kind": "serve", "script": "x.py"}, 400, "kind: no launcher"),
    ("unknown framework", {**OK, "framework": "jax"}, 400, "framework:"),
    ("unknown backend", {**OK, "backend": "kubernetes"}, 400, "backend: 'kubernetes' is not"),
    ("cwd outside the root", {**OK, "cwd": "../.."}, 400, "cwd: must stay inside"),
    ("absolute cwd", {**OK, "cwd": "/etc"}, 400, "cwd: must be relative"),
    ("cwd that does not exist", {**OK, "cwd": "nope"}, 400, "cwd: 'nope' is not a directory"),
    ("invalid env name", {**OK, "env": {"1BAD": "x"}}, 400, "env: invalid environment variable"),
    ("env name with =", {**OK, "env": {"A=B": "x"}}, 400, "env: invalid environment variable"),
    ("reserved env name", {**OK, "env": {"AICLOUD_JOB_ID": "x"}}, 400, "env: AICLOUD_JOB_ID"),
    ("nothing to run", {"name": "x"}, 400, "exactly one of command, script"),
    ("two things to run", {**OK, "module": "os"}, 400, "exactly one of command, script"),
    ("missing script", {"script": "nope.py"}, 400, "script: 'nope.py' not found"),
    ("zero timeout", {**OK, "timeout_seconds": 0}, 400, "timeout_seconds:"),
    ("absurd timeout", {**OK, "timeout_seconds": 10**9}, 400, "timeout_seconds:"),
    ("negative retries", {**OK, "max_retries": -1}, 400, "max_retries:"),
    ("too many tags", {**OK, "tags": [f"t{i}" for i in range(40)]}, 400, "tags:"),
    ("empty command", {"command": []}, 400, "command:"),
    ("long idempotency token", {**OK, "idempotency_token": "x" * 65}, 400, "idempotency_token"),
    (
        "multi-process command",
        {**OK, "resources": {"procs_per_node": 2}},
        400,
        "resources.procs_per_node: a command job",
    ),
    ("oversized body", {**OK, "source": None, "name": "x" * (2 * 1024 * 1024)}, 413, "larger than"),
]


@pytest.mark.parametrize(
    "body,status,text", [case[1:] for case in BAD_BODIES], ids=[case[0] for case in BAD_BODIES]
)
async def test_bad_job_spec_is_refused_and_nothing_is_written(
    jp_fetch, aicloud_data_dir, body, status, text
):
    code, error = await api(jp_fetch, "POST", "jobs", body=body)
    assert code == status, error
    assert text in error["message"], error["message"]
    _, page = await api(jp_fetch, "GET", "jobs")
    assert page["total"] == 0
    assert not (aicloud_data_dir / "runs").exists() or not any(
        (aicloud_data_dir / "runs").iterdir()
    )


BAD_QUERIES = [
    (("jobs",), {"limit": "abc"}, 400, "limit: must be an integer"),
    (("jobs",), {"limit": "0"}, 400, "limit: must be between 1 and 500"),
    (("jobs",), {"offset": "-1"}, 400, "offset: must be between"),
    (("jobs",), {"status": "sleeping"}, 400, "status: 'sleeping' is not one of"),
    (("jobs",), {"kind": "mine"}, 400, "kind: 'mine' is not one of"),
    (("jobs", "job-unknown"), {}, 404, "job 'job-unknown' not found"),
    (("jobs", "job-unknown", "logs"), {}, 404, "job 'job-unknown' not found"),
]


@pytest.mark.parametrize("path,params,status,text", BAD_QUERIES)
async def test_bad_queries(jp_fetch, path, params, status, text):
    code, error = await api(jp_fetch, "GET", *path, **params)
    assert code == status and text in error["message"], error


async def test_state_conflicts(jp_fetch):
    job = await submit(jp_fetch, {"command": ["sleep", "30"]})
    await wait_job(jp_fetch, job["id"], statuses={"running"})
    code, error = await api(jp_fetch, "DELETE", "jobs", job["id"])
    assert code == 409 and "cancel it before deleting" in error["message"]
    code, error = await api(jp_fetch, "GET", "jobs", job["id"], "logs", rank="abc")
    assert code == 400 and "rank: must be an integer" in error["message"]
    code, error = await api(jp_fetch, "GET", "jobs", job["id"], "logs", rank="3")
    assert code == 404 and "no rank 3" in error["message"]
    code, error = await api(jp_fetch, "GET", "jobs", job["id"], "logs", follow="maybe")
    assert code == 400 and "follow: must be true or false" in error["message"]
    assert (await api(jp_fetch, "POST", "jobs", job["id"], "cancel"))[0] == 200
    code, error = await api(jp_fetch, "POST", "jobs", job["id"], "cancel")
    assert code == 409 and "already cancelled" in error["message"]
    code, error = await api(jp_fetch, "POST", "jobs", "job-unknown", "cancel")
    assert code == 404
    code, error = await api(jp_fetch, "DELETE", "jobs", "job-unknown")
    assert code == 404
    _, page = await api(jp_fetch, "GET", "jobs")
    assert page["total"] == 1


# (case, aicloud arguments, exit code, text on stderr)
BAD_CLI = [
    ("zero nodes", ["submit", "--nodes", "0", "--", "true"], 1, "resources.nodes"),
    ("negative timeout", ["submit", "--timeout", "-5", "--", "true"], 1, "timeout_seconds"),
    ("absurd memory", ["submit", "--memory", "900Ti", "--", "true"], 1, "resources.memory"),
    ("negative retries", ["submit", "--max-retries", "-1", "--", "true"], 1, "max_retries"),
    ("invalid env name", ["submit", "--env", "1BAD=x", "--", "true"], 1, "env: invalid"),
    ("env without =", ["submit", "--env", "NOVALUE", "--", "true"], 2, "expected NAME=VALUE"),
    ("cwd outside root", ["submit", "--cwd", "../..", "--", "true"], 1, "cwd: must stay inside"),
    ("unknown kind", ["submit", "--kind", "mine", "--", "true"], 2, "invalid choice: 'mine'"),
    ("not an integer", ["submit", "--nodes", "two", "--", "true"], 2, "expected N or MIN:MAX"),
    ("nothing to run", ["submit"], 2, "nothing to run"),
    ("unknown backend", ["submit", "--backend", "kubernetes", "--", "true"], 1, "backend:"),
    ("unknown job", ["show", "job-nope"], 1, "job 'job-nope' not found (HTTP 404)"),
    ("cancel unknown", ["cancel", "job-nope"], 1, "not found"),
    ("logs of unknown", ["logs", "job-nope"], 1, "not found"),
    ("bad status filter", ["list", "--status", "sleeping"], 2, "invalid choice"),
    ("unknown command", ["launch"], 2, "invalid choice: 'launch'"),
]


def test_cli_bad_input(live_server):
    for case, args, exit_code, text in BAD_CLI:
        result = run_cli(*args, env=live_server.env)
        assert result.returncode == exit_code, (case, result.stderr)
        assert text in result.stderr, (case, result.stderr)
        assert result.stderr.count("\n") <= 3 or exit_code == 2, (case, result.stderr)
    listing = json.loads(run_cli("list", "--json", env=live_server.env).stdout)
    assert listing["total"] == 0


def test_cli_state_conflicts(live_server):
    job_id = run_cli("submit", "--", "sleep", "30", env=live_server.env).stdout.strip()
    with live_server.api() as client:
        wait_for(lambda: client.get(f"jobs/{job_id}").json()["status"] == "running")
    deleted = run_cli("delete", job_id, env=live_server.env)
    assert deleted.returncode == 1 and "cancel it before deleting it (HTTP 409)" in deleted.stderr
    assert run_cli("cancel", job_id, env=live_server.env).returncode == 0
    again = run_cli("cancel", job_id, env=live_server.env)
    assert again.returncode == 1 and "already cancelled (HTTP 409)" in again.stderr
