"""The job page in chromium: time to first paint and tab memory with 10^6 log lines, 10^4 points.

A 2-rank torch job reports 10,000 metric points (rank 0, ``aicloud.runtime.report``) and ends;
its log is then grown to 1,000,000 lines the way the service stores logs. Each load opens a
fresh chromium tab on ``<lab>/lab?aicloud-job=<id>`` in a real ``jupyter lab``, and the page
itself records (``performance.now()``, by a MutationObserver installed before any script):

* ``widget``: the job page's widget is in the DOM (JupyterLab booted and ran the command);
* ``log``: the first window of log lines is rendered;
* ``chart``: the metric chart holds all 10,000 points;
* ``first paint`` = the later of ``log`` and ``chart``, counted from ``widget`` (the page's own
  cost, JupyterLab's boot left out; the boot is reported beside it).

Memory: CDP ``Performance.getMetrics`` ``JSHeapUsedSize`` of the tab with the page open, and
of a tab with JupyterLab alone (the page's share is the difference), and the renderer's RSS.
Then the time from ``scrollTop = end`` to the last line on screen. Medians of ``--loads``.

    .venv/bin/python bench/job_page.py [--loads 5] [--lines 1000000] [--points 10000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import wait_for
from tests.lab_helpers import CHROMIUM, Lab, running_lab

WATCH = """
window.__marks = {};
new MutationObserver(() => {
  const m = window.__marks, now = performance.now();
  if (!m.widget && document.querySelector('.aicloud-job-page-widget')) m.widget = now;
  if (!m.log && document.querySelector('.aicloud-log-row[data-line]')) m.log = now;
  const chart = document.querySelector('[data-chart="metric loss"]');
  if (!m.chart && chart && chart.dataset.points === '%d' && chart.querySelector('canvas'))
    m.chart = now;
}).observe(document, {subtree: true, childList: true, attributes: true});
"""

SCROLL_TO_END = """async last => {
  const node = document.querySelector('.aicloud-log-viewport');
  const began = performance.now();
  node.scrollTop = node.scrollHeight;
  for (;;) {
    await new Promise(requestAnimationFrame);
    if (node.querySelector(`.aicloud-log-row[data-line="${last}"]`)) {
      return performance.now() - began;
    }
  }
}"""


def make_job(lab: Lab, lines: int, points: int) -> tuple[str, int]:
    """The job, its log grown to ``lines`` lines; returns its id and the log's line count."""
    source = (
        "from aicloud import runtime\n"
        f"for step in range(1, {points + 1}):\n"
        "    runtime.report(step=step, loss=1.0 / step)\n"
        "print('reported', flush=True)\n"
    )
    spec = {"kind": "train", "framework": "torch", "name": "bench-page", "source": source}
    spec["resources"] = {"procs_per_node": 2}
    job = lab.api.post("jobs", json=spec).json()

    def ended():
        got = lab.api.get(f"jobs/{job['id']}").json()
        return got if got["status"] in ("succeeded", "failed", "cancelled") else None

    assert wait_for(ended, timeout=300, interval=0.5)["status"] == "succeeded"
    log = lab.root.parent / "data" / "runs" / job["id"] / "output.log"
    block = b"".join(
        b"[rank%d]:step %d loss=%.4f \x1b[33mwarn\x1b[0m\n" % (n % 2, n, 1 / (n + 1))
        for n in range(lines // 10)
    )
    with open(log, "ab") as f:
        for _ in range(10):
            f.write(block)
    began = time.perf_counter()
    total = lab.api.get(f"jobs/{job['id']}/log-lines", params={"start": -1, "count": 1}).json()
    print(f"log index of {total['total']:,} lines built in {time.perf_counter() - began:.2f} s")
    return job["id"], total["total"]


def heap_mb(page) -> float:
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    cdp.detach()
    return metrics["JSHeapUsedSize"] / 2**20


def renderer_rss_mb(browser_pid: int) -> float:
    """The largest renderer's RSS (one tab open: the tab's renderer)."""
    kids = psutil.Process(browser_pid).children(recursive=True)
    renderers = [p for p in kids if "--type=renderer" in " ".join(p.cmdline())]
    return max((p.memory_info().rss for p in renderers), default=0) / 2**20


def load(browser, lab: Lab, url: str, points: int, last: int | None) -> dict:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(f"{lab.url}lab?token={lab.token}")  # log in (cookie), then the measured load
    page.locator("#aicloud-sidebar, .jp-LabShell").first.wait_for()
    page.add_init_script(WATCH % points)
    page.goto(url)
    result: dict = {}
    if last is None:  # JupyterLab alone
        page.locator(".jp-Launcher, .jp-LabShell").first.wait_for()
        page.wait_for_timeout(3000)
    else:
        page.wait_for_function("() => window.__marks.log && window.__marks.chart")
        marks = page.evaluate("() => window.__marks")
        result = {
            "boot": marks["widget"] / 1000,
            "paint": (max(marks["log"], marks["chart"]) - marks["widget"]) / 1000,
            "log": (marks["log"] - marks["widget"]) / 1000,
            "chart": (marks["chart"] - marks["widget"]) / 1000,
        }
        page.wait_for_timeout(1000)
    page.evaluate("() => window.gc && window.gc()")
    result["heap"] = heap_mb(page)
    if last is not None:
        page.locator(".aicloud-log-viewport").scroll_into_view_if_needed()
        result["scroll"] = page.evaluate(SCROLL_TO_END, last) / 1000
    context.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--points", type=int, default=10_000)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, running_lab(Path(tmp)) as lab:
        job_id, total = make_job(lab, args.lines, args.points)
        url = f"{lab.url}lab?aicloud-job={job_id}"
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--headless", "--disable-gpu", "--js-flags=--expose-gc"],
            )
            pid = browser_process_pid()
            bare = [load(browser, lab, f"{lab.url}lab", args.points, None) for _ in range(2)]
            runs, rss = [], []
            for _ in range(args.loads):
                runs.append(load(browser, lab, url, args.points, total - 1))
                rss.append(renderer_rss_mb(pid) if pid else float("nan"))
            browser.close()

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    lab_heap = statistics.median(r["heap"] for r in bare)
    print(f"{total:,} log lines, {args.points:,} metric points, {args.loads} loads (medians)")
    print(f"JupyterLab boot to the page's widget: {med('boot'):.2f} s")
    print(f"first paint of the page (log window and chart): {med('paint'):.3f} s")
    print(f"  first log window: {med('log'):.3f} s, chart with all points: {med('chart'):.3f} s")
    print(f"JS heap: {med('heap'):.0f} MB with the page, {lab_heap:.0f} MB JupyterLab alone")
    print(f"renderer RSS after a load: {statistics.median(rss):.0f} MB")
    print(f"scroll to the end of the log (last line drawn): {med('scroll') * 1000:.0f} ms")
    print("per load:", [{k: round(v, 3) for k, v in r.items()} for r in runs])


def browser_process_pid() -> int | None:
    """Chromium's browser process: the newest chromium child of this process."""
    kids = [
        p
        for p in psutil.Process().children(recursive=True)
        if "chrom" in p.name() and "--type=" not in " ".join(p.cmdline())
    ]
    return max(kids, key=lambda p: p.create_time()).pid if kids else None


if __name__ == "__main__":
    main()
