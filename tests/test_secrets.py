"""Secret env values (issue 15, item 5): the naming rule, ``secret_env``, and a rerun that keeps
the real values on the server side, through the real server's REST API and the CLI."""

from __future__ import annotations

import hashlib
import json
import logging
import sys

import pytest

from aicloud.spec import MASK, JobSpec, JobStatus, ReasonCode, is_secret_env, redacted_env
from tests.conftest import run_cli, wait_for
from tests.helpers import TERMINAL, api, submit, wait_job

SECRET_NAMES = [
    "DB_PASS",
    "PASSPHRASE",
    "GITHUB_PAT",
    "AWS_SECRET_ACCESS_KEY",
    "HF_TOKEN",
    "db_password",
    "SMTP_PASSWD",
    "SSH_KEY_PASSPHRASE",
    "MYSQL_PWD",
    "WANDB_API_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "BASIC_AUTH",
    "PROXY_AUTHORIZATION",
    "PASS",
]
PLAIN_NAMES = ["PATH", "HOME", "BATCH_SIZE", "PWD", "PYTHONPATH", "AUTHOR", "BYPASS_CACHE"]


def check_env(expected: dict[str, str]) -> list[str]:
    """A command that exits 0 when its environment holds ``expected``, else 1. It carries only
    SHA-256 digests (its argv is API output too) and prints no value."""
    digests = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in expected.items()}
    code = (
        "import hashlib, json, os, sys; want = json.loads(sys.argv[1]); "
        "got = {k: hashlib.sha256(os.environ.get(k, '').encode()).hexdigest() for k in want}; "
        "bad = [k for k in want if got[k] != want[k]]; print('mismatch:', bad); "
        "sys.exit(1 if bad else 0)"
    )
    return [sys.executable, "-c", code, json.dumps(digests)]


@pytest.fixture
def server_log(jp_serverapp):
    """Every record the server and its aicloud extension log while the test runs."""
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Keep(level=logging.DEBUG)
    manager = jp_serverapp.web_app.settings["aicloud_manager"]
    loggers = {jp_serverapp.log, manager.log, logging.getLogger("tornado.access")}
    for logger in loggers:
        logger.addHandler(handler)
    yield records
    for logger in loggers:
        logger.removeHandler(handler)


def manager_of(jp_serverapp):
    return jp_serverapp.web_app.settings["aicloud_manager"]


# -- the rule --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_rule_masks_common_secret_names(name):
    assert is_secret_env(name)
    assert redacted_env({name: "v"}) == {name: MASK}


@pytest.mark.parametrize("name", PLAIN_NAMES)
def test_rule_leaves_plain_names(name):
    assert not is_secret_env(name)
    assert redacted_env({name: "v"}) == {name: "v"}


def test_secret_env_masks_any_name():
    assert redacted_env({"DATABASE_URL": "postgres://u:p@h/db"}, ["DATABASE_URL"]) == {
        "DATABASE_URL": MASK
    }


# -- REST --------------------------------------------------------------------------------------


async def test_get_and_list_mask_every_secret_name(jp_fetch, server_log):
    secrets = {name: f"value-of-{name}-qz9x" for name in SECRET_NAMES}
    plain = {name: f"plain-{name}" for name in PLAIN_NAMES if name not in ("PATH", "HOME")}
    job = await submit(jp_fetch, {"command": ["true"], "env": {**secrets, **plain}})
    await wait_job(jp_fetch, job["id"])
    _, got = await api(jp_fetch, "GET", "jobs", job["id"])
    _, page = await api(jp_fetch, "GET", "jobs")
    listed = next(j for j in page["jobs"] if j["id"] == job["id"])
    for model in (job, got, listed):
        assert model["spec"]["env"] == {**dict.fromkeys(secrets, MASK), **plain}
    everything = json.dumps([job, got, page]) + "\n".join(server_log)
    assert "qz9x" not in everything


async def test_secret_env_masks_an_arbitrary_name(jp_fetch, server_log):
    env = {"DATABASE_URL": "postgres://u:hunter2@db/x", "EPOCHS": "3"}
    job = await submit(jp_fetch, {"command": ["true"], "env": env, "secret_env": ["DATABASE_URL"]})
    assert job["spec"]["env"] == {"DATABASE_URL": MASK, "EPOCHS": "3"}
    assert job["spec"]["secret_env"] == ["DATABASE_URL"]
    _, got = await api(jp_fetch, "GET", "jobs", job["id"])
    assert got["spec"]["env"]["DATABASE_URL"] == MASK
    assert "hunter2" not in json.dumps(got) + "\n".join(server_log)


