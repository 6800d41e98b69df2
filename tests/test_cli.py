"""The ``aicloud`` CLI against a real server process."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli, wait_for


@pytest.fixture
def live_server(module_live_server):
    """The module's server: a job or schedule per test, each test looks only at its own."""
    return module_live_server


COMMANDS = [
    "submit",
    "list",
    "show",
    "logs",
    "cancel",
    "delete",
    "status",
    "resources",
    "run",
    "outputs",
    "schedule",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command):
    result = run_cli(command, "--help", env={})
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: aicloud {command}")


def test_submit_list_logs_show_delete(live_server_factory):
    """On a server of its own: the listing holds its job alone, and is empty at the end."""
    live_server = live_server_factory()
    env = live_server.env
    (live_server.root_dir / "train.py").write_text(
        "import sys\nfor i in range(3):\n    print('epoch', i, sys.argv[1:])\n"
    )
    submitted = run_cli(
        "submit",
        "--name",
        "demo",
        "--tag",
        "exp1",
        "--",
        "python",
        "train.py",
        "--lr",
        "0.1",
        env=env,
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert job_id.startswith("job-")

    follow = run_cli("logs", "-f", job_id, env=env)
    assert follow.returncode == 0
    assert follow.stdout == "".join(f"epoch {i} ['--lr', '0.1']\n" for i in range(3))

    table = run_cli("list", env=env)
    header, row = table.stdout.splitlines()[:2]
    assert header.split() == ["ID", "NAME", "KIND", "STATUS", "ATTEMPTS", "AGE", "REASON"]
    assert row.split()[:5] == [job_id, "demo", "command", "succeeded", "1"]

    listing = json.loads(run_cli("list", "--json", "--tag", "exp1", env=env).stdout)
    assert [j["id"] for j in listing["jobs"]] == [job_id]
    assert json.loads(run_cli("list", "--json", "--tag", "other", env=env).stdout)["total"] == 0

    shown = run_cli("show", job_id, env=env).stdout
    assert f"id:        {job_id}" in shown and "status:    succeeded" in shown
    assert "runs:      python train.py --lr 0.1" in shown
    as_json = json.loads(run_cli("show", job_id, "--json", env=env).stdout)
    assert as_json["spec"]["command"] == ["python", "train.py", "--lr", "0.1"]

    logs = json.loads(run_cli("logs", job_id, "--json", env=env).stdout)
    assert logs["log"].startswith("epoch 0") and logs["next_offset"] == len(follow.stdout)

    deleted = run_cli("delete", job_id, "--json", env=env)
    assert json.loads(deleted.stdout) == {"id": job_id, "deleted": True}
    assert json.loads(run_cli("list", "--json", env=env).stdout)["total"] == 0


def test_submit_follow_and_wait_exit_with_the_outcome(live_server):
    env = live_server.env
    ok = run_cli("submit", "-f", "--", "sh", "-c", "echo streamed", env=env)
    assert ok.returncode == 0 and ok.stdout == "streamed\n"
    failed = run_cli("submit", "--wait", "--", "sh", "-c", "exit 4", env=env)
    assert failed.returncode == 1
    assert "failed: exited with code 4" in failed.stderr
    as_json = run_cli("submit", "--wait", "--json", "--", "true", env=env)
    assert json.loads(as_json.stdout)["status"] == "succeeded"


def test_submit_policy_flags_reach_the_spec(live_server):
    env = live_server.env
    result = run_cli(
        "submit",
        "--json",
        "--timeout",
        "60",
        "--max-retries",
        "2",
        "--retry-interval-ms",
        "10",
        "--retry-on-timeout",
        "--idempotency-token",
        "tok-1",
        "--env",
        "A=1",
        "--cpu",
        "1",
        "--memory",
        "1Gi",
        "--",
        "true",
        env=env,
    )
    spec = json.loads(result.stdout)["spec"]
    assert spec == {
        "command": ["true"],
        "timeout_seconds": 60,
        "max_retries": 2,
        "min_retry_interval_millis": 10,
        "retry_on_timeout": True,
        "idempotency_token": "tok-1",
        "env": {"A": "1"},
        "resources": {"cpu": 1.0, "memory": "1Gi"},
    }
    again = run_cli("submit", "--idempotency-token", "tok-1", "--", "true", env=env)
    assert again.returncode == 1 and "already used by job" in again.stderr


def test_cancel(live_server):
    env = live_server.env
    job_id = run_cli("submit", "--", "sleep", "60", env=env).stdout.strip()
    with live_server.api() as client:
        wait_for(lambda: client.get(f"jobs/{job_id}").json()["status"] == "running")
    result = run_cli("cancel", job_id, env=env)
    assert result.returncode == 0 and result.stdout.strip() == f"{job_id} cancelled"


def test_status_and_resources(live_server):
    status = run_cli("status", env=live_server.env)
    assert status.returncode == 0 and "(standalone)" in status.stdout
    resources = json.loads(run_cli("resources", env=live_server.env).stdout)
    assert resources["cpu"]["cores"] >= 1


def test_no_service_found(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "JUPYTER_RUNTIME_DIR": str(tmp_path)}
    result = run_cli("list", env=env)
    assert result.returncode == 3
    assert "no aicloud service found" in result.stderr and "make up" in result.stderr


def test_unreachable_service():
    from tests.conftest import free_port

    env = {"PATH": "/usr/bin:/bin", "AICLOUD_URL": f"http://127.0.0.1:{free_port()}/"}
    result = run_cli("list", env=env)
    assert result.returncode == 3 and "cannot reach the service" in result.stderr


def test_schedule_commands(live_server):
    env = live_server.env
    created = run_cli(
        "schedule",
        "create",
        "--cron",
        "0 6 * * *",
        "--tz",
        "Europe/Berlin",
        "--name",
        "hello",
        "--keep-last",
        "3",
        "--",
        "sh",
        "-c",
        "echo hi",
        env=env,
    )
    assert created.returncode == 0, created.stderr
    schedule_id, _, _, next_run = created.stdout.split()
    assert schedule_id.startswith("sch-") and next_run.endswith(":00:00.000Z")
    listing = run_cli("schedule", "list", env=env).stdout.splitlines()
    assert listing[0].split() == ["ID", "NAME", "CRON", "TZ", "NEXT", "MISSED"]
    assert listing[1].split()[:2] == [schedule_id, "hello"]
    shown = json.loads(run_cli("schedule", "show", schedule_id, "--json", env=env).stdout)
    assert shown["job"] == {"name": "hello", "command": ["sh", "-c", "echo hi"]}
    assert shown["name"] == "hello" and shown["keep_last"] == 3
    assert run_cli("schedule", "pause", schedule_id, env=env).stdout.strip().endswith("paused")
    resumed = run_cli("schedule", "resume", schedule_id, env=env).stdout
    assert "next run" in resumed
    job_id = run_cli("schedule", "run", schedule_id, env=env).stdout.strip()
    assert run_cli("logs", "-f", job_id, env=env).stdout == "hi\n"
    runs = run_cli("schedule", "runs", schedule_id, env=env).stdout.splitlines()
    assert runs[1].split()[:3] == [job_id, "(run", "now)"]
    bad = run_cli(
        "schedule", "create", "--cron", "0 6 * * *", "--tz", "Nowhere/City", "--", "true", env=env
    )
    assert bad.returncode == 1 and "timezone: unknown time zone" in bad.stderr
    assert run_cli("schedule", "delete", schedule_id, env=env).returncode == 0
    gone = run_cli("schedule", "show", schedule_id, env=env)
    assert gone.returncode == 1 and "not found (HTTP 404)" in gone.stderr
