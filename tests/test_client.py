"""Client discovery order, and the Python client against a real server."""

from __future__ import annotations

import json
import os

import pytest

from aicloud.client import AICloudClient, APIError, Connection, ServiceNotFound, discover


def write_runtime_file(runtime_dir, pid: int, url: str, token: str) -> None:
    (runtime_dir / f"jpserver-{pid}.json").write_text(
        json.dumps({"pid": pid, "url": url, "token": token})
    )


def test_explicit_variables_come_first(tmp_path):
    write_runtime_file(tmp_path, os.getpid(), "http://127.0.0.1:1/", "rt")
    env = {"AICLOUD_URL": "http://x:1/", "AICLOUD_TOKEN": "t", "JUPYTERHUB_API_TOKEN": "h"}
    assert discover(env, tmp_path) == Connection("http://x:1/", "t", "AICLOUD_URL")


def test_inside_a_hub_server(tmp_path):
    env = {"JUPYTERHUB_API_TOKEN": "h", "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api"}
    assert discover(env, tmp_path) == Connection(
        "http://127.0.0.1:8081/services/aicloud/", "h", "JupyterHub"
    )
    env["AICLOUD_HUB_SERVICE_URL"] = "http://hub:8000/services/aicloud/"
    assert discover(env, tmp_path).url == "http://hub:8000/services/aicloud/"


def test_runtime_file_of_the_parent_server_wins(tmp_path):
    parent = os.getppid()
    write_runtime_file(tmp_path, os.getpid(), "http://127.0.0.1:2/", "newest")
    write_runtime_file(tmp_path, parent, "http://127.0.0.1:3/", "parent")
    write_runtime_file(tmp_path, 999_999_999, "http://127.0.0.1:4/", "dead")
    connection = discover({}, tmp_path)
    assert connection.token == "parent" and connection.source == f"jpserver-{parent}.json"
    connection = discover({"JPY_PARENT_PID": str(os.getpid())}, tmp_path)
    assert connection.token == "newest"


def test_dead_servers_are_ignored(tmp_path):
    write_runtime_file(tmp_path, 999_999_999, "http://127.0.0.1:4/", "dead")
    with pytest.raises(ServiceNotFound, match="AICLOUD_URL"):
        discover({}, tmp_path)


def test_client_round_trip(live_server):
    connection = Connection(live_server.url, live_server.token, "test")
    with AICloudClient(connection) as client:
        job = client.submit({"command": ["sh", "-c", "echo one; sleep 0.3; echo two"]})
        chunks = list(client.follow_logs(job["id"]))
        assert b"".join(chunks) == b"one\ntwo\n"
        data, next_offset = client.logs(job["id"], offset=4)
        assert data == b"two\n" and next_offset == 8
        assert client.get(job["id"])["status"] in ("running", "succeeded")
        assert client.list(limit=1)["total"] == 1
        with pytest.raises(APIError) as error:
            client.get("job-nope")
        assert error.value.status == 404 and "not found" in error.value.message
        assert client.status()["mode"] == "standalone"