@pytest.mark.parametrize(
    "secret_env",
    [["NOT_IN_ENV"], "DATABASE_URL", [1]],
    ids=["not a key of env", "not a list", "not a string"],
)
async def test_bad_secret_env_is_a_400_naming_the_field(jp_fetch, secret_env):
    body = {"command": ["true"], "env": {"DATABASE_URL": "x"}, "secret_env": secret_env}
    status, error = await api(jp_fetch, "POST", "jobs", body=body)
    assert status == 400, error
    assert error["message"].startswith("secret_env"), error
    _, page = await api(jp_fetch, "GET", "jobs")
    assert page["total"] == 0


async def test_schedule_output_masks_the_template(jp_fetch):
    spec = {
        "cron": "0 3 * * *",
        "job": {"command": ["true"], "env": {"HF_TOKEN": "hf_x1y2", "X": "1"}, "secret_env": ["X"]},
    }
    status, schedule = await api(jp_fetch, "POST", "schedules", body=spec)
    assert status == 201, schedule
    assert schedule["job"]["env"] == {"HF_TOKEN": MASK, "X": MASK}
    _, listed = await api(jp_fetch, "GET", "schedules")
    assert "hf_x1y2" not in json.dumps(listed)


async def test_a_schedule_sent_back_as_read_keeps_its_secrets(jp_fetch, jp_serverapp):
    """PATCH with the masked template and webhook URL from a GET stores the originals."""
    spec = {
        "cron": "0 3 * * *",
        "job": {"command": ["true"], "env": {"HF_TOKEN": "hf_x1y2", "X": "1"}},
        "webhook_url": "https://hooks.example.org/T000/secret-path?k=v",
    }
    status, schedule = await api(jp_fetch, "POST", "schedules", body=spec)
    assert status == 201, schedule
    job = {**schedule["job"], "env": {**schedule["job"]["env"], "X": "2"}}
    status, changed = await api(
        jp_fetch,
        "PATCH",
        "schedules",
        schedule["id"],
        body={"job": job, "webhook_url": schedule["webhook_url"]},
    )
    assert status == 200, changed
    stored = jp_serverapp.web_app.settings["aicloud_scheduler"].get(schedule["id"], None)
    assert stored.spec["env"] == {"HF_TOKEN": "hf_x1y2", "X": "2"}
    assert stored.webhook_url == spec["webhook_url"]


async def test_rerun_keeps_the_original_secret(jp_fetch, jp_serverapp, server_log):
    env = {"DB_PASS": "s3cr3t-db-qz7w", "GITHUB_PAT": "ghp_qz7w", "DSN": "dsn-qz7w"}
    job = await submit(
        jp_fetch,
        {
            "name": "nightly",
            "command": check_env(env),
            "env": env,
            "secret_env": ["DSN"],
            "idempotency_token": "once",
        },
    )
    assert (await wait_job(jp_fetch, job["id"]))["status"] == "succeeded"
    assert job["spec"]["env"] == dict.fromkeys(env, MASK)

    status, again = await api(jp_fetch, "POST", "jobs", job["id"], "rerun")
    assert status == 201, again
    assert again["id"] != job["id"] and again["name"] == "nightly"
    assert again["spec"]["env"] == dict.fromkeys(env, MASK)
    assert "idempotency_token" not in again["spec"]
    done = await wait_job(jp_fetch, again["id"])
    assert done["status"] == "succeeded", done["reason"]
    stored = manager_of(jp_serverapp).store.get_job(again["id"]).spec
    assert stored["env"] == env  # the real values, never "***"

    # A rerun twice (no idempotency token carried over) is a third job.
    status, third = await api(jp_fetch, "POST", "jobs", job["id"], "rerun", body={})
    assert status == 201 and third["id"] not in (job["id"], again["id"])
    everything = json.dumps([job, again, done, third]) + "\n".join(server_log)
    assert "qz7w" not in everything


