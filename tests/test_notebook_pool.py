"""The warm notebook pool: same results as the plain runner, a fresh kernel per run, clean ends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from aicloud.launchers import LaunchContext, launcher_for, notebook_pool
from aicloud.launchers.notebook import CLIENT, POOL_ENV
from aicloud.spec import JobSpec
from tests.helpers import api, job_log, submit, wait_job
from tests.notebook_files import write_report

FALLBACK = "notebook pool not used"
# Whether the kernel was started for this job: a warm kernel started before the job existed.
PROBE = """import os
started_with = open("/proc/self/environ", "rb").read().split(b"\\0")
print("job", os.environ["AICLOUD_JOB_ID"], "cwd", os.getcwd())
print("warm", not any(v.startswith(b"AICLOUD_JOB_ID=") for v in started_with))
cell = open(os.environ["AICLOUD_CELL_FILE"]).read()
print("session", os.environ["JPY_SESSION_NAME"], "cell", cell)"""


@pytest.fixture
def jp_server_config(jp_server_config):
    """The in-process server with a pool of one warm runner, started at once."""
    app = {**jp_server_config["AICloudApp"], "notebook_pool_size": 1, "notebook_pool_delay": 0}
    return {**jp_server_config, "AICloudApp": app}


def write_notebook(folder: Path, name: str, *sources: str) -> str:
    """A python3 notebook with a ``parameters`` cell and the given code cells."""
    cells = [new_code_cell("tag = 'x'", metadata={"tags": ["parameters"]})]
    notebook = new_notebook(cells=cells + [new_code_cell(s) for s in sources])
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, folder / name)
    return name


def pool_processes(path: Path) -> list[psutil.Process]:
    """The pool, its runners and their kernels (and whatever those started)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if process.info["cmdline"] and str(path) in process.info["cmdline"]:
            found.append(process)
            with contextlib.suppress(psutil.NoSuchProcess):
                found += process.children(recursive=True)
    return list({p.pid: p for p in found}.values())


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running (a zombie has ended)."""
    running = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                running.append(process)
        except psutil.NoSuchProcess:
            pass
    return running


async def until(predicate, timeout: float, interval: float = 0.05):
    """Poll ``predicate`` while the server's event loop runs; its first truthy value."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
    return value


@pytest.fixture
def pool(jp_serverapp, jp_asyncio_loop, aicloud_data_dir):
    """The socket of the server's pool, once it listens; no process of it is left afterwards."""
    (app,) = jp_serverapp.extension_manager.extension_apps["aicloud"]
    path = notebook_pool.socket_path(aicloud_data_dir)
    jp_asyncio_loop.run_until_complete(until(path.exists, timeout=120, interval=0.1))
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(path.parent).st_mode & 0o777 == 0o700
    yield path
    processes = pool_processes(path)
    listening = bool(alive(processes))
    jp_asyncio_loop.run_until_complete(app._stop_pool())
    jp_asyncio_loop.run_until_complete(until(lambda: not alive(processes), timeout=15))
    assert not (listening and path.exists())


async def run_job(jp_fetch, spec: dict) -> tuple[dict, str]:
    """Submit a job, wait for its end; the job and its log."""
    job = await submit(jp_fetch, spec)
    job = await wait_job(jp_fetch, job["id"], timeout=120)
    return job, await job_log(jp_fetch, job["id"])


def plan_argv(aicloud_data_dir: Path, job_id: str) -> list[str]:
    """The argv the supervisor ran for the job's first attempt (from its claim)."""
    (claim,) = (aicloud_data_dir / "runs" / job_id).glob("attempt-1.*.claim")
    return json.loads(claim.read_text())["argv"][0]


