"""``GET /jobs/{id}/log-lines``: a log as numbered lines, by rank and text, fast on 10^6 lines.

One real server for the file. A real 2-rank torch job writes its log (``[rank0]:`` and
``[rank1]:`` prefixes, as torchrun's tee does); a million lines are then appended to that log
file the way the service stores it, and pages of it are timed through the API.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import wait_for

LINES = 1_000_000
BOUND = 1.0  # seconds: a generous bound on a loaded 2-core machine (typically ~0.05-0.2 s)
SOURCE = "import os\nprint('hello from', os.environ['RANK'], '\\x1b[32mgreen\\x1b[0m')\n"


def wait_done(api, job_id: str) -> dict:
    def ended():
        job = api.get(f"jobs/{job_id}").json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(ended, timeout=120, interval=0.2)


@pytest.fixture(scope="module")
def api(module_live_server):
    with module_live_server.api() as client:
        yield client


@pytest.fixture(scope="module")
def ranked_job(api, module_live_server) -> dict:
    """A finished 2-rank torch job whose log then holds 1,000,000 more lines."""
    spec = {
        "kind": "train",
        "framework": "torch",
        "source": SOURCE,
        "resources": {"procs_per_node": 2},
    }
    created = api.post("jobs", json=spec)
    assert created.status_code == 201, created.text
    job = wait_done(api, created.json()["id"])
    assert job["status"] == "succeeded", job
    log = Path(module_live_server.data_dir) / "runs" / job["id"] / "output.log"
    assert log.is_file(), sorted(log.parent.iterdir())
    block = b"".join(
        b"[rank%d]:step %d loss=%.4f \x1b[33mwarn\x1b[0m\n" % (n % 2, n, 1 / (n + 1))
        for n in range(LINES // 10)
    )
    with open(log, "ab") as f:
        for _ in range(10):
            f.write(block)
        f.write(b"[rank1]:needle-in-the-haystack\n")
    return job


def timed(api, job_id: str, **params) -> tuple[dict, float]:
    began = time.perf_counter()
    answer = api.get(f"jobs/{job_id}/log-lines", params=params)
    elapsed = time.perf_counter() - began
    assert answer.status_code == 200, answer.text
    return answer.json(), elapsed


def test_last_page_of_a_million_lines(api, ranked_job):
    page, elapsed = timed(api, ranked_job["id"], start=-1, count=200)
    print(f"\nlast page of {page['total']:,} lines, index built: {elapsed * 1000:.0f} ms")
    assert elapsed < BOUND
    assert page["total"] >= LINES + 1
    assert page["start"] == page["total"] - 200
    assert [line["n"] for line in page["lines"]] == list(range(page["start"], page["total"]))
    assert page["lines"][-1] == {
        "n": page["total"] - 1,
        "rank": 1,
        "text": "needle-in-the-haystack",
    }
    again, elapsed = timed(api, ranked_job["id"], tail=1, count=200)
    print(f"last page again (tail=1): {elapsed * 1000:.0f} ms")
    assert again["lines"] == page["lines"]
    assert elapsed < BOUND


def test_rank_filter_of_a_million_lines(api, ranked_job):
    page, elapsed = timed(api, ranked_job["id"], rank=1, start=0, count=100)
    print(f"\nrank 1, first page: {elapsed * 1000:.0f} ms")
    assert elapsed < BOUND
    assert page["total"] == LINES // 2 + 2  # its hello, half the million, the needle
    assert all(line["rank"] == 1 for line in page["lines"])
    numbers = [line["n"] for line in page["lines"]]
    assert numbers == sorted(numbers)
    middle, elapsed = timed(api, ranked_job["id"], rank=1, start=250_000, count=5)
    print(f"rank 1, a page in the middle (cached view): {elapsed * 1000:.0f} ms")
    assert middle["start"] == 250_000 and len(middle["lines"]) == 5
    assert elapsed < BOUND


def test_search_of_a_million_lines(api, ranked_job):
    page, elapsed = timed(api, ranked_job["id"], q="NEEDLE-in", start=0, count=10)
    print(f"\nsearch, one hit in {LINES:,} lines: {elapsed * 1000:.0f} ms")
    assert elapsed < BOUND
    assert page["total"] == 1
    assert page["lines"][0]["text"] == "needle-in-the-haystack"
    many, elapsed = timed(api, ranked_job["id"], q="step 99999", rank=1, start=0, count=10)
    print(f"search with rank, several hits: {elapsed * 1000:.0f} ms")
    assert elapsed < BOUND
    assert [line["text"].split(" loss")[0] for line in many["lines"]] == ["step 99999"] * 10
    assert many["total"] == 10


def test_the_jobs_own_lines_come_numbered_with_rank_and_ansi(api, ranked_job):
    page, _ = timed(api, ranked_job["id"], start=0, count=50, q="hello from")
    assert page["status"] == "succeeded"
    assert page["total"] == 2
    assert sorted(line["rank"] for line in page["lines"]) == [0, 1]
    for line in page["lines"]:
        assert line["text"].startswith(f"hello from {line['rank']} \x1b[32mgreen")
        assert not line["text"].startswith("[rank")  # the prefix went into "rank"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"count": 5001}, "count"),
        ({"count": 0}, "count"),
        ({"start": -2}, "start"),
        ({"start": "x"}, "start"),
        ({"rank": "-1"}, "rank"),
        ({"q": ""}, "q"),
        ({"q": "x" * 1001}, "q"),
        ({"tail": "maybe"}, "tail"),
    ],
)
def test_bad_parameters_are_named(api, ranked_job, params, field):
    answer = api.get(f"jobs/{ranked_job['id']}/log-lines", params=params)
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"].startswith(f"{field}:")


def test_a_rank_the_job_does_not_have_and_an_unknown_job_are_404(api, ranked_job):
    assert api.get(f"jobs/{ranked_job['id']}/log-lines", params={"rank": 2}).status_code == 404
    assert api.get("jobs/job-000000000000/log-lines").status_code == 404


def test_a_log_replaced_by_a_symlink_is_refused(api, module_live_server):
    created = api.post("jobs", json={"command": ["true"]}).json()
    wait_done(api, created["id"])
    run_dir = Path(module_live_server.data_dir) / "runs" / created["id"]
    (run_dir / "output.log").unlink(missing_ok=True)
    (run_dir / "output.log").symlink_to("/etc/passwd")
    answer = api.get(f"jobs/{created['id']}/log-lines")
    assert answer.status_code == 403, answer.text
    assert "root:" not in answer.text


def test_the_index_follows_a_growing_log_and_an_unended_last_line(api, module_live_server):
    created = api.post("jobs", json={"command": ["true"]}).json()
    wait_done(api, created["id"])
    log = Path(module_live_server.data_dir) / "runs" / created["id"] / "output.log"

    def lines(**params) -> dict:
        answer = api.get(f"jobs/{created['id']}/log-lines", params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    log.write_bytes(b"one\ntwo\n")
    assert [line["text"] for line in lines()["lines"]] == ["one", "two"]
    with open(log, "ab") as f:
        f.write(b"thr")  # a line still being written shows as the last one
    page = lines(tail=1, count=2)
    assert (page["total"], [line["text"] for line in page["lines"]]) == (3, ["two", "thr"])
    with open(log, "ab") as f:
        f.write(b"ee\nfour TWO\n")
    assert [line["text"] for line in lines()["lines"]] == ["one", "two", "three", "four TWO"]
    found = lines(q="two")
    assert [(line["n"], line["text"]) for line in found["lines"]] == [(1, "two"), (3, "four TWO")]
    assert lines(rank=0)["total"] == 4  # a command job's lines are all rank 0's
    log.write_bytes(b"replaced\n")  # shorter: indexed anew
    assert [line["text"] for line in lines()["lines"]] == ["replaced"]
