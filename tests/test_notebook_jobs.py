"""Notebook jobs: papermill runs with typed parameters, outputs, progress, failures."""

from __future__ import annotations

import json

import nbformat
import pytest

from tests.helpers import api, job_log, submit, wait_job
from tests.notebook_files import write_report


@pytest.fixture
def report(jp_root_dir):
    write_report(jp_root_dir)
    return "report.ipynb"


async def test_parameter_discovery(jp_fetch, report):
    status, found = await api(jp_fetch, "GET", "notebooks", "parameters", path=report)
    assert status == 200 and found["kernel"] == "python3"
    assert [(p["name"], p["type"], p["default"]) for p in found["parameters"]] == [
        ("region", "str", "eu"),
        ("days", "int", 7),
        ("rate", "float", 0.5),
        ("flags", "list", [1, 2]),
        ("verbose", "bool", False),
    ]
    assert found["parameters"][2]["help"] == "growth per day"


async def test_notebook_job_with_typed_parameters(jp_fetch, report):
    job = await submit(
        jp_fetch,
        {
            "kind": "notebook",
            "notebook": report,
            "parameters": {"region": "us", "days": 3, "rate": 1, "flags": [], "verbose": True},
        },
    )
    job = await wait_job(jp_fetch, job["id"], timeout=120)
    log = await job_log(jp_fetch, job["id"])
    assert job["status"] == "succeeded", log
    assert "region us days 3 int rate 1" in log and "flags [] verbose True" in log

    _, outputs = await api(jp_fetch, "GET", "jobs", job["id"], "outputs")
    assert sorted(o["name"] for o in outputs["outputs"]) == ["report.html", "report.ipynb"]
    response = await jp_fetch("aicloud", "api", "v1", "jobs", job["id"], "outputs", "report.ipynb")
    assert response.headers["Content-Disposition"] == 'attachment; filename="report.ipynb"'
    executed = nbformat.reads(response.body.decode(), as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and 'region = "us"' in injected[0].source
    html = await jp_fetch("aicloud", "api", "v1", "jobs", job["id"], "outputs", "report.html")
    assert b"region us days 3" in html.body

    _, metrics = await api(jp_fetch, "GET", "jobs", job["id"], "metrics")
    assert metrics["progress"] == {"step": 5, "total": 5, "fraction": 1.0}  # 4 cells + injected


async def test_notebook_without_a_language_takes_its_kernels(jp_fetch, jp_root_dir):
    """A notebook written by a tool may carry neither ``language_info`` nor a kernelspec
    language; papermill then needs the language of the kernel the job names."""
    cells = [
        nbformat.v4.new_code_cell("n = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print('n is', n)"),
    ]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), jp_root_dir / "bare.ipynb")
    spec = {"kind": "notebook", "notebook": "bare.ipynb", "kernel": "python3"}
    job = await submit(jp_fetch, {**spec, "parameters": {"n": 5}})
    job = await wait_job(jp_fetch, job["id"], timeout=120)
    log = await job_log(jp_fetch, job["id"])
    assert job["status"] == "succeeded", log
    assert "n is 5" in log


async def test_jobs_launched_by_a_notebook_job_record_its_notebook_and_cell(jp_fetch, jp_root_dir):
    """nbclient sends no cell ids; the runner tells the kernel which notebook and cell run."""
    cells = [
        nbformat.v4.new_code_cell("%load_ext aicloud"),
        nbformat.v4.new_code_cell("%aicloud submit --name from-notebook -- true"),
    ]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    (jp_root_dir / "sub").mkdir()
    nbformat.write(notebook, jp_root_dir / "sub" / "launcher.ipynb")
    job = await submit(jp_fetch, {"kind": "notebook", "notebook": "sub/launcher.ipynb"})
    job = await wait_job(jp_fetch, job["id"], timeout=120)
    assert job["status"] == "succeeded", await job_log(jp_fetch, job["id"])
    _, page = await api(jp_fetch, "GET", "jobs", notebook="sub/launcher.ipynb")
    (launched,) = page["jobs"]
    assert launched["name"] == "from-notebook"
    assert launched["spec"]["origin"] == {"notebook": "sub/launcher.ipynb", "cell_id": cells[1].id}


