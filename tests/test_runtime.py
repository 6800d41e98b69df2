"""aicloud.runtime outside and inside a job: harmless defaults, TF_CONFIG, metrics lines."""

from __future__ import annotations

import json

import pytest

from aicloud import runtime

JOB_VARIABLES = [
    "AICLOUD_RUN_DIR",
    "AICLOUD_CHECKPOINT_DIR",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "TF_CONFIG",
    "TORCHELASTIC_RESTART_COUNT",
    "AICLOUD_ATTEMPT",
]


@pytest.fixture
def outside(monkeypatch, tmp_path):
    for name in JOB_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_outside_aicloud_everything_is_harmless(outside):
    assert (runtime.rank(), runtime.local_rank(), runtime.world_size()) == (0, 0, 1)
    assert runtime.is_chief() and runtime.restart_count() == 0 and runtime.run_dir() is None
    runtime.report(step=1, total=10, loss=0.5)  # nothing to write to, and no error
    assert list(outside.iterdir()) == []
    assert runtime.checkpoint_dir().resolve() == (outside / "checkpoints").resolve()


def test_tensorflow_ranks_from_tf_config(outside, monkeypatch):
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]}
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 2}})
    )
    assert (runtime.rank(), runtime.world_size(), runtime.is_chief()) == (2, 3, False)


def test_report_inside_a_job(outside, monkeypatch):
    monkeypatch.setenv("AICLOUD_RUN_DIR", str(outside))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "2")
    runtime.report(step=3, total=4, loss=0.25)
    monkeypatch.setenv("RANK", "1")
    runtime.report(step=3, total=4, loss=0.5)  # not the chief: not recorded
    runtime.report(step=3, total=4, loss=0.5, all_ranks=True)
    lines = [json.loads(line) for line in (outside / "metrics.jsonl").read_text().splitlines()]
    assert [(p["rank"], p["step"], p["total"], p["loss"], p["restart"]) for p in lines] == [
        (0, 3, 4, 0.25, 2),
        (1, 3, 4, 0.5, 2),
    ]
