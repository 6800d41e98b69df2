"""The job page in JupyterLab's main area, in a real lab and Debian's chromium (issue 18).

One ``jupyter lab`` (under an awkward base URL) and one browser for the module. A running
2-rank torch job that reports a metric is opened by URL (``?aicloud-job=<id>``): its curves
grow, one line per rank, and its usage chart fills. A finished job's log, grown to 1,000,000
lines the way the service stores logs, is opened from the sidebar and scrolled to its end
with only a window of lines in the DOM; search and the rank filter work on it. Screenshots go
to ``tests/artifacts/``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import wait_for
from tests.lab_helpers import SIDEBAR, Lab, browser_page, open_sidebar, running_lab, screenshot

BASE_URL = "/a%40b/"
LINES = 1_000_000
TRAIN = (
    "import os, time\n"
    "from aicloud import runtime\n"
    "rank = int(os.environ['RANK'])\n"
    "for step in range(1, 2000):\n"
    "    runtime.report(step=step, all_ranks=True, loss=1.0 / step + 0.1 * rank)\n"
    "    print(f'step {step} \\x1b[32mok\\x1b[0m', flush=True)\n"
    "    time.sleep(0.2)\n"
)
SHORT = "import os\nprint('hello from', os.environ['RANK'], flush=True)\n"


def submit(lab: Lab, source: str, name: str) -> dict:
    spec = {
        "kind": "train",
        "framework": "torch",
        "name": name,
        "source": source,
        "resources": {"procs_per_node": 2},
    }
    answer = lab.api.post("jobs", json=spec)
    assert answer.status_code == 201, answer.text
    return answer.json()


def job_status(lab: Lab, job_id: str, statuses: set[str]) -> dict:
    def reached():
        job = lab.api.get(f"jobs/{job_id}").json()
        return job if job["status"] in statuses else None

    return wait_for(reached, timeout=120, interval=0.2)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    with running_lab(tmp_path_factory.mktemp("jobpage"), base_url=BASE_URL) as lab:
        yield lab


@pytest.fixture
def page() -> Iterator[Page]:
    """A browser per test: Playwright's sync loop must not outlive one test (pytest-asyncio)."""
    with browser_page() as page:
        yield page


def chart_points(page: Page, name: str) -> int:
    return int(page.locator(f'[data-chart="{name}"]').get_attribute("data-points") or 0)


def test_running_train_job_by_url_curves_grow_and_usage_fills(lab, page):
    job = submit(lab, TRAIN, "curves")
    job_status(lab, job["id"], {"running"})
    page.goto(f"{lab.url}lab?token={lab.token}&aicloud-job={job['id']}")
    view = page.locator(f'.aicloud-job-page[data-job-id="{job["id"]}"]')
    expect(view.locator(".aicloud-page-title h2")).to_have_text("curves", timeout=90_000)
    expect(view.locator(".aicloud-status")).to_have_text("running")
    expect(view.locator(".aicloud-page-kind")).to_contain_text("train (torch) · 2 ranks")

    loss = view.locator('[data-chart="metric loss"]')
    loss.wait_for()
    # one line per rank, named in the hover legend; the x axis is the step
    expect(loss.locator(".u-legend .u-series")).to_have_count(3)
    expect(loss.locator(".u-legend")).to_contain_text("loss (rank 0)")
    expect(loss.locator(".u-legend")).to_contain_text("loss (rank 1)")
    expect(loss.locator(".u-legend")).to_contain_text("step")
    wait_for(lambda: chart_points(page, "metric loss") >= 3, timeout=30, interval=0.2)
    first = chart_points(page, "metric loss")
    wait_for(lambda: chart_points(page, "metric loss") >= first + 5, timeout=30, interval=0.2)

    # hovering the plot shows the values at the cursor
    box = loss.locator(".u-over").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)
    expect(loss.locator(".u-legend .u-series").nth(1).locator(".u-value")).not_to_have_text("–")

    # the log scale toggle redraws the y axis as logarithmic
    view.get_by_label("Log scale").check()
    expect(loss).to_have_attribute("data-scale", "log")

    # the supervisor's samples fill the usage charts
    wait_for(lambda: chart_points(page, "usage cpu") >= 2, timeout=60, interval=0.5)
    filled = chart_points(page, "usage cpu")
    wait_for(lambda: chart_points(page, "usage cpu") > filled, timeout=30, interval=0.5)
    assert chart_points(page, "usage memory") >= filled

    # the duration ticks while the job runs
    duration = view.locator(".aicloud-page-duration")
    before = int(duration.get_attribute("data-seconds") or 0)
    wait_for(lambda: int(duration.get_attribute("data-seconds") or 0) > before, timeout=10)

    # the log follows its end while the job runs; ANSI colours become JupyterLab's classes
    log = view.locator(".aicloud-log-viewport")
    expect(log.locator(".ansi-green-fg").first).to_have_text("ok")
    expect(view.get_by_label("Follow the end")).to_be_checked()
    shot = screenshot(page, "job-page-running")
    assert shot.stat().st_size > 10_000
    lab.api.post(f"jobs/{job['id']}/cancel")
    expect(view.locator(".aicloud-status")).to_have_text("cancelled", timeout=60_000)


