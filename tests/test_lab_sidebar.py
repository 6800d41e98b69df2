"""The aicloud sidebar in a real JupyterLab, driven by Playwright on Debian's chromium.

One ``jupyter lab`` with the aicloud server extension runs under an awkward base URL for the
module. Through the UI only: schedule a notebook (form built from its parameters, cron preview,
a server error shown inline), run it now and watch the run finish, open the output notebook,
follow a running job's rank-prefixed log with search and pause, and cancel it. Screenshots go
to ``tests/artifacts/``.
"""

from __future__ import annotations

import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from playwright.sync_api import expect

from tests.conftest import wait_for
from tests.lab_helpers import SIDEBAR, browser_page, open_sidebar, running_lab, screenshot

BASE_URL = "/a%40b/"
PARAMETERS = 'region = "us"  # where to report on\ndays: int = 30\ngrowth = 0.5\nflags = [1, 2]'
TICKER = (
    "import time\n"
    "for i in range(1, 1201):\n"
    "    print(f'[rank0]: tick {i}', flush=True)\n"
    "    print(f'[rank1]: tock {i}', flush=True)\n"
    "    time.sleep(0.1)\n"
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """``jupyter lab`` under an escaped base URL (as pytest-jupyter uses), and a notebook."""
    tmp = tmp_path_factory.mktemp("lab")
    with running_lab(tmp, base_url=BASE_URL) as lab:
        cells = [new_code_cell(PARAMETERS), new_code_cell("print('report', region, days)")]
        cells[0].metadata["tags"] = ["parameters"]
        notebook = new_notebook(cells=cells)
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
        notebook.metadata["language_info"] = {"name": "python"}  # papermill needs the language
        nbformat.write(notebook, lab.root / "report.ipynb")
        yield lab


def test_schedule_from_notebook_run_now_and_open_output(lab):
    with browser_page() as page:
        open_sidebar(page, lab, "tree/report.ipynb")
        page.locator(".jp-Notebook").wait_for(timeout=90_000)
        page.locator(".aicloud-toolbar-aicloud-schedule").click()

        form = page.locator(SIDEBAR).get_by_role("form", name="New schedule")
        expect(form.get_by_label("Notebook")).to_have_value("report.ipynb")
        # The form is generated from the notebook's typed parameters.
        expect(form.get_by_label("region")).to_have_value("us")
        expect(form.get_by_label("days")).to_have_value("30")
        expect(form.get_by_label("flags")).to_have_value("[1,2]")
        expect(form.get_by_text("where to report on")).to_be_visible()

        form.get_by_label("Time zone").fill("Europe/Berlin")
        form.get_by_label("Cron (minute hour day month weekday)").fill("0 6 * *")
        expect(form.locator(".aicloud-cron-error")).to_have_text(
            "cron: expected five fields (minute hour day month weekday), got 4"
        )
        form.get_by_label("Cron (minute hour day month weekday)").fill("0 6 * * 1-5")
        expect(form.locator(".aicloud-cron-description")).to_have_text(
            "At 06:00, Monday through Friday"
        )
        next_times = form.get_by_role("list", name="Next fire times").locator("li")
        expect(next_times).to_have_count(3)
        expect(next_times.first).to_contain_text("06:00")

        # A value that is not of the parameter's type is refused before anything is sent.
        form.get_by_label("days").fill("seven")
        form.get_by_role("button", name="Create schedule").click()
        expect(form.get_by_role("alert")).to_have_text(
            'parameters.days: expected an integer, got "seven"'
        )
        form.get_by_label("days").fill("7")
        # The server's own error comes back inline, naming the field.
        form.get_by_label("Keep the outputs of the last N runs").fill("0")
        form.get_by_role("button", name="Create schedule").click()
        expect(form.get_by_role("alert")).to_contain_text("keep_last")
        form.get_by_label("Keep the outputs of the last N runs").fill("5")
        screenshot(page, "sidebar_schedule_form")
        form.get_by_role("button", name="Create schedule").click()

        sidebar = page.locator(SIDEBAR)
        expect(sidebar.get_by_role("status")).to_contain_text("Schedule report created")
        row = sidebar.locator(".aicloud-schedule")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("At 06:00, Monday through Friday")
        (schedule,) = lab.api.get("schedules").json()["schedules"]
        assert schedule["cron"] == "0 6 * * 1-5" and schedule["timezone"] == "Europe/Berlin"
        assert schedule["keep_last"] == 5
        assert schedule["job"]["parameters"] == {"days": 7}  # only what the user changed

        row.get_by_role("button", name="Pause report").click()
        expect(row.locator(".aicloud-status-paused")).to_be_visible()
        assert lab.api.get(f"schedules/{schedule['id']}").json()["paused"] is True
        row.get_by_role("button", name="Resume report").click()
        expect(row.locator(".aicloud-status-paused")).to_have_count(0)

        row.get_by_role("button", name="Run report now").click()
        view = sidebar.locator(".aicloud-job-view")
        expect(view.locator(".aicloud-status")).to_have_text("succeeded", timeout=120_000)
        open_button = view.get_by_role("button", name="Open report.ipynb")
        expect(open_button).to_be_visible()
        screenshot(page, "sidebar_run_succeeded")
        job_id = view.get_attribute("data-job-id")
        open_button.click()
        output = f"aicloud-outputs/{job_id}/report.ipynb"
        current = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")
        expect(current).to_have_attribute("title", re.compile(f"Path: {re.escape(output)}"))
        wait_for(lambda: (lab.root / output).is_file(), timeout=30)
        executed = nbformat.read(lab.root / output, as_version=4)
        assert "report us 7" in executed.cells[-1].outputs[0]["text"]

        # The run shows up in the schedule's history.
        sidebar.get_by_role("tab", name="Schedules").click()
        sidebar.get_by_role("button", name="Run history of report").click()
        expect(sidebar.locator(f'.aicloud-history [data-job-id="{job_id}"]')).to_contain_text(
            "succeeded"
        )
        screenshot(page, "sidebar_schedule_history")


def test_follow_logs_search_pause_and_cancel(lab):
    job = lab.api.post(
        "jobs",
        json={"name": "ticker", "command": ["python", "-c", TICKER], "tags": ["browser"]},
    ).json()
    with browser_page() as page:
        open_sidebar(page, lab)
        sidebar = page.locator(SIDEBAR)
        row = sidebar.locator(f'li[data-job-id="{job["id"]}"]')
        expect(row).to_contain_text("running")
        sidebar.get_by_label("Filter jobs by status").select_option("succeeded")
        expect(row).to_have_count(0)
        sidebar.get_by_label("Filter jobs by status").select_option("active")
        row.get_by_role("button").click()

        view = sidebar.locator(".aicloud-job-view")
        log = view.get_by_label("Log text")
        expect(log).to_contain_text("tick 5")
        expect(log.locator(".aicloud-rank").first).to_have_text("[rank0]:")
        view.get_by_label("Search the log").fill("tock 3")
        expect(view.locator(".aicloud-log-state")).to_contain_text("matching line")
        expect(log.locator("mark").first).to_have_text("tock 3")
        view.get_by_label("Search the log").fill("")

        view.get_by_role("button", name="Pause").click()
        expect(view.get_by_role("button", name="Resume")).to_have_attribute("aria-pressed", "true")
        lines = log.locator(".aicloud-log-line").count()
        page.wait_for_timeout(1000)
        assert log.locator(".aicloud-log-line").count() == lines  # paused: nothing new shown
        view.get_by_role("button", name="Resume").click()
        expect(log.locator(".aicloud-log-line")).not_to_have_count(lines)
        screenshot(page, "sidebar_job_logs")

        view.get_by_role("button", name="Cancel").click()
        expect(view.locator(".aicloud-status")).to_have_text("cancelled", timeout=60_000)
        expect(view.locator(".aicloud-log-state")).to_have_text("ended")
        screenshot(page, "sidebar_job_cancelled")
        assert lab.api.get(f"jobs/{job['id']}").json()["status"] == "cancelled"

        view.get_by_role("button", name="Delete").click()
        expect(sidebar.locator(f'li[data-job-id="{job["id"]}"]')).to_have_count(0)
        assert lab.api.get(f"jobs/{job['id']}").status_code == 404


def test_run_notebook_as_job_appears_and_finishes_and_resources(lab):
    with browser_page() as page:
        open_sidebar(page, lab, "tree/report.ipynb")
        page.locator(".jp-Notebook").wait_for(timeout=90_000)
        sidebar = page.locator(SIDEBAR)
        sidebar.get_by_role("tab", name="Jobs").click()
        page.locator(".aicloud-toolbar-aicloud-run").click()
        page.locator(".jp-Dialog").get_by_role("button", name="Run").click()  # the defaults

        view = sidebar.locator(".aicloud-job-view")
        expect(view).to_contain_text("report.ipynb")
        expect(view.locator(".aicloud-status")).to_have_text("succeeded", timeout=120_000)
        job_id = view.get_attribute("data-job-id")
        job = lab.api.get(f"jobs/{job_id}").json()
        assert job["kind"] == "notebook" and job["spec"]["notebook"] == "report.ipynb"
        assert job["spec"]["origin"] == {"notebook": "report.ipynb"}

        view.get_by_role("button", name="← Jobs").click()
        row = sidebar.locator(f'li[data-job-id="{job_id}"]')
        expect(row).to_contain_text("succeeded")
        expect(row).to_contain_text("notebook · 1 rank")
        sidebar.get_by_label("Filter jobs by kind").select_option("command")
        expect(row).to_have_count(0)

        sidebar.get_by_role("tab", name="Resources").click()
        resources = sidebar.get_by_role("region", name="Resources")
        expect(resources.locator('[data-backend="local"]')).to_have_text("local: available")
        expect(resources).to_contain_text("standalone")
        screenshot(page, "sidebar_resources")
