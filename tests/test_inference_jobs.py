"""Serve and infer jobs through a real aicloud server and the real ``aicloud`` CLI: endpoints,
predictions, batch outputs equal to in-process output, retries that skip finished shards."""

from __future__ import annotations

import json
import signal

import httpx
import numpy as np
import psutil
import pytest

from aicloud.client import AICloudClient, Connection
from aicloud.inference import api
from tests.conftest import run_cli, wait_for
from tests.inference_models import (
    cancel_active_jobs,
    rows,
    save_torch_models,
    tiny_net,
    torch_outputs,
)


@pytest.fixture
def server(live_server):
    save_torch_models(live_server.root_dir)
    yield live_server
    cancel_active_jobs(live_server)  # also after a failure: a serve job runs until cancelled


def client_of(server) -> AICloudClient:
    return AICloudClient(Connection(server.url, server.token, "test"))


def test_help_of_each_command():
    for command in ("serve", "predict", "infer"):
        r = run_cli(command, "--help", env={})
        assert r.returncode == 0 and f"usage: aicloud {command}" in r.stdout


def test_serve_job_endpoint_predict_and_cancel(server):
    root = server.root_dir
    r = run_cli(
        "serve", "tiny.pt", "--name", "churn", "--input-shape", "4", "--json",
        env=server.env, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout)
    assert found["model"] == "churn" and found["url"].startswith("http://127.0.0.1:")
    with server.api() as http:
        job = http.get(f"jobs/{found['job_id']}").json()
        assert job["kind"] == "serve" and job["status"] == "running"
        endpoint = http.get(f"jobs/{job['id']}/outputs/endpoint.json").json()
        assert endpoint["url"] == found["url"]
        assert endpoint["infer_url"] == f"{found['url']}/v2/models/churn/infer"

    x = rows(5)
    np.save(root / "x.npy", x)
    r = run_cli("predict", "churn", str(root / "x.npy"), "--json", env=server.env)
    assert r.returncode == 0, r.stderr
    expected = torch_outputs(tiny_net(root), x)
    assert np.array_equal(np.asarray(json.loads(r.stdout), dtype=np.float32), expected)
    with client_of(server) as client:
        assert np.array_equal(api.predict("churn", x, client=client), expected)
        assert np.array_equal(api.predict(job["id"], x, client=client), expected)
    url = f"{found['url']}/v2/models/churn"
    with client_of(server) as client:  # the model server wants the caller's token
        assert np.array_equal(api.predict(url, x, client=client), expected)

    r = run_cli("predict", "churn", "[[1, 2, 3]]", env=server.env)
    assert r.returncode == 1 and "the model takes [-1, 4], got [1, 3]" in r.stderr
    r = run_cli("predict", "nobody", "[[1, 2, 3, 4]]", env=server.env)
    assert r.returncode == 1 and "no running serve job with id or name 'nobody'" in r.stderr

    logs = run_cli("logs", job["id"], env=server.env).stdout
    assert "serving model 'churn' at http://127.0.0.1:" in logs
    r = run_cli("cancel", job["id"], env=server.env)
    assert r.returncode == 0 and "cancelled" in r.stdout
    with pytest.raises(httpx.TransportError):
        httpx.get(found["url"] + "/v2/health/live", timeout=5)


