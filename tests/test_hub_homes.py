"""Each hub user works from their own home: examples there, relative paths starting there.

A real local hub (``spawner_config/jupyterhub_config.py``): the service's jobs start in the
owner's home (``JobManager.home_dir_template``, the spawner's ``home_dir_template``) and may not
leave it, and a first spawn copies ``notebooks/`` into the new home. Every example notebook then
runs as a hub user's notebook job from that home, with no ``cwd``, calling the service back with
the job's own token.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aicloud.magics.cli_commands import output_url
from tests.conftest import wait_for
from tests.hub_helpers import VENV_HUB, LocalHub

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p.name for p in (REPO / "notebooks").iterdir() if not p.name.startswith("."))
SERVICE = "/services/aicloud/aicloud/api/v1"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A local hub of the venv's JupyterHub."""
    local = LocalHub(state=tmp_path_factory.mktemp("hub"), hub_version=VENV_HUB)
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope="module")
def tokens(hub):
    """An API token per user."""
    return {name: hub.user_token(name) for name in ("alice", "bob", "erin")}


def home(hub: LocalHub, name: str) -> Path:
    return hub.state / "users" / name


def wait_job(client, job_id: str, timeout: float = 120) -> dict:
    """The job once it has ended."""

    def ended():
        job = client.get(f"{SERVICE}/jobs/{job_id}").json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(ended, timeout=timeout, interval=0.3)


def test_a_new_home_gets_the_examples_once_never_overwriting(hub, tokens):
    own = home(hub, "bob")
    own.mkdir(parents=True)
    (own / "magics_train.ipynb").write_text("bob's own notebook")
    assert hub.spawn("bob").status_code < 400
    assert sorted(p.name for p in own.iterdir() if not p.name.startswith(".")) == EXAMPLES
    assert (own / "magics_train.ipynb").read_text() == "bob's own notebook"
    assert (own / "train_torch_ddp.ipynb").read_bytes() == (
        REPO / "notebooks" / "train_torch_ddp.ipynb"
    ).read_bytes()
    # An example the user deleted does not come back on the next spawn.
    (own / "report_parameterized.ipynb").unlink()
    hub.stop_server("bob")
    assert hub.spawn("bob").status_code < 400
    assert not (own / "report_parameterized.ipynb").exists()
    hub.stop_server("bob")


def test_relative_paths_start_at_the_owners_home_and_cannot_leave_it(hub, tokens):
    alice, bob = hub.client(tokens["alice"]), hub.client(tokens["bob"])
    mine = home(hub, "alice")
    mine.mkdir(parents=True, exist_ok=True)
    (mine / "where.py").write_text("import os; print('CWD', os.getcwd())\n")
    (mine / "private.ipynb").write_text(
        (REPO / "notebooks" / "report_parameterized.ipynb").read_text()
    )
    (mine / "sub").mkdir(exist_ok=True)

    job = alice.post(f"{SERVICE}/jobs", json={"script": "where.py"}).json()
    assert wait_job(alice, job["id"])["status"] == "succeeded"
    log = alice.get(f"{SERVICE}/jobs/{job['id']}/logs").text
    assert f"CWD {mine.resolve()}" in log
    response = alice.get(f"{SERVICE}/notebooks/parameters", params={"path": "private.ipynb"})
    assert response.status_code == 200 and response.json()["parameters"]

    # bob names alice's files by every field and every ../: a 4xx naming the field, never a run.
    attempts = [
        ({"script": "where.py"}, "script"),
        ({"script": "../alice/where.py"}, "script"),
        ({"cwd": "../alice", "script": "where.py"}, "cwd"),
        ({"cwd": "..", "command": ["ls"]}, "cwd"),
        ({"cwd": str(mine), "command": ["ls"]}, "cwd"),
        ({"kind": "notebook", "notebook": "../alice/private.ipynb"}, "notebook"),
        ({"kind": "notebook", "notebook": "private.ipynb", "cwd": "../alice"}, "cwd"),
    ]
    for spec, field in attempts:
        response = bob.post(f"{SERVICE}/jobs", json=spec)
        assert response.status_code == 400, (spec, response.text)
        assert field in response.json()["message"], (spec, response.text)
    for path in ("../alice/private.ipynb", str(mine / "private.ipynb"), "private.ipynb"):
        response = bob.get(f"{SERVICE}/notebooks/parameters", params={"path": path})
        assert response.status_code in (400, 404), (path, response.text)
        assert "parameters" not in response.json()
    assert bob.get(f"{SERVICE}/jobs").json()["jobs"] == []


@pytest.mark.timeout(900)
def test_every_example_notebook_runs_as_a_hub_user_from_their_home(hub, tokens):
    """The examples, as erin's notebook jobs with no ``cwd``: papermill runs each in erin's
    home, and the jobs they launch (torchrun, TF workers, a model server) start there too."""
    erin = hub.client(tokens["erin"])
    assert hub.spawn("erin").status_code < 400
    hub.stop_server("erin")  # the jobs need no server: they call the service with their token
    notebooks = [name for name in EXAMPLES if name.endswith(".ipynb")]
    assert len(notebooks) == 5
    ids = {}
    for name in notebooks:
        response = erin.post(
            f"{SERVICE}/jobs", json={"kind": "notebook", "notebook": name, "timeout_seconds": 600}
        )
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
    failed = {}
    for name, job_id in ids.items():
        job = wait_job(erin, job_id, timeout=840)
        if job["status"] != "succeeded":
            failed[name] = (job["reason"], erin.get(f"{SERVICE}/jobs/{job_id}/logs").text[-3000:])
    assert not failed, failed
    # What the notebooks wrote (scripts, models, scores) is in erin's home, not the shared root.
    assert (home(hub, "erin") / "ddp_demo.py").is_file()
    assert not (hub.state / "users" / "ddp_demo.py").exists()


def test_output_links_open_through_the_users_own_server(hub, tokens):
    """``%aicloud run`` prints links under the user's server prefix (what the kernel's
    ``JUPYTERHUB_SERVICE_PREFIX`` says), which forwards to the service in the user's session."""
    alice = hub.client(tokens["alice"])
    mine = home(hub, "alice")
    mine.mkdir(parents=True, exist_ok=True)
    (mine / "report.ipynb").write_text(
        (REPO / "notebooks" / "report_parameterized.ipynb").read_text()
    )
    job = alice.post(f"{SERVICE}/jobs", json={"kind": "notebook", "notebook": "report.ipynb"})
    assert wait_job(alice, job.json()["id"])["status"] == "succeeded"
    job_id = job.json()["id"]
    (output, *_) = alice.get(f"{SERVICE}/jobs/{job_id}/outputs").json()["outputs"]
    url = output_url(
        "http://127.0.0.1:10101/services/aicloud/",
        job_id,
        output["name"],
        env={"JUPYTERHUB_SERVICE_PREFIX": "/user/alice/"},
    )
    assert url == f"/user/alice/aicloud/api/v1/jobs/{job_id}/outputs/{output['name']}"
    assert hub.spawn("alice").status_code < 400
    through_server = alice.get(url)
    assert through_server.status_code == 200, through_server.text
    direct = alice.get(f"{SERVICE}/jobs/{job_id}/outputs/{output['name']}")
    assert through_server.content == direct.content and len(direct.content) == output["size"]
    # bob's session cannot open it.
    assert hub.spawn("bob").status_code < 400
    bobs = hub.client(tokens["bob"]).get(url.replace("/user/alice/", "/user/bob/"))
    assert bobs.status_code == 404
    hub.stop_server("alice")
    hub.stop_server("bob")
