"""Runs side by side, "Run as job" with parameters and the live Resources tab, in a real lab.

One ``jupyter lab`` (under an awkward base URL) and one chromium page for the module, and one
notebook with a ``parameters`` cell that reports a loss per step. Three notebook jobs with
different papermill parameters, submitted through the REST API, are compared in the main
area: three rows with their values (the differing one highlighted) and final metrics, and
three overlaid curves; a schedule's runs are compared from its row. The "Run as job" dialog
refuses a bad value naming the field, and the job it submits runs with the values typed.
Screenshots go to ``tests/artifacts/``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from playwright.sync_api import Page, expect

from tests.conftest import wait_for
from tests.lab_helpers import SIDEBAR, Lab, browser_page, open_sidebar, running_lab, screenshot

BASE_URL = "/a%40b/"
PARAMETERS = 'lr = 0.1  # learning rate\nepochs: int = 3\nlabel = "base"'
TRAIN = (
    "from aicloud import runtime\n"
    "for step in range(1, epochs + 1):\n"
    "    runtime.report(step=step, loss=lr * 10 / step)\n"
    "print(label, lr, epochs)\n"
)
LRS = (0.1, 0.2, 0.4)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    with running_lab(tmp_path_factory.mktemp("compare"), base_url=BASE_URL) as lab:
        cells = [new_code_cell(PARAMETERS), new_code_cell(TRAIN)]
        cells[0].metadata["tags"] = ["parameters"]
        notebook = new_notebook(cells=cells)
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
        notebook.metadata["language_info"] = {"name": "python"}
        nbformat.write(notebook, lab.root / "train.ipynb")
        yield lab


@pytest.fixture
def jp_asyncio_loop():
    """A loop of its own: pytest-jupyter's would be Playwright's, running for the module."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def jp_server_cleanup():
    """No pytest-jupyter server to clean up: the lab is a process of its own."""
    yield


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    with browser_page() as page:
        yield page


def finished(lab: Lab, job_id: str) -> dict:
    def done():
        job = lab.api.get(f"jobs/{job_id}").json()
        return job if job["status"] in {"succeeded", "failed", "cancelled"} else None

    job = wait_for(done, timeout=180, interval=0.3)
    assert job["status"] == "succeeded", (job, lab.api.get(f"jobs/{job_id}/logs").text)
    return job


def test_three_notebook_runs_side_by_side(lab, page):
    jobs = []
    for lr in LRS:
        answer = lab.api.post(
            "jobs",
            json={
                "kind": "notebook",
                "notebook": "train.ipynb",
                "name": "train",
                "parameters": {"lr": lr},
                "tags": ["lr-sweep"],
            },
        )
        assert answer.status_code == 201, answer.text
        jobs.append(answer.json())
    for job in jobs:
        finished(lab, job["id"])

    open_sidebar(page, lab)
    # The list shows each notebook run's parameters and how long it ran.
    for job, lr in zip(jobs, LRS, strict=True):
        row = page.locator(SIDEBAR).locator(f'li[data-job-id="{job["id"]}"]')
        expect(row.locator(".aicloud-job-parameters")).to_have_text(f"lr={lr}")
        expect(row.locator(".aicloud-job-duration")).to_have_text(re.compile(r"^\d+s$"))
    page.locator(SIDEBAR).get_by_role("button", name="Compare runs…").click()
    select = page.get_by_role("form", name="Select runs")
    select.get_by_label("Select runs by").select_option("tag")
    select.get_by_label("Tag").fill("lr-sweep")
    select.get_by_role("button", name="Compare").click()

    table = page.get_by_role("table", name="Runs side by side")
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator(".lm-DockPanel-tabBar .lm-mod-current")).to_contain_text(
        "Compare: tag lr-sweep"
    )
    expect(page.locator(".aicloud-compare-summary")).to_have_text(
        "3 runs · parameters that differ: lr"
    )
    for row, job, lr in zip(rows.all(), jobs, LRS, strict=True):
        expect(row).to_have_attribute("data-job-id", job["id"])
        expect(row.locator('td[data-param="lr"]')).to_have_text(str(lr))
        expect(row.locator('td[data-param="lr"]')).to_have_class("aicloud-compare-differs")
        # the final loss is lr * 10 / epochs (3 epochs, the notebook's default)
        expect(row.locator('td[data-metric="loss"]')).to_have_text(f"{lr * 10 / 3:.4g}")
        expect(row.locator(".aicloud-status")).to_have_text("succeeded")
        assert row.locator("td[data-duration]").get_attribute("data-duration") != ""
    # a parameter no run changed is shown, not highlighted
    expect(table.locator('thead th[data-param="lr"]')).to_have_class("aicloud-compare-differs")

    page.get_by_label("Metric to overlay").select_option("loss")
    chart = page.locator('[data-chart="overlay loss"]')
    expect(chart).to_have_attribute("data-points", "3")  # steps 1..3, shared by the runs
    legend = chart.locator(".u-legend .u-series")
    expect(legend).to_have_count(4)  # the x axis and one curve per run
    for lr in LRS:
        expect(chart.locator(".u-legend")).to_contain_text(f"train (lr={lr})")
    page.get_by_label("Log scale").check()
    expect(chart).to_have_attribute("data-scale", "log")
    screenshot(page, "compare_three_runs")

    # A run's name opens its job page.
    rows.first.get_by_role("button", name="train").click()
    first = page.locator(f'.aicloud-job-page[data-job-id="{jobs[0]["id"]}"]')
    expect(first).to_be_visible(timeout=30_000)

    # An id nobody can see is refused, naming it.
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Compare").click()
    select.get_by_label("Select runs by").select_option("ids")
    select.get_by_label("Job ids").fill(f"{jobs[0]['id']}, no-such-job")
    select.get_by_role("button", name="Compare").click()
    expect(page.locator(".aicloud-compare").get_by_role("alert")).to_contain_text("no-such-job")