async def test_rerun_overrides_and_masked_values_sent_back(jp_fetch, jp_serverapp):
    env = {"HF_TOKEN": "hf_real", "EPOCHS": "3"}
    job = await submit(jp_fetch, {"command": ["true"], "env": env})
    await wait_job(jp_fetch, job["id"])
    # What the API showed, sent back with a change: "***" keeps the original value.
    changed = {**job["spec"]["env"], "EPOCHS": "5"}
    want = {"HF_TOKEN": "hf_real", "EPOCHS": "5"}
    body = {"env": changed, "command": check_env(want), "name": "more epochs"}
    status, again = await api(jp_fetch, "POST", "jobs", job["id"], "rerun", body=body)
    assert status == 201, again
    assert again["name"] == "more epochs"
    assert (await wait_job(jp_fetch, again["id"]))["status"] == "succeeded"
    assert manager_of(jp_serverapp).store.get_job(again["id"]).spec["env"] == want


async def test_rerun_refuses_bad_overrides(jp_fetch):
    job = await submit(jp_fetch, {"command": ["true"]})
    for body, text in (
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"max_retries": "5"}, "max_retries:"),
        ("[1]", "body: must be a JSON object"),
        ({"secret_env": ["NOPE"]}, "secret_env:"),
    ):
        status, error = await api(jp_fetch, "POST", "jobs", job["id"], "rerun", body=body)
        assert status == 400, (body, error)
        assert text in error["message"], (body, error)


async def test_rerun_of_another_users_job_or_no_job_is_404(jp_fetch, jp_serverapp):
    manager = manager_of(jp_serverapp)
    spec = JobSpec(command=["true"], env={"DB_PASS": "bobs"})
    bobs = manager.record(spec, "bob", JobStatus.failed, ReasonCode.user_error, "bob's")
    for job_id in (bobs.id, "job-000000000000"):
        status, error = await api(jp_fetch, "POST", "jobs", job_id, "rerun")
        assert status == 404, error
    assert [j.owner for j in manager.list(None).items] == ["bob"]


# -- the CLI, against a server process whose log is read too ----------------------------------


def test_cli_rerun_keeps_the_secret(live_server):
    env = live_server.env
    command = check_env({"DB_PASS": "cli-secret-qz5v"})
    result = run_cli(
        "submit", "--wait", "--json", "-e", "DB_PASS=cli-secret-qz5v", "--", *command, env=env
    )
    assert result.returncode == 0, result.stderr
    first = json.loads(result.stdout)
    assert first["spec"]["env"] == {"DB_PASS": MASK}
    rerun = run_cli("rerun", "--json", first["id"], env=env)
    assert rerun.returncode == 0, rerun.stderr
    again = json.loads(rerun.stdout)
    with live_server.api() as client:
        wait_for(lambda: client.get(f"jobs/{again['id']}").json()["status"] in TERMINAL)
        job = client.get(f"jobs/{again['id']}").json()
    assert job["status"] == "succeeded", job["reason"]
    shown = run_cli("show", "--json", again["id"], env=env)
    assert "qz5v" not in shown.stdout + rerun.stdout + result.stdout
    assert "qz5v" not in (live_server.home / "server.log").read_text()
    missing = run_cli("rerun", "job-000000000000", env=env)
    assert missing.returncode != 0 and "HTTP 404" in missing.stderr


def test_magic_rerun_keeps_the_secret(live_server, monkeypatch, capsys):
    from aicloud.magics import _register_subcommands
    from aicloud.magics.core import AICloudMagics

    _register_subcommands()
    monkeypatch.setenv("AICLOUD_URL", live_server.url)
    monkeypatch.setenv("AICLOUD_TOKEN", live_server.token)
    command = check_env({"HF_TOKEN": "hf-magic"})
    with live_server.api() as client:
        first = client.post("jobs", json={"command": command, "env": {"HF_TOKEN": "hf-magic"}})
        assert first.status_code == 201, first.text
        magics = AICloudMagics(shell=None)
        magics.aicloud(f"rerun {first.json()['id']}")
        new_id = capsys.readouterr().out.strip()
        assert new_id.startswith("job-") and new_id != first.json()["id"]
        wait_for(lambda: client.get(f"jobs/{new_id}").json()["status"] in TERMINAL)
        job = client.get(f"jobs/{new_id}").json()
    assert job["status"] == "succeeded", job["reason"]
    assert job["spec"]["env"] == {"HF_TOKEN": MASK}
