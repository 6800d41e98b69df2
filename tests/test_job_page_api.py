"""The job page's REST views on one real server: the job model's new fields, runs compared,
the machine's use, a serve job's statistics reduced from real Prometheus text.

Three real notebook runs with different parameters report a loss (``aicloud.runtime.report``)
and are compared by ids, by tag and by their schedule.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from aicloud.scheduler import run_name
from aicloud.serving import histogram_quantile, reduce_metrics
from aicloud.store import Schedule
from tests.conftest import wait_for
from tests.notebook_files import write_report

TERMINAL = ("succeeded", "failed", "cancelled")
BODY = (
    "from aicloud.runtime import report\n"
    "for step in range(1, 4):\n"
    "    report(step=step, total=3, loss=rate / step, days=days)"
)


def wait_done(api, job_id: str) -> dict:
    def ended():
        job = api.get(f"jobs/{job_id}").json()
        return job if job["status"] in TERMINAL else None

    return wait_for(ended, timeout=120, interval=0.2)


@pytest.fixture(scope="module")
def api(module_live_server):
    with module_live_server.api() as client:
        yield client


@pytest.fixture(scope="module")
def notebook_runs(api, module_live_server) -> list[dict]:
    """Three notebook runs of one notebook, each with its own rate; tagged ``sweep-a``."""
    write_report(module_live_server.root_dir, "train.ipynb", body=BODY)
    created = []
    for rate in (0.5, 0.25, 0.125):
        spec = {
            "kind": "notebook",
            "notebook": "train.ipynb",
            "parameters": {"rate": rate, "days": 3},
            "tags": ["sweep-a"],
            "origin": {"notebook": "work/launcher.ipynb", "cell_id": "c1"},
        }
        answer = api.post("jobs", json=spec)
        assert answer.status_code == 201, answer.text
        created.append(answer.json())
    runs = [wait_done(api, job["id"]) for job in created]
    assert [run["status"] for run in runs] == ["succeeded"] * 3, runs
    return runs


def test_notebook_runs_show_parameters_duration_and_origin(api, notebook_runs):
    listed = {job["id"]: job for job in api.get("jobs", params={"tag": "sweep-a"}).json()["jobs"]}
    for run in notebook_runs:
        job = listed[run["id"]]
        assert job["parameters"] == run["spec"]["parameters"]
        assert job["origin"] == "work/launcher.ipynb"
        assert job["endpoint"] is None
        started = datetime.fromisoformat(job["started_at"].replace("Z", "+00:00"))
        finished = datetime.fromisoformat(job["finished_at"].replace("Z", "+00:00"))
        assert job["duration_seconds"] == pytest.approx((finished - started).total_seconds(), 0.01)


def test_a_running_jobs_duration_is_live_and_a_command_has_no_parameters(api):
    job = api.post("jobs", json={"command": ["sleep", "30"]}).json()
    assert job["duration_seconds"] is None and job["parameters"] == {}  # not started yet
    running = wait_for(
        lambda: (j := api.get(f"jobs/{job['id']}").json())["status"] == "running" and j
    )
    first = running["duration_seconds"]
    later = wait_for(
        lambda: (d := api.get(f"jobs/{job['id']}").json()["duration_seconds"]) > first + 0.3 and d
    )
    assert later > first >= 0
    api.post(f"jobs/{job['id']}/cancel")


def test_compare_by_ids_tag_and_schedule(api, notebook_runs):
    ids = ",".join(run["id"] for run in notebook_runs)
    table = api.get("jobs/compare", params={"ids": ids}).json()
    assert [row["id"] for row in table["runs"]] == [run["id"] for run in notebook_runs]
    assert table["parameters"] == ["rate"]  # days is the same in all three
    assert table["metrics"] == ["days", "loss"]
    losses = [row["final_metrics"]["loss"] for row in table["runs"]]
    assert losses == pytest.approx([0.5 / 3, 0.25 / 3, 0.125 / 3])
    for row in table["runs"]:
        assert row["status"] == "succeeded" and row["duration_seconds"] > 0
        assert set(row) == {
            "id",
            "name",
            "status",
            "parameters",
            "duration_seconds",
            "final_metrics",
            "created_at",
        }
    by_tag = api.get("jobs/compare", params={"tag": "sweep-a"}).json()
    assert by_tag == table


def test_compare_by_schedule_and_runs_named_by_their_tick(api, module_live_server):
    schedule = api.post(
        "schedules",
        json={
            "name": "nightly",
            "cron": "0 3 * * *",
            "timezone": "Europe/Paris",
            "job": {"kind": "notebook", "notebook": "train.ipynb", "parameters": {"rate": 1.0}},
        },
    )
    assert schedule.status_code == 201, schedule.text
    schedule_id = schedule.json()["id"]
    runs = []
    for rate in (1.0, 2.0):
        answer = api.post(f"schedules/{schedule_id}/run", json={"parameters": {"rate": rate}})
        assert answer.status_code == 201, answer.text
        runs.append(answer.json())
        assert answer.json()["name"].startswith("nightly @ 20")
    for run in runs:
        wait_done(api, run["id"])
    table = api.get("jobs/compare", params={"schedule_id": schedule_id}).json()
    assert [row["id"] for row in table["runs"]] == [run["id"] for run in runs]
    assert table["parameters"] == ["rate"]
    assert [row["final_metrics"]["loss"] for row in table["runs"]] == pytest.approx([1 / 3, 2 / 3])
    assert api.get("jobs/compare", params={"schedule_id": "sched-nope"}).status_code == 404


def test_a_tick_names_its_run_in_the_schedules_timezone():
    schedule = Schedule(id="s1", name="nightly", timezone="Europe/Paris", spec={})
    tick = datetime(2026, 12, 7, 2, 0, tzinfo=timezone.utc)
    assert run_name(schedule, tick) == "nightly @ 2026-12-07 03:00"
    unnamed = Schedule(id="s2", name=None, timezone="UTC", spec={"name": "job"})
    assert run_name(unnamed, tick) == "job @ 2026-12-07 02:00"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "ids"),
        ({"ids": "a", "tag": "b"}, "ids"),
        ({"ids": ","}, "ids"),
        ({"ids": "job-a,job-a"}, "ids"),
        ({"ids": ",".join(f"job-{n}" for n in range(51))}, "ids"),
        ({"tag": "x" * 64}, "tag"),
    ],
)
def test_compare_refuses_a_bad_selection_naming_it(api, params, field):
    answer = api.get("jobs/compare", params=params)
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"].startswith(f"{field}:")


def test_compare_names_an_unknown_id(api, notebook_runs):
    answer = api.get("jobs/compare", params={"ids": f"{notebook_runs[0]['id']},job-0123456789ab"})
    assert answer.status_code == 404
    assert "job-0123456789ab" in answer.json()["message"]


def test_machine_usage_agrees_with_resources(api):
    resources = api.get("resources").json()
    status = api.get("status").json()
    job = api.post("jobs", json={"command": ["sleep", "30"]}).json()
    wait_for(lambda: api.get(f"jobs/{job['id']}").json()["status"] == "running")
    usage = api.get("resources/usage").json()
    api.post(f"jobs/{job['id']}/cancel")
    assert usage["cores"] == resources["cpu"]["cores"]
    assert usage["memory_total_bytes"] == resources["memory"]["total_bytes"]
    assert 0 < usage["memory_used_bytes"] < usage["memory_total_bytes"]
    assert 0 <= usage["cpu_percent"] <= 100 * usage["cores"]
    assert [g["index"] for g in usage["gpus"]] == [g["index"] for g in resources["gpus"]]
    (row,) = usage["users"]
    assert row["user"] == status["user"] and row["gpu_quota"] is None
    assert row["jobs_running"] >= 1
    assert row["gpus_in_use"] <= len(usage["gpus"])  # leases of GPUs that exist, none here


def test_serving_of_a_job_that_does_not_serve_is_409(api, notebook_runs):
    answer = api.get(f"jobs/{notebook_runs[0]['id']}/serving")
    assert answer.status_code == 409
    assert notebook_runs[0]["id"] in answer.json()["message"]


def test_serving_stats_from_a_real_prometheus_exposition():
    registry = CollectorRegistry()
    requests = Counter("aicloud_inference_requests", "r", ["model", "code"], registry=registry)
    duration = Histogram(
        "aicloud_inference_request_duration_seconds",
        "d",
        buckets=(0.01, 0.05, 0.1, 0.5),
        registry=registry,
    )
    batch = Histogram("aicloud_inference_batch_size", "b", buckets=(1, 2, 4, 8), registry=registry)
    Gauge("aicloud_inference_queue_depth", "q", registry=registry).set(3)
    requests.labels("m", "200").inc(98)
    requests.labels("m", "500").inc(2)
    for _ in range(90):
        duration.observe(0.02)  # in (0.01, 0.05]
    for _ in range(10):
        duration.observe(0.3)  # in (0.1, 0.5]
    for size in (1, 1, 3, 8, 20):
        batch.observe(size)
    stats = reduce_metrics(generate_latest(registry).decode())
    assert (stats["requests"], stats["errors"], stats["queue_depth"]) == (100, 2, 3)
    # Prometheus' histogram_quantile: p50 is rank 50 of 90 in (0.01, 0.05]; p99 rank 99 of
    # the 10 in (0.1, 0.5].
    assert stats["latency_ms"]["p50"] == pytest.approx((0.01 + 0.04 * 50 / 90) * 1000)
    assert stats["latency_ms"]["p99"] == pytest.approx((0.1 + 0.4 * 9 / 10) * 1000)
    assert stats["batch_sizes"] == [  # cumulative, as Prometheus keeps them
        {"le": 1.0, "count": 2.0},
        {"le": 2.0, "count": 2.0},
        {"le": 4.0, "count": 3.0},
        {"le": 8.0, "count": 4.0},
        {"le": "+Inf", "count": 5.0},
    ]
    assert histogram_quantile(0.5, []) is None
    assert histogram_quantile(0.99, [(1.0, 0.0), (float("inf"), 5.0)]) == 1.0


def test_a_serve_jobs_endpoint_and_statistics_from_its_metrics(api, module_live_server):
    """A real serve job (TorchScript TinyNet): its endpoint in the job model, and its request
    count, latency and batch sizes read from the model server's /metrics with its token."""
    from aicloud.client import AICloudClient, Connection
    from aicloud.inference import api as inference
    from tests.inference_models import rows, save_torch_models

    options = save_torch_models(module_live_server.root_dir)["torchscript"]
    spec = {"kind": "serve", "name": "churn", "inference": options}
    created = api.post("jobs", json=spec)
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    try:

        def serving():
            job = api.get(f"jobs/{job_id}").json()
            assert job["status"] not in TERMINAL, job
            return job if job["endpoint"] else None

        job = wait_for(serving, timeout=120, interval=0.3)
        endpoint = job["endpoint"]
        assert endpoint["model"] == "churn"
        assert endpoint["infer_url"] == f"{endpoint['url']}/v2/models/churn/infer"
        connection = Connection(module_live_server.url, module_live_server.token, "test")
        with AICloudClient(connection) as client:
            for n in (1, 3, 5):
                inference.predict(job_id, rows(n), client=client)
        stats = api.get(f"jobs/{job_id}/serving")
        assert stats.status_code == 200, stats.text
        stats = stats.json()
        assert stats["endpoint"] == endpoint
        assert (stats["requests"], stats["errors"]) == (3, 0)
        assert 0 < stats["latency_ms"]["p50"] <= stats["latency_ms"]["p99"]
        assert stats["batch_sizes"][-1]["le"] == "+Inf" and stats["batch_sizes"][-1]["count"] >= 1
        assert stats["queue_depth"] == 0
    finally:
        api.post(f"jobs/{job_id}/cancel")