def test_infer_job_outputs_equal_in_process_output(server):
    root = server.root_dir
    (root / "parts").mkdir()
    parts = [rows(70, seed=1), rows(33, seed=2)]
    for i, part in enumerate(parts):
        np.save(root / "parts" / f"p{i}.npy", part)
    extra = rows(40, seed=3)
    lines = ["a,b,c,d"] + [",".join(repr(float(v)) for v in row) for row in extra]
    (root / "more.csv").write_text("\n".join(lines) + "\n")
    r = run_cli(
        "infer", "tiny.pt", "--data", "parts/*.npy", "--data", "more.csv", "--procs", "2",
        "--shard-rows", "32", "--batch-size", "16", "--name", "score", "--wait", "--json",
        env=server.env, timeout=180,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    job = json.loads(r.stdout)
    assert job["status"] == "succeeded", job
    with client_of(server) as client:
        predictions = api.predictions(job["id"], client=client)
        metrics = client.metrics(job["id"])
    model = tiny_net(root)
    # Shards start at each file's first row and hold whole batches of 16: the same model calls.
    expected = np.concatenate([torch_outputs(model, x, 16) for x in (*parts, extra)])
    assert predictions.dtype == np.float32 and np.array_equal(predictions, expected)
    shards = 3 + 2 + 2
    assert metrics["latest"]["total"] == shards and metrics["latest"]["step"] == shards
    log = run_cli("logs", job["id"], env=server.env).stdout
    assert "[rank0]:" in log and "[rank1]:" in log and f"merged {shards} shards" in log


def worker_process(job_id: str, rank: int) -> psutil.Process | None:
    for process in psutil.process_iter(["cmdline"]):
        try:
            if "aicloud.inference.runner" not in " ".join(process.info["cmdline"] or []):
                continue
            env = process.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if env.get("AICLOUD_JOB_ID") == job_id and env.get("RANK") == str(rank):
            return process
    return None


def test_killed_worker_shard_is_redone_on_retry(server):
    root = server.root_dir
    x = rows(80, seed=4)
    np.save(root / "big.npy", x)
    spec = {
        "kind": "infer",
        "framework": "torch",
        "name": "retry-me",
        "max_retries": 1,
        "resources": {"procs_per_node": 2},
        "inference": {
            "model": "tiny_state.pt",
            "model_class": "tiny_model:TinyNet",
            "model_kwargs": {"delay": 0.4},
            "data": ["big.npy"],
            "shard_rows": 10,
            "batch_size": 10,
        },
    }
    with client_of(server) as client:
        job = client.submit(spec)
        shards_dir = server.data_dir / "runs" / job["id"] / "inference" / "shards"
        wait_for(lambda: len(list(shards_dir.glob("shard-*.npy"))) >= 2, timeout=120)
        victim = wait_for(lambda: worker_process(job["id"], 1), timeout=30)
        victim.send_signal(signal.SIGKILL)
        wait_for(lambda: client.get(job["id"])["attempt_count"] == 2, timeout=60)
        done_before = {p.name: p.stat().st_mtime_ns for p in shards_dir.glob("shard-*.npy")}
        job = client.wait(job["id"])
        predictions = api.predictions(job["id"], client=client)
    assert job["status"] == "succeeded", job
    first, second = job["attempts"]
    assert first["reason_code"] == "infrastructure" and second["reason_code"] == "succeeded"
    after = {p.name: p.stat().st_mtime_ns for p in shards_dir.glob("shard-*.npy")}
    assert len(after) == 8 and 2 <= len(done_before) < 8
    assert all(after[name] == mtime for name, mtime in done_before.items())  # not redone
    log = run_cli("logs", job["id"], env=server.env).stdout
    attempt_two = log.split("[aicloud] attempt 2")[1]
    assert "already done" in attempt_two
    redone = [
        line
        for line in attempt_two.splitlines()
        if line.startswith("[rank") and " done in " in line
    ]
    assert len(redone) == 8 - len(done_before)
    model = tiny_net(root)
    assert np.array_equal(predictions, torch_outputs(model, x, 10))


BAD_JOBS = [
    (
        {"kind": "serve", "inference": {"model": "missing.pt"}},
        "inference.model: 'missing.pt' not found",
    ),
    ({"kind": "serve", "inference": {"model": "../outside.pt"}}, "outside the server's root"),
    (
        {"kind": "serve", "framework": "tensorflow", "inference": {"model": "tiny.pt"}},
        "inference.format: torchscript is a torch format; framework is tensorflow",
    ),
    (
        {"kind": "serve", "resources": {"procs_per_node": 2}, "inference": {"model": "tiny.pt"}},
        "resources: a serve job runs one server process",
    ),
    (
        {"kind": "infer", "inference": {"model": "tiny.pt", "data": ["nothing-*.npy"]}},
        "inference.data[0]: 'nothing-*.npy' matches no file",
    ),
    (
        {"kind": "infer", "inference": {"model": "tiny.pt", "data": ["tiny.pt"]}},
        "inference.data[0]: tiny.pt: unsupported file type",
    ),
    (
        {"kind": "infer", "inference": {"model": "tiny.pt", "data": ["s3://bucket/x.npy"]}},
        "remote URLs are not supported yet",
    ),
]


def test_bad_jobs_are_400_naming_the_field(server):
    with server.api() as http:
        for spec, message in BAD_JOBS:
            r = http.post("jobs", json=spec)
            assert r.status_code == 400, (spec, r.text)
            assert message in r.json()["message"], r.json()["message"]
        assert http.get("jobs").json()["total"] == 0