async def test_failing_cell_is_named_and_kept(jp_fetch, report):
    job = await submit(
        jp_fetch, {"kind": "notebook", "notebook": report, "parameters": {"region": "boom"}}
    )
    job = await wait_job(jp_fetch, job["id"], timeout=120)
    assert job["status"] == "failed" and job["reason_code"] == "user_error"
    assert job["reason"] == "cell 4 raised ValueError: bad region"
    response = await jp_fetch("aicloud", "api", "v1", "jobs", job["id"], "outputs", "report.ipynb")
    executed = nbformat.reads(response.body.decode(), as_version=4)
    assert any("papermill-error-cell-tag" in c.metadata.get("tags", []) for c in executed.cells)


async def test_outputs_cannot_escape_the_run(jp_fetch, report):
    job = await submit(jp_fetch, {"command": ["true"]})
    await wait_job(jp_fetch, job["id"])
    for name in ("..%2F..%2Faicloud.db", ".hidden", "nope.ipynb"):
        status, error = await api(jp_fetch, "GET", "jobs", job["id"], "outputs", name)
        assert status in (400, 404), (name, status)


BAD_NOTEBOOK_JOBS = [
    ({"notebook": "missing.ipynb"}, 400, "notebook: 'missing.ipynb' not found"),
    ({"notebook": "../outside.ipynb"}, 400, "notebook: must stay inside"),
    ({"notebook": "notes.txt"}, 400, "notebook: 'notes.txt' is not a notebook"),
    ({"notebook": "broken.ipynb"}, 400, "notebook: 'broken.ipynb' is not a readable notebook"),
    ({"parameters": {"colour": "red"}}, 400, "unknown parameter 'colour'; known: region (str)"),
    ({"parameters": {"days": "7"}}, 400, "parameters.days: expected int, got str"),
    ({"parameters": {"days": 7.5}}, 400, "parameters.days: expected int, got float"),
    ({"parameters": {"verbose": 1}}, 400, "parameters.verbose: expected bool, got int"),
    ({"kernel": "no-such-kernel"}, 400, "kernel: no kernel named 'no-such-kernel'"),
    ({"parameters": {"region": "x" * (2 * 2**20)}}, 413, "larger than"),
    ({"resources": {"procs_per_node": 2}}, 400, "resources: a notebook job runs in one kernel"),
]


@pytest.mark.parametrize("change,status,text", BAD_NOTEBOOK_JOBS)
async def test_bad_notebook_jobs(jp_fetch, jp_root_dir, report, change, status, text):
    (jp_root_dir / "notes.txt").write_text("not a notebook")
    (jp_root_dir / "broken.ipynb").write_text("{ this is not json")
    (jp_root_dir.parent / "outside.ipynb").write_text("{}")
    code, error = await api(
        jp_fetch, "POST", "jobs", body={"kind": "notebook", "notebook": report, **change}
    )
    assert code == status and text in error["message"], error
    _, page = await api(jp_fetch, "GET", "jobs")
    assert page["total"] == 0


@pytest.mark.parametrize(
    "path,status,text",
    [
        ("missing.ipynb", 404, "path: 'missing.ipynb' not found"),
        ("../x.ipynb", 400, "path: must stay inside"),
        ("", 400, "path: required"),
    ],
)
async def test_bad_parameter_discovery(jp_fetch, path, status, text):
    code, error = await api(jp_fetch, "GET", "notebooks", "parameters", path=path)
    assert code == status and text in error["message"], error


def test_parameters_json_round_trip():
    from aicloud.notebooks import coerce_cli_value

    assert coerce_cli_value("7", "int") == 7
    assert coerce_cli_value("eu", "str") == "eu"
    assert coerce_cli_value("true", "bool") is True
    assert coerce_cli_value("[1, 2]", "list") == [1, 2]
    assert coerce_cli_value('{"a": 1}', "dict") == {"a": 1}
    assert json.dumps(coerce_cli_value("0.5", "float")) == "0.5"
    with pytest.raises(ValueError):
        coerce_cli_value("seven", "int")
