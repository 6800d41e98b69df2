"""Hub users isolated from each other on one machine: the real local hub started as root.

``AICLOUD_HUB_USERS=system`` (what ``make up`` does as root): every hub user is a Unix user of
their own, created at their first login (``SystemUserAuthenticator``). Their server, kernels and
every job attempt run under that uid, in their own home (0700), with a run directory no one
else can read. The tests run jobs that try to reach what is not theirs and check that the
kernel says EACCES, and that what the service serves never follows a job's symlinks.

The Unix users ``iso-alice`` and ``iso-bob`` stay on the machine after the tests (a second run
finds them). For the users to reach their homes and the venv, the fixture opens traversal
(``o+x``, never reading) on the folders above the venv and the Python it
was made from (pyenv's, under /root, on these machines) where it is missing.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import wait_for
from tests.hub_helpers import VENV_HUB, LocalHub

SERVICE = "/services/aicloud/aicloud/api/v1"
ALICE, BOB = "iso-alice", "iso-bob"
MARKER = "isolation-marker-7c1f"

#: Run as a job: what of other users and of the service its process can read.
PROBE = """
import json, os, sys
def attempt(path):
    try:
        with open(path, "rb") as f:
            f.read(64)
        return "read"
    except PermissionError:
        return "EACCES"
    except OSError as e:
        return type(e).__name__
