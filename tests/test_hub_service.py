"""The hub home, for real: JupyterHub, configurable-http-proxy, the aicloud service, user servers.

One hub per JupyterHub version (``spawner_config/jupyterhub_config.py`` with a test overlay):
every test runs against the venv's JupyterHub 6.x and against 5.5 (what z2jh ships; the overlay
made by ``make hub-5.5``, see ``tests/hub_helpers.py``). The fake
``tests/fakes/nvidia-smi`` is on the hub's PATH so that the service's local backend sees two
GPUs and GPU jobs can run (and count against quotas) on a machine without any.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.hub_helpers import ADMIN_TOKEN, HUB_VERSIONS, LocalHub

FAKES = Path(__file__).parent / "fakes"
CATALOG = Path(__file__).resolve().parent.parent / "spawner_config" / "hardware.yaml"
API = "aicloud/api/v1"
EVERY_SECOND = "* * * * * */1"
AICLOUD_CLI = str(Path(sys.executable).with_name("aicloud"))
#: Run inside a job: calls the service back with the job's own connection (AICLOUD_URL and the
#: AICLOUD_TOKEN the service issued), through the client and the CLI. argv: another user's job.
#: It also writes the token into its run directory, for the test's leak checks only.
CALL_BACK = """
import json, os, subprocess, sys
from pathlib import Path
import httpx
from aicloud.client import AICloudClient, APIError
token = os.environ["AICLOUD_TOKEN"]
Path(os.environ["AICLOUD_RUN_DIR"], "token-for-the-test").write_text(token)
with AICloudClient() as client:
    status = client.status()
    jobs = client.list(limit=500)["jobs"]
    try:
        other = client.get(sys.argv[1])["owner"]
    except APIError as e:
        other = e.status
hub = httpx.get(os.environ["JUPYTERHUB_API_URL"] + "/users/" + status["user"] + "/tokens",
                headers={"Authorization": "token " + token})
cli = subprocess.run([sys.argv[2], "list", "--limit", "500"], capture_output=True, text=True)
print("RESULT " + json.dumps({
    "source": client.connection.source, "user": status["user"], "admin": status["admin"],
    "ids": [j["id"] for j in jobs], "owners": sorted({j["owner"] for j in jobs}),
    "other": other, "hub_api": hub.status_code, "cli": cli.stdout, "cli_rc": cli.returncode,
}))
"""


@pytest.fixture(scope="module", params=HUB_VERSIONS, ids=lambda v: f"hub{v}")
def hub(request, tmp_path_factory):
    """A local hub: carol and dave are students (GPU quota 1), boss is an aicloud admin."""
    local = LocalHub(
        state=tmp_path_factory.mktemp("hub"),
        groups={"students": {"users": ["carol", "dave"]}},
        env={"PATH": f"{FAKES}{os.pathsep}{os.environ['PATH']}"},
        hub_version=request.param,
    )
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope="module")
def tokens(hub):
    """An API token per user."""
    return {name: hub.user_token(name) for name in ("alice", "bob", "carol", "dave", "boss")}


def wait_job(client, path: str, timeout: float = 60) -> dict:
    """Poll ``path`` (a job URL) until the job has ended."""

    def ended():
        job = client.get(path).json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(ended, timeout=timeout, interval=0.2)


def test_the_hub_server_and_service_all_run_the_version_under_test(hub, tokens):
    """The hub, its data files, the users' servers and the aicloud service: one JupyterHub."""
    wanted = hub.hub_version
    with hub.admin() as admin:
        assert admin.get("/hub/api/").json()["version"].startswith(wanted + ".")
    # Static files (and templates, from the same place) come from that version's share/.
    css = "static/components/@fortawesome/fontawesome-free/css/fontawesome.css"
    served = hub.client(tokens["alice"]).get(f"/hub/{css}")
    assert served.status_code == 200 and served.content == (hub.data_files / css).read_bytes()
    # A user's server is that version's jupyterhub-singleuser...
    assert hub.spawn("vera", {"profile": "cpu-small"}).status_code in (201, 202)
    answer = hub.client(hub.user_token("vera")).get("/user/vera/api/status")
    assert answer.status_code == 200
    assert answer.headers["X-JupyterHub-Version"].startswith(wanted + ".")
    # ...and the aicloud service imports it (module and package metadata agree).
    marker = "aicloud hub service: JupyterHub"
    started = [line for line in hub.log().splitlines() if marker in line][-1]
    assert f"JupyterHub {wanted}." in started and f"(package {wanted}." in started
    assert str(hub.overlay or "site-packages") in started
    hub.stop_server("vera")