def grow_log(lab: Lab, job_id: str) -> Path:
    """Append 1,000,000 rank-prefixed lines (some coloured) as the service writes a log."""
    log = lab.root.parent / "data" / "runs" / job_id / "output.log"
    assert log.is_file(), sorted(log.parent.iterdir())
    block = b"".join(
        b"[rank%d]:step %d loss=%.4f \x1b[33mwarn\x1b[0m\n" % (n % 2, n, 1 / (n + 1))
        for n in range(LINES // 10)
    )
    with open(log, "ab") as f:
        for _ in range(10):
            f.write(block)
        f.write(b"[rank1]:needle-in-the-haystack and then the last line\n")
    return log


def test_million_line_log_from_the_sidebar_scrolls_to_its_end(lab, page):
    job = submit(lab, SHORT, "million")
    assert job_status(lab, job["id"], {"succeeded", "failed", "cancelled"})["status"] == "succeeded"
    grow_log(lab, job["id"])
    total = lab.api.get(f"jobs/{job['id']}/log-lines", params={"start": 0, "count": 1}).json()
    assert total["total"] > LINES

    open_sidebar(page, lab)
    sidebar = page.locator(SIDEBAR)
    sidebar.locator(".aicloud-row", has_text="million").first.click()
    sidebar.get_by_role("button", name="Open page").click()
    view = page.locator(f'.aicloud-job-page[data-job-id="{job["id"]}"]')
    log = view.locator(".aicloud-log-viewport")
    expect(view.locator(".aicloud-log-total")).to_have_attribute(
        "data-total", str(total["total"]), timeout=30_000
    )

    log.scroll_into_view_if_needed()
    began = time.perf_counter()
    log.evaluate("node => { node.scrollTop = node.scrollHeight; }")
    last = log.locator(f'.aicloud-log-row[data-line="{total["total"] - 1}"]')
    expect(last).to_contain_text("needle-in-the-haystack and then the last line", timeout=20_000)
    expect(last).to_be_in_viewport()
    print(f"\nscrolled {total['total']:,} lines to the end in {time.perf_counter() - began:.2f} s")
    rows = log.locator(".aicloud-log-row").count()
    assert 0 < rows < 200, rows  # a window of lines, not the log
    # lines never wrap: the longest row is one line high and the view scrolls sideways
    heights = log.locator(".aicloud-log-row").evaluate_all("rows => rows.map(r => r.offsetHeight)")
    assert set(heights) == {18}, heights
    screenshot(page, "job-page-log-end")

    # search jumps to the match from the top; rank 1 alone has about half the lines
    log.evaluate("node => { node.scrollTop = 0; }")
    view.get_by_label("Search the log").fill("needle")
    view.get_by_role("button", name="Next match").click()
    expect(view.locator(".aicloud-log-match")).to_have_text("1 of 1", timeout=30_000)
    expect(log.locator(".aicloud-log-current mark")).to_have_text("needle")
    view.get_by_label("Rank").select_option("1")
    counted = view.locator(".aicloud-log-total")

    def ranked() -> int:
        value = counted.get_attribute("data-total") or ""
        return int(value) if value and value != str(total["total"]) else 0

    assert LINES // 2 <= wait_for(ranked, timeout=30, interval=0.2) <= LINES // 2 + 2
    view.get_by_role("button", name="Next match").click()
    expect(log.locator(".aicloud-log-current")).to_contain_text(
        "needle-in-the-haystack", timeout=30_000
    )
    expect(log.locator(".aicloud-log-current")).to_be_in_viewport()
    screenshot(page, "job-page-log-search")