targets = json.loads(sys.argv[1])
print("RESULT " + json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "home": os.environ["HOME"], "cwd": os.getcwd(),
    "user": os.environ.get("USER"),
    **{name: attempt(path) for name, path in targets.items()},
}))
"""


def open_traversal(path: Path) -> None:
    """Let other users pass through (not list) every folder above ``path``."""
    for folder in reversed(path.resolve().parents):
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(folder, stat.S_IMODE(mode) | stat.S_IXOTH)


@pytest.fixture(scope="module")
def hub():
    """A root hub whose users are Unix users: iso-alice and iso-bob."""
    assert os.geteuid() == 0, "the isolation tests start the hub as root (as CI does)"
    # Not under pytest's temporary root: pytest closes that (0700) again at every start.
    state = Path(tempfile.mkdtemp(prefix="aicloud-isolation-", dir="/tmp"))
    os.chmod(state, 0o711)
    for python in (sys.prefix, os.path.realpath(sys.executable), sys.base_prefix):
        open_traversal(Path(python) / "x")
    local = LocalHub(state=state, hub_version=VENV_HUB, users="system")
    try:
        local.start()
        yield local
    finally:
        local.stop()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def clients(hub):
    """A client per user (the hub creates each one's Unix user with their hub user)."""
    return {name: hub.client(hub.user_token(name)) for name in (ALICE, BOB)}


def uid(name: str) -> int:
    return pwd.getpwnam(name).pw_uid


def wait_job(client, job_id: str, timeout: float = 90) -> dict:
    def ended():
        job = client.get(f"{SERVICE}/jobs/{job_id}").json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(ended, timeout=timeout, interval=0.2)


def run(client, spec: dict) -> tuple[dict, str]:
    """Submit ``spec``, wait for its end; the job and its log."""
    response = client.post(f"{SERVICE}/jobs", json=spec)
    assert response.status_code == 201, response.text
    job = wait_job(client, response.json()["id"])
    return job, client.get(f"{SERVICE}/jobs/{job['id']}/logs").text


def service_pid(hub: LocalHub) -> int:
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "aicloud.hub.service" in cmdline and any(str(hub.state) in a for a in cmdline):
            return process.pid
    raise AssertionError("no aicloud service process")


def test_hub_users_are_unix_users_and_system_accounts_are_refused(hub, clients):
    assert uid(ALICE) >= 1000 and uid(BOB) >= 1000 and uid(ALICE) != uid(BOB)
    with hub.admin() as admin:
        response = admin.post("/hub/api/users", json={"usernames": ["daemon"]})
        assert response.status_code >= 400
        assert admin.get("/hub/api/users/daemon").status_code == 404
    # Logging in as a system account is refused too (the login form, as a browser posts it).
    with httpx.Client(base_url=hub.url, timeout=30) as browser:
        form = browser.get("/hub/login").text
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', form).group(1)
        for name in ("root", "daemon"):
            login = browser.post(
                "/hub/login",
                data={"username": name, "password": "x", "_xsrf": xsrf},
                follow_redirects=False,
            )
            assert login.status_code == 403, (name, login.status_code)


def test_servers_kernels_and_jobs_run_as_their_owner(hub, clients):
    alice = clients[ALICE]
    assert hub.spawn(ALICE).status_code < 400
    home = hub.state / "users" / ALICE
    info = home.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (uid(ALICE), 0o700)
    # The examples were copied by alice herself: hers, and nothing in her home is root's.
    assert (home / "train_torch_ddp.ipynb").stat().st_uid == uid(ALICE)
    assert all(p.lstat().st_uid == uid(ALICE) for p in home.iterdir())
    kernel = alice.post(f"/user/{ALICE}/api/kernels", json={"name": "python3"})
    assert kernel.status_code == 201, kernel.text

    def owners(command: str) -> dict[int, str]:
        found = {}
        for process in psutil.process_iter(["cmdline", "environ", "username"]):
            try:
                cmdline = " ".join(process.info["cmdline"] or [])
                environ = process.info["environ"] or {}
            except psutil.Error:
                continue
            if command in cmdline and environ.get("JUPYTERHUB_USER") == ALICE:
                found[process.pid] = process.info["username"]
        return found

    assert set(owners("jupyterhub-singleuser").values()) == {ALICE}
    assert set(wait_for(lambda: owners("ipykernel_launcher"), timeout=30).values()) == {ALICE}
    alice.delete(f"/user/{ALICE}/api/kernels/{kernel.json()['id']}")

    # A running job: `ps` shows its supervisor and its process under alice's uid.
    response = alice.post(f"{SERVICE}/jobs", json={"command": ["sleep", "30"], "name": "ps-check"})
    job_id = response.json()["id"]
    wait_for(
        lambda: alice.get(f"{SERVICE}/jobs/{job_id}").json()["status"] == "running", timeout=30
    )

    def attempt_processes():
        ps = subprocess.run(
            ["ps", "-ww", "-eo", "user:32=,args="], capture_output=True, text=True, check=True
        ).stdout
        lines = [line.split(None, 1) for line in ps.splitlines() if line.strip()]
        mine = [(user, args) for user, args in lines if job_id in args or args == "sleep 30"]
        return mine if any("supervise.py" in args for _, args in mine) else None

    processes = wait_for(attempt_processes, timeout=30)
    assert {user for user, _ in processes} == {ALICE}, processes
    alice.delete(f"{SERVICE}/jobs/{job_id}")  # cancels it
    hub.stop_server(ALICE)


def test_a_job_cannot_reach_the_service_the_store_or_another_user(hub, clients):
    alice, bob = clients[ALICE], clients[BOB]
    bob_home = hub.state / "users" / BOB
    bob_home.mkdir(exist_ok=True)
    os.chown(bob_home, uid(BOB), uid(BOB))
    os.chmod(bob_home, 0o700)
    (bob_home / "secret.txt").write_text(MARKER)
    os.chown(bob_home / "secret.txt", uid(BOB), uid(BOB))
    bobs, bobs_log = run(bob, {"command": ["sh", "-c", f"echo {MARKER}"]})
    assert bobs["status"] == "succeeded", (bobs["reason"], bobs_log)
    bob_run = hub.state / "aicloud" / "runs" / bobs["id"]
    info = bob_run.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (uid(BOB), 0o700)

    store = hub.state / "aicloud" / "aicloud.db"
    targets = {
        "service_environ": f"/proc/{service_pid(hub)}/environ",
        "store": str(store),
        "bob_run_log": str(bob_run / "output.log"),
        "bob_home": str(bob_home / "secret.txt"),
        "hub_db": str(hub.state / "jupyterhub.sqlite"),
        "cookie_secret": str(hub.state / "jupyterhub_cookie_secret"),
    }
    job, log = run(alice, {"command": [sys.executable, "-c", PROBE, json.dumps(targets)]})
    assert job["status"] == "succeeded", log
    result = json.loads(log.split("RESULT ", 1)[1].splitlines()[0])
    assert (result["uid"], result["user"]) == (uid(ALICE), ALICE)
    assert result["home"] == result["cwd"] == str(hub.state / "users" / ALICE)
    for name in targets:
        assert result[name] == "EACCES", (name, result)
    assert MARKER not in log

    # Nor through the service: bob's job, log and files are not alice's to see.
    assert alice.get(f"{SERVICE}/jobs/{bobs['id']}").status_code == 404
    assert alice.get(f"{SERVICE}/jobs/{bobs['id']}/logs").status_code == 404
    # The store is the service's alone, and no plan (with the job's secrets) is on disk:
    # the supervisor gets it on stdin.
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    run_dir = hub.state / "aicloud" / "runs" / job["id"]
    assert list(run_dir.glob("*.plan.json")) == [] and list(run_dir.glob("*.claim"))


def test_a_job_that_plants_symlinks_gets_no_file_contents(hub, clients):
    """A job swaps its log and an output for links to the service's environment and to
    another user's run directory: the service serves neither."""
    alice, bob = clients[ALICE], clients[BOB]
    bobs, _ = run(bob, {"command": ["sh", "-c", f"echo {MARKER}"]})
    bob_run = hub.state / "aicloud" / "runs" / bobs["id"]
    script = (
        'ln -sf /proc/self/environ "$AICLOUD_RUN_DIR/output.log.tmp"'
        ' && mv -f "$AICLOUD_RUN_DIR/output.log.tmp" "$AICLOUD_RUN_DIR/output.log"'
        ' && mkdir -p "$AICLOUD_RUN_DIR/outputs"'
        f' && ln -s {bob_run}/output.log "$AICLOUD_RUN_DIR/outputs/report.txt"'
    )
    job, log = run(alice, {"command": ["sh", "-c", script]})
    assert job["status"] == "succeeded"
    assert "JUPYTERHUB" not in log and "AICLOUD_" not in log
    logs = alice.get(f"{SERVICE}/jobs/{job['id']}/logs")
    assert logs.status_code in (403, 404) or "JUPYTERHUB" not in logs.text
    output = alice.get(f"{SERVICE}/jobs/{job['id']}/outputs/report.txt")
    assert output.status_code in (403, 404)
    assert MARKER not in output.text
    listing = alice.get(f"{SERVICE}/jobs/{job['id']}/outputs").json()["outputs"]
    assert [o for o in listing if o["name"] == "report.txt"] == []


def test_the_service_writes_no_file_through_a_link_a_job_planted(hub, clients):
    """A job links its next attempt's status file and the supervisor log to a root file: the
    retry writes its own new files, and the root file is untouched."""
    alice = clients[ALICE]
    victim = hub.state / "victim.txt"
    victim.write_text(MARKER)
    script = (
        'if [ "$AICLOUD_ATTEMPT" = 1 ]; then'
        f' ln -s {victim} "$AICLOUD_RUN_DIR/attempt-2.status.json";'
        ' rm -f "$AICLOUD_RUN_DIR/supervisor.log";'
        f' ln -s {victim} "$AICLOUD_RUN_DIR/supervisor.log"; exit 3; fi'
    )
    job, log = run(alice, {"command": ["sh", "-c", script], "max_retries": 1})
    assert job["status"] == "succeeded" and len(job["attempts"]) == 2, (job, log)
    assert victim.read_text() == MARKER


@pytest.mark.timeout(900)
def test_every_example_notebook_runs_as_a_unix_user_from_their_home(hub, clients):
    """The five examples, as iso-bob's notebook jobs with no ``cwd``, on a hub whose users are
    Unix users: papermill, torchrun, the TF workers and the model server run under bob's uid,
    from his home, and what they write there is his."""
    bob = clients[BOB]
    assert hub.spawn(BOB).status_code < 400  # copies the examples into his home, as him
    hub.stop_server(BOB)  # the jobs need no server: they call the service with their token
    home = hub.state / "users" / BOB
    notebooks = sorted(p.name for p in home.glob("*.ipynb"))
    assert len(notebooks) == 5, notebooks
    ids = {}
    for name in notebooks:
        response = bob.post(
            f"{SERVICE}/jobs", json={"kind": "notebook", "notebook": name, "timeout_seconds": 600}
        )
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
    failed = {}
    for name, job_id in ids.items():
        job = wait_job(bob, job_id, timeout=840)
        if job["status"] != "succeeded":
            failed[name] = (job["reason"], bob.get(f"{SERVICE}/jobs/{job_id}/logs").text[-3000:])
    for job in bob.get(f"{SERVICE}/jobs", params={"status": "failed"}).json()["jobs"]:
        if job["id"] not in ids.values():  # a job a notebook launched: its log tells why
            failed[job["id"]] = bob.get(f"{SERVICE}/jobs/{job['id']}/logs").text[-2000:]
    assert not failed, failed
    written = home / "ddp_demo.py"
    assert written.is_file() and written.stat().st_uid == uid(BOB)
    assert all(p.lstat().st_uid == uid(BOB) for p in home.rglob("*"))
