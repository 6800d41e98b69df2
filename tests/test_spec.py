"""The job spec model, without a server."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aicloud.spec import JobKind, JobSpec, Resources, redacted_env


def test_defaults():
    spec = JobSpec(command=["true"])
    assert spec.kind is JobKind.command
    assert spec.resources.world_size == 1
    assert spec.max_retries == 0 and spec.timeout_seconds is None
    assert spec.entrypoint == "command"


@pytest.mark.parametrize("memory", ["512Mi", "16Gi", "2G", "1.5Ti", "1000"])
def test_memory_quantities(memory):
    assert Resources(memory=memory).memory == memory


@pytest.mark.parametrize("memory", ["0", "65Ti", "16GB", "-1Gi", "Gi"])
def test_bad_memory_quantities(memory):
    with pytest.raises(ValidationError, match="memory"):
        Resources(memory=memory)


def test_notebook_fields_belong_to_the_notebook_kind():
    with pytest.raises(ValidationError, match="kind 'notebook' needs notebook"):
        JobSpec(kind="notebook", command=["true"])
    with pytest.raises(ValidationError, match="parameters are only for notebook jobs"):
        JobSpec(command=["true"], parameters={"a": 1})
    spec = JobSpec(kind="notebook", notebook="report.ipynb", parameters={"days": 7})
    assert spec.entrypoint == "notebook"


def test_args_go_with_scripts_not_commands():
    with pytest.raises(ValidationError, match="args go inside command"):
        JobSpec(command=["python"], args=["x"])
    assert JobSpec(script="train.py", args=["--lr", "0.1"]).args == ["--lr", "0.1"]


def test_redacted_env():
    env = {"WANDB_API_KEY": "k", "DB_PASSWORD": "p", "GH_TOKEN": "t", "EPOCHS": "3"}
    assert redacted_env(env) == {
        "WANDB_API_KEY": "***",
        "DB_PASSWORD": "***",
        "GH_TOKEN": "***",
        "EPOCHS": "3",
    }