async def test_pool_runs_notebook_jobs(jp_fetch, jp_root_dir, aicloud_data_dir, pool):
    write_report(jp_root_dir, body='print("region", region, "days", days)\n' + PROBE)
    spec = {"kind": "notebook", "notebook": "report.ipynb", "parameters": {"region": "us"}}
    job, log = await run_job(jp_fetch, spec)
    assert job["status"] == "succeeded", log
    assert plan_argv(aicloud_data_dir, job["id"])[3] == str(CLIENT)
    assert FALLBACK not in log
    assert "region us days 7" in log
    assert f"job {job['id']} cwd {jp_root_dir}" in log and "warm True" in log
    source = nbformat.read(jp_root_dir / "report.ipynb", as_version=4)
    assert f"session report.ipynb cell {source.cells[2].id}" in log  # the probe's own cell

    outputs = aicloud_data_dir / "runs" / job["id"] / "outputs"
    executed = nbformat.read(outputs / "report.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and 'region = "us"' in injected[0].source
    assert [c.execution_count for c in executed.cells if c.cell_type == "code"] == [1, 2, 3, 4]
    assert "region us days 7" in (outputs / "report.html").read_text()
    _, metrics = await api(jp_fetch, "GET", "jobs", job["id"], "metrics")
    assert metrics["progress"] == {"step": 5, "total": 5, "fraction": 1.0}


async def test_pool_socket_stays_out_of_jobs_environments(jp_fetch, aicloud_data_dir, pool):
    """Only the notebook launcher is told where the pool listens; no job sees the socket."""
    spec = {"kind": "command", "command": ["sh", "-c", "env | grep AICLOUD_ | cut -d= -f1"]}
    job, log = await run_job(jp_fetch, spec)
    assert job["status"] == "succeeded", log
    assert "AICLOUD_JOB_ID" in log and POOL_ENV not in log
    argv = " ".join(plan_argv(aicloud_data_dir, job["id"]))
    assert POOL_ENV not in argv and str(pool) not in argv


async def test_runs_never_share_a_kernel(jp_fetch, jp_root_dir, pool):
    pid = "import os\nprint('kernel-pid', os.getpid())"
    first = write_notebook(jp_root_dir, "first.ipynb", "leak = 41", pid)
    second = write_notebook(jp_root_dir, "second.ipynb", "print('leak' in globals())", pid, PROBE)
    logs = []
    for notebook, env in ((first, {}), (second, {}), (second, {"PYTHONPATH": "/nowhere"})):
        job, log = await run_job(jp_fetch, {"kind": "notebook", "notebook": notebook, "env": env})
        assert job["status"] == "succeeded" and FALLBACK not in log, log
        logs.append(log)
    assert "False" in logs[1] and "warm True" in logs[1]
    # A variable that a kernel reads as it starts: a kernel of its own, through the pool still.
    assert "False" in logs[2] and "warm False" in logs[2]
    kernels = {text.split("kernel-pid ")[1].split()[0] for text in logs}
    assert len(kernels) == 3


async def test_cancel_leaves_no_kernel_behind(jp_fetch, jp_root_dir, pool):
    sleepy = write_notebook(
        jp_root_dir,
        "sleepy.ipynb",
        "import os, subprocess, time\n"
        "child = subprocess.Popen(['sleep', '120'])\n"
        "open('pids', 'w').write(f'{os.getpid()} {child.pid}')\n"
        "time.sleep(120)",
    )
    job = await submit(jp_fetch, {"kind": "notebook", "notebook": sleepy})
    pids_file = jp_root_dir / "pids"
    await until(lambda: pids_file.exists() and pids_file.read_text(), timeout=120)
    processes = [psutil.Process(int(pid)) for pid in pids_file.read_text().split()]
    status, cancelled = await api(jp_fetch, "POST", "jobs", job["id"], "cancel")
    assert status == 200 and cancelled["status"] == "cancelled"
    await until(lambda: not alive(processes), timeout=5)


async def test_a_killed_supervisor_takes_the_warm_runner_and_its_kernel(
    jp_fetch, jp_root_dir, pool
):
    """The runner and the kernel were started before the job: they join the attempt's unit
    when they take the run, so a kill -9 of its supervisor ends them too."""
    sleepy = write_notebook(
        jp_root_dir,
        "sleepy-killed.ipynb",
        "import os, subprocess, time\n"
        "child = subprocess.Popen(['sleep', '120'])\n"
        "open('pids-killed', 'w').write(f'{os.getpid()} {child.pid}')\n"
        "time.sleep(120)",
    )
    job = await submit(jp_fetch, {"kind": "notebook", "notebook": sleepy})
    pids_file = jp_root_dir / "pids-killed"
    await until(lambda: pids_file.exists() and pids_file.read_text(), timeout=120)
    processes = [psutil.Process(int(pid)) for pid in pids_file.read_text().split()]
    kernel_cgroup = Path(f"/proc/{processes[0].pid}/cgroup").read_text()
    assert f"/{job['id']}.a1." in kernel_cgroup, kernel_cgroup  # in the attempt's unit
    handle_pid = [
        p
        for p in psutil.process_iter(["cmdline"])
        if f"/{job['id']}/attempt-1." in " ".join(p.info["cmdline"] or [])
    ]
    (supervisor,) = handle_pid
    supervisor.kill()
    ended = await wait_job(jp_fetch, job["id"], timeout=60)
    assert ended["status"] == "failed" and ended["reason_code"] == "infrastructure", ended
    assert not alive(processes), "the warm kernel outlived its attempt"


async def test_failing_cell_and_fallback_without_the_pool(jp_fetch, jp_root_dir, pool):
    write_report(jp_root_dir, body=PROBE)
    spec = {"kind": "notebook", "notebook": "report.ipynb", "parameters": {"region": "boom"}}
    warm, warm_log = await run_job(jp_fetch, spec)
    assert warm["status"] == "failed" and warm["reason_code"] == "user_error", warm_log
    assert warm["reason"] == "cell 4 raised ValueError: bad region"
    assert "warm True" in warm_log

    processes = pool_processes(pool)
    for process in processes:  # a crash: the socket file stays, nobody listens on it
        process.send_signal(signal.SIGKILL)
    await until(lambda: not alive(processes), timeout=15)
    assert pool.exists()
    plain, plain_log = await run_job(jp_fetch, spec)
    assert FALLBACK in plain_log and "warm False" in plain_log
    assert (plain["status"], plain["reason_code"]) == ("failed", "user_error")
    assert plain["reason"] == warm["reason"]

    write_notebook(jp_root_dir, "ok.ipynb", "print('fine', tag)")
    spec = {"kind": "notebook", "notebook": "ok.ipynb", "parameters": {"tag": "plain"}}
    job, log = await run_job(jp_fetch, spec)
    assert job["status"] == "succeeded", (job["reason"], log)
    assert "fine plain" in log and FALLBACK in log


def test_launcher_uses_the_pool_only_when_it_listens(tmp_path):
    import socket

    (tmp_path / "nb.ipynb").write_text("{}")
    spec = JobSpec(kind="notebook", notebook="nb.ipynb")
    path = tmp_path / "pool.sock"

    def plan() -> tuple[list[str], dict[str, str]]:
        env = {"KEEP": "1"}
        context = LaunchContext(
            "job-x", 1, tmp_path / "run", tmp_path, env, notebook_pool=str(path)
        )
        process = launcher_for(spec, tmp_path).plan(spec, context).processes[0]
        assert process.env.pop("JPY_SESSION_NAME") == "nb.ipynb"
        assert process.env.pop("AICLOUD_CELL_FILE") == str(tmp_path / "run" / "current-cell")
        return process.argv, process.env

    argv, env = plan()
    assert argv[1:3] == ["-m", "aicloud.launchers.notebook_runner"]
    assert env == {"KEEP": "1"}
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        argv, env = plan()
    assert argv[1:6] == ["-I", "-S", str(CLIENT), "--socket", str(path)]
    assert argv[6] == "--" and argv[8:10] == ["-m", "aicloud.launchers.notebook_runner"]
    assert env == {"KEEP": "1"}


def test_socket_path_stays_short_and_private(tmp_path):
    short = notebook_pool.socket_path(tmp_path)
    assert short == tmp_path / "notebook-pool" / "pool.sock"
    deep = tmp_path / ("d" * 120)
    path = notebook_pool.socket_path(deep)
    assert len(str(path)) <= notebook_pool.MAX_SOCKET_PATH
    assert path == notebook_pool.socket_path(deep)  # the same data dir, the same socket
    directory = notebook_pool.private_dir(short.parent)
    directory.chmod(0o755)
    assert notebook_pool.private_dir(directory).stat().st_mode & 0o777 == 0o700