def test_runs_of_a_schedule_from_its_row(lab, page):
    schedule = lab.api.post(
        "schedules",
        json={
            "name": "nightly",
            "cron": "0 3 * * *",
            "paused": True,
            "job": {"kind": "notebook", "notebook": "train.ipynb", "parameters": {"epochs": 2}},
        },
    )
    assert schedule.status_code == 201, schedule.text
    schedule_id = schedule.json()["id"]
    runs = [
        lab.api.post(f"schedules/{schedule_id}/run", json={"parameters": {"lr": lr}}).json()
        for lr in (0.3, 0.6)
    ]
    for run in runs:
        finished(lab, run["id"])

    open_sidebar(page, lab)
    sidebar = page.locator(SIDEBAR)
    sidebar.get_by_role("tab", name="Schedules").click()
    sidebar.get_by_role("button", name="Run history of nightly").click()
    history = sidebar.locator(f'.aicloud-history [data-job-id="{runs[0]["id"]}"]')
    expect(history.locator(".aicloud-job-parameters")).to_contain_text("lr=0.3")
    sidebar.get_by_role("button", name="Compare the runs of nightly").click()

    rows = page.get_by_role("table", name="Runs side by side").locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator(".aicloud-compare-summary")).to_have_text(
        "2 runs · parameters that differ: lr"
    )
    expect(rows.nth(1).locator('td[data-param="lr"]')).to_have_text("0.6")
    expect(rows.nth(1).locator('td[data-param="epochs"]')).to_have_text("2")
    expect(rows.nth(1).locator('td[data-metric="loss"]')).to_have_text("3")  # 0.6 * 10 / 2


def test_run_as_job_dialog_with_typed_parameters(lab, page):
    open_sidebar(page, lab, "tree/train.ipynb")
    page.locator(".jp-Notebook").wait_for(timeout=90_000)
    page.locator(".aicloud-toolbar-aicloud-run").click()

    dialog = page.locator(".jp-Dialog")
    form = dialog.get_by_role("form", name="Run as job")
    expect(form.get_by_label("lr")).to_have_value("0.1")
    expect(form.get_by_label("epochs")).to_have_value("3")
    expect(form.get_by_text("learning rate")).to_be_visible()
    expect(form.get_by_label("Job name")).to_have_value("train")

    # A value that is not of the parameter's type keeps the dialog open, naming the field.
    form.get_by_label("epochs").fill("seven")
    dialog.get_by_role("button", name="Run").click()
    expect(form.locator("#aicloud-run-param-epochs-error")).to_have_text(
        'parameters.epochs: expected an integer, got "seven"'
    )
    expect(form.get_by_label("epochs")).to_have_attribute("aria-invalid", "true")
    screenshot(page, "run_dialog_bad_value")
    assert lab.api.get("jobs", params={"tag": "dialog"}).json()["jobs"] == []

    form.get_by_label("epochs").fill("2")
    form.get_by_label("lr").fill("0.5")
    form.get_by_label("Job name").fill("from the dialog")
    form.get_by_label("Tags (to compare runs later)").fill("dialog")
    screenshot(page, "run_dialog")
    dialog.get_by_role("button", name="Run").click()
    expect(dialog).to_have_count(0)

    view = page.locator(SIDEBAR).locator(".aicloud-job-view")
    expect(view).to_contain_text("from the dialog")
    job_id = view.get_attribute("data-job-id")
    job = finished(lab, job_id)
    assert job["spec"]["parameters"] == {"epochs": 2, "lr": 0.5}  # only the changed fields
    assert job["parameters"] == {"epochs": 2, "lr": 0.5}
    assert job["tags"] == ["dialog"] and job["name"] == "from the dialog"
    points = lab.api.get(f"jobs/{job_id}/metrics").json()["points"]
    losses = [(p["step"], p["loss"]) for p in points if "loss" in p]
    assert losses == [(1, pytest.approx(5.0)), (2, pytest.approx(2.5))]  # ran with those values


def test_resources_tab_charts_the_machine_live(lab, page):
    open_sidebar(page, lab)
    sidebar = page.locator(SIDEBAR)
    sidebar.get_by_role("tab", name="Resources").click()
    resources = sidebar.get_by_role("region", name="Resources")
    cpu = resources.locator('[data-chart="machine cpu"]')
    wait_for(lambda: int(cpu.get_attribute("data-points") or 0) >= 3, timeout=30, interval=0.5)
    expect(resources.locator('[data-chart="machine memory"]')).to_be_visible()
    now = lab.api.get("resources/usage").json()
    expect(resources.locator(".aicloud-machine-now")).to_have_attribute(
        "data-cores", str(now["cores"])
    )
    if now["gpus"]:
        expect(resources.locator("[data-gpu]")).to_have_count(len(now["gpus"]))
    else:
        expect(resources.locator(".aicloud-no-gpu")).to_have_text("No GPU on this machine.")
    expect(resources.locator('[data-backend="local"]')).to_have_text("local: available")
    screenshot(page, "resources_live")