def test_unknown_profile_or_option_is_a_400_listing_allowed_values(hub, tokens):
    response = hub.spawn("alice", {"profile": "a100-80"})
    assert response.status_code == 400
    message = response.json()["message"]
    # alice is in no group: the ml-team profiles are not hers to pick, and not listed.
    assert message == (
        "profile: 'a100-80' is not one of the allowed values: cpu-small, cpu-large, a100-mig-1g"
    )
    response = hub.spawn("alice", {"profile": "cpu-small", "gpus": "8"})
    assert response.status_code == 400
    assert response.json()["message"] == "user_options: unknown option(s) 'gpus'; allowed: profile"
    response = hub.spawn("alice", {"profile": "a100-1"})  # exists, but for ml-team only
    assert response.status_code == 400 and "a100-1" in response.json()["message"]


def test_users_see_and_touch_only_their_own_jobs(hub, tokens):
    assert hub.spawn("alice", {"profile": "cpu-small"}).status_code in (201, 202)
    assert hub.spawn("bob", {"profile": "cpu-small"}).status_code in (201, 202)
    alice, bob, boss = (hub.client(tokens[n]) for n in ("alice", "bob", "boss"))
    status = alice.get(f"/user/alice/{API}/status").json()
    assert status["mode"] == "hub" and status["user"] == "alice"
    # alice submits through her own server, which forwards to the hub service as her.
    response = alice.post(
        f"/user/alice/{API}/jobs", json={"command": ["sh", "-c", "echo from $USER-side; sleep 30"]}
    )
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["owner"] == "alice"
    assert response.headers["Location"] == f"/user/alice/{API}/jobs/{job['id']}"
    wait_for(lambda: alice.get(f"/user/alice/{API}/jobs/{job['id']}").json()["status"] == "running")

    # bob, through his own server or the service itself: not found, not cancellable.
    for prefix in ("/user/bob", "/services/aicloud"):
        assert bob.get(f"{prefix}/{API}/jobs/{job['id']}").status_code == 404
        assert bob.post(f"{prefix}/{API}/jobs/{job['id']}/cancel").status_code == 404
        assert bob.delete(f"{prefix}/{API}/jobs/{job['id']}").status_code == 404
        assert bob.get(f"{prefix}/{API}/jobs/{job['id']}/logs").status_code == 404
        assert job["id"] not in [j["id"] for j in bob.get(f"{prefix}/{API}/jobs").json()["jobs"]]
    # ...and alice's server is not his to use.
    assert bob.get(f"/user/alice/{API}/jobs").status_code == 403
    assert alice.get(f"/user/alice/{API}/jobs/{job['id']}").json()["status"] == "running"

    # An aicloud admin sees everyone's jobs and may cancel them.
    listed = boss.get(f"/services/aicloud/{API}/jobs").json()["jobs"]
    assert job["id"] in [j["id"] for j in listed]
    cancelled = boss.post(f"/services/aicloud/{API}/jobs/{job['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["owner"] == "alice"
    log = alice.get(f"/user/alice/{API}/jobs/{job['id']}/logs")
    assert log.status_code == 200 and "from" in log.text
    # An anonymous caller gets nothing.
    assert hub.client("not-a-token").get(f"/services/aicloud/{API}/jobs").status_code == 403
    # The service is not a Jupyter server for users: no files, kernels or sessions in it.
    for route in ("contents", "kernels", "kernelspecs", "sessions", "terminals", "nbconvert"):
        answer = alice.get(f"/services/aicloud/api/{route}")
        assert answer.status_code == 404, (route, answer.status_code)
        assert alice.post(f"/services/aicloud/api/{route}", json={}).status_code in (404, 405)


def test_schedule_fires_while_the_owners_server_is_stopped(hub, tokens):
    hub.spawn("alice", {"profile": "cpu-small"})
    alice = hub.client(tokens["alice"])
    response = alice.post(
        f"/user/alice/{API}/schedules",
        json={"cron": EVERY_SECOND, "job": {"command": ["sh", "-c", "echo tick"]}},
    )
    assert response.status_code == 201, response.text
    schedule = response.json()
    hub.stop_server("alice")
    stopped_at = datetime.now(timezone.utc)
    assert alice.get(f"/user/alice/{API}/schedules").status_code != 200  # no server now

    runs_url = f"/services/aicloud/{API}/schedules/{schedule['id']}/runs"

    def runs_after_stop():
        runs = alice.get(runs_url).json()["jobs"]
        later = [
            r
            for r in runs
            if r["status"] == "succeeded"
            and datetime.fromisoformat(r["scheduled_for"].replace("Z", "+00:00")) > stopped_at
        ]
        return later if len(later) >= 2 else None

    later = wait_for(runs_after_stop, timeout=60, interval=0.3)
    assert all(r["owner"] == "alice" for r in later)
    # bob cannot see or delete alice's schedule.
    bob = hub.client(tokens["bob"])
    assert bob.get(f"/services/aicloud/{API}/schedules/{schedule['id']}").status_code == 404
    assert bob.delete(f"/services/aicloud/{API}/schedules/{schedule['id']}").status_code == 404
    assert alice.delete(f"/services/aicloud/{API}/schedules/{schedule['id']}").status_code == 204


def test_webhooks_may_not_reach_the_hubs_internal_addresses(hub, tokens):
    """The hub service refuses webhooks to internal hosts (SSRF): a 400 naming the field."""
    bob = hub.client(tokens["bob"])
    for url in (f"{hub.url}/hub/api/users", "http://169.254.169.254/latest/meta-data/"):
        response = bob.post(
            f"/services/aicloud/{API}/schedules",
            json={"cron": "0 3 * * *", "job": {"command": ["true"]}, "webhook_url": url},
        )
        assert response.status_code == 400, response.text
        assert response.json()["message"].startswith("webhook_url: webhooks may not go to")


def test_gpu_quota_counts_servers_and_jobs_together(hub, tokens):
    # carol (students: 1 GPU) holds one in her server; a GPU job would be a second one.
    assert hub.spawn("carol", {"profile": "a100-mig-1g"}).status_code in (201, 202)
    carol = hub.client(tokens["carol"])
    gpu_job = {
        "command": ["sleep", "60"],
        "resources": {"accelerator": "nvidia.com/gpu", "accelerator_count": 1},
    }
    response = carol.post(f"/user/carol/{API}/jobs", json=gpu_job)
    assert response.status_code == 403
    assert response.json()["message"] == (
        "GPU quota: job needs 1 GPU(s), but carol already holds 1 (1 in servers, 0 in jobs) of "
        "the 1 allowed to group students; stop a server or cancel a job first"
    )
    cpu_job = carol.post(f"/user/carol/{API}/jobs", json={"command": ["true"]})
    assert cpu_job.status_code == 201  # CPU work is not limited

    # dave (students) holds one in a running job: a GPU server is refused by the hub.
    dave = hub.client(tokens["dave"])
    response = dave.post(f"/services/aicloud/{API}/jobs", json=gpu_job)
    assert response.status_code == 201, response.text
    job = response.json()
    response = hub.spawn("dave", {"profile": "a100-mig-1g"})
    assert response.status_code == 403
    assert "dave already holds 1 (0 in servers, 1 in jobs)" in response.json()["message"]
    dave.post(f"/services/aicloud/{API}/jobs/{job['id']}/cancel")
    assert hub.spawn("dave", {"profile": "a100-mig-1g"}).status_code in (201, 202)


def test_owner_filter_is_for_admins_only(hub, tokens):
    assert hub.spawn("alice", {"profile": "cpu-small"}).status_code in (201, 202)
    alice, bob, boss = (hub.client(tokens[n]) for n in ("alice", "bob", "boss"))
    service = f"/services/aicloud/{API}"
    job = alice.post(f"{service}/jobs", json={"command": ["true"]}).json()
    bob.post(f"{service}/jobs", json={"command": ["true"]})
    assert alice.get(f"{service}/status").json()["admin"] is False
    assert boss.get(f"{service}/status").json()["admin"] is True

    # A user may name themself, through their server or the service; no one else.
    mine = alice.get(f"/user/alice/{API}/jobs", params={"owner": "alice"}).json()["jobs"]
    assert job["id"] in [j["id"] for j in mine] and {j["owner"] for j in mine} == {"alice"}
    for what in ("jobs", "schedules"):
        response = alice.get(f"{service}/{what}", params={"owner": "bob"})
        assert response.status_code == 403
        assert response.json()["message"] == (
            f"owner: only an aicloud admin may list another user's {what}"
        )
    assert alice.get(f"/user/alice/{API}/jobs", params={"owner": "bob"}).status_code == 403
    response = alice.get(f"{service}/jobs", params={"owner": ""})
    assert response.status_code == 400 and response.json()["message"].startswith("owner:")

    # An admin sees everyone by default, one user with ?owner=, nobody's for an unknown name.
    everyone = {
        j["owner"] for j in boss.get(f"{service}/jobs", params={"limit": 500}).json()["jobs"]
    }
    assert {"alice", "bob"} <= everyone
    page = boss.get(f"{service}/jobs", params={"owner": "alice", "limit": 500}).json()
    assert job["id"] in [j["id"] for j in page["jobs"]]
    assert {j["owner"] for j in page["jobs"]} == {"alice"} and page["total"] == len(page["jobs"])
    nobody = boss.get(f"{service}/jobs", params={"owner": "no-such-user"}).json()
    assert nobody["jobs"] == [] and nobody["total"] == 0
    schedules = boss.get(f"{service}/schedules", params={"owner": "no-such-user"}).json()
    assert schedules["schedules"] == [] and schedules["total"] == 0


def test_resources_report_the_callers_gpu_quota_and_use(hub, tokens):
    # carol (students: 1 GPU) still holds one in her server (see the test above).
    carol = hub.client(tokens["carol"])
    quota = carol.get(f"/user/carol/{API}/resources").json()["quota"]
    assert quota == {"limit": 1, "groups": ["students"], "used": 1, "servers": 1, "jobs": 0}
    # alice is in no group with a quota; a GPU job she runs counts in her use.
    alice = hub.client(tokens["alice"])
    service = f"/services/aicloud/{API}"
    gpu_job = {
        "command": ["sleep", "60"],
        "resources": {"accelerator": "nvidia.com/gpu", "accelerator_count": 1},
    }
    job = alice.post(f"{service}/jobs", json=gpu_job).json()
    quota = alice.get(f"{service}/resources").json()["quota"]
    assert quota == {"limit": None, "groups": [], "used": 1, "servers": 0, "jobs": 1}
    alice.post(f"{service}/jobs/{job['id']}/cancel")
    assert alice.get(f"{service}/resources").json()["quota"]["jobs"] == 0


def test_gpu_servers_are_culled_sooner_than_cpu_ones(hub, tokens):
    """The culling policy against the real hub, 25 minutes in the future (time travel)."""
    from datetime import timedelta

    from aicloud.catalog import load_catalog
    from aicloud.hub.culling import CullPolicy, cull_once

    assert hub.spawn("erin", {"profile": "cpu-small"}).status_code in (201, 202)
    hub.stop_server("dave")
    assert hub.spawn("dave", {"profile": "a100-mig-1g"}).status_code in (201, 202)
    policy = CullPolicy(load_catalog(CATALOG), cpu_timeout=3600, gpu_timeout=1200)
    api_url = f"{hub.url}/hub/api"
    now = datetime.now(timezone.utc)
    assert asyncio.run(cull_once(api_url, ADMIN_TOKEN, policy, now=now)) == []
    culled = asyncio.run(cull_once(api_url, ADMIN_TOKEN, policy, now=now + timedelta(minutes=25)))
    assert {(d.user, d.limit) for d in culled} >= {("dave", 1200), ("carol", 1200)}
    assert "erin" not in {d.user for d in culled}

    def servers(name):
        with hub.admin() as admin:
            return admin.get(f"/hub/api/users/{name}").json()["servers"]

    wait_for(lambda: not servers("dave") and not servers("carol"), timeout=60)
    assert servers("erin")[""]["ready"]


def test_a_job_calls_the_service_back_as_its_owner_while_the_server_is_stopped(hub, tokens):
    """Each attempt gets a hub token of its owner, limited to the service, revoked at its end."""
    alice, bob, boss = (hub.client(tokens[n]) for n in ("alice", "bob", "boss"))
    service = f"/services/aicloud/{API}"
    hub.stop_server("alice")
    bobs = bob.post(f"{service}/jobs", json={"command": ["true"]}).json()
    response = alice.post(
        f"{service}/jobs",
        json={"command": [sys.executable, "-c", CALL_BACK, bobs["id"], AICLOUD_CLI]},
    )
    assert response.status_code == 201, response.text
    job = wait_job(alice, f"{service}/jobs/{response.json()['id']}")
    log = alice.get(f"{service}/jobs/{job['id']}/logs").text
    assert job["status"] == "succeeded", log
    result = json.loads(log.split("RESULT ", 1)[1])
    # The job reached the service directly (alice has no server) and acted as alice alone.
    assert result["source"] == "AICLOUD_URL"
    assert (result["user"], result["admin"]) == ("alice", False)
    assert job["id"] in result["ids"] and result["owners"] == ["alice"]
    assert bobs["id"] not in result["ids"] and result["other"] == 404
    assert result["cli_rc"] == 0 and job["id"] in result["cli"] and bobs["id"] not in result["cli"]
    # The token may call the service, not read its owner's tokens (nor do anything else).
    assert result["hub_api"] == 403
    # It is in no API answer and no log, and it is revoked once the attempt has ended.
    token = (hub.state / "aicloud" / "runs" / job["id"] / "token-for-the-test").read_text()
    assert token and token not in tokens.values()
    answers = [
        alice.get(f"{service}/jobs/{job['id']}").text,
        alice.get(f"{service}/jobs", params={"limit": 500}).text,
        boss.get(f"{service}/jobs", params={"limit": 500}).text,
        log,
        hub.log(),
    ]
    assert not [text for text in answers if token in text]
    wait_for(lambda: hub.client(token).get(f"{service}/status").status_code == 403, timeout=30)
    with hub.admin() as admin:
        notes = [t["note"] for t in admin.get("/hub/api/users/alice/tokens").json()["api_tokens"]]
    assert not [note for note in notes if job["id"] in note]
    # An admin's job acts as that admin, without the admin scope (the token is the service's
    # access only).
    response = boss.post(
        f"{service}/jobs",
        json={"command": [sys.executable, "-c", CALL_BACK, bobs["id"], AICLOUD_CLI]},
    )
    job = wait_job(boss, f"{service}/jobs/{response.json()['id']}")
    log = boss.get(f"{service}/jobs/{job['id']}/logs").text
    assert job["status"] == "succeeded", log
    result = json.loads(log.split("RESULT ", 1)[1])
    assert (result["user"], result["admin"], result["owners"]) == ("boss", False, ["boss"])
