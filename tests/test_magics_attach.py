"""A kernel interrupt detaches (or cancels, with the setting); after a restart, attach and
``jobs --here`` find the job again. Real kernels through jupyter_client, a real service."""

from __future__ import annotations

import queue
import time

import pytest
from jupyter_client.manager import start_new_kernel

from tests.conftest import wait_for

SLEEPER = (
    "%%aicloud train --framework none --name sleeper\n"
    "import time\nfor i in range(600):\n    print('tick', i, flush=True)\n    time.sleep(0.2)"
)


@pytest.fixture
def live_server(module_live_server):
    """The module's server; each test's kernel is a notebook of its own (``jobs --here``)."""
    return module_live_server


@pytest.fixture
def kernel(live_server, monkeypatch, request):
    monkeypatch.setenv("AICLOUD_URL", live_server.url)
    monkeypatch.setenv("AICLOUD_TOKEN", live_server.token)
    notebook = live_server.root_dir / f"{request.node.name}.ipynb"
    monkeypatch.setenv("JPY_SESSION_NAME", str(notebook))
    started = []

    def start():
        km, kc = start_new_kernel(kernel_name="python3", cwd=str(live_server.root_dir))
        started.append((km, kc))
        run(kc, "%load_ext aicloud")
        return km, kc

    yield start
    for km, kc in started:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def iopub(kc, msg_id: str | None, timeout: float):
    """The kernel's IOPub messages (of request ``msg_id``, if given) until ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        if msg_id is None or msg["parent_header"].get("msg_id") == msg_id:
            yield msg


def run(
    kc, code: str, until: str | None = None, timeout: float = 60, output: bool = False
) -> tuple[str, str]:
    """Execute ``code``; return (all text output, status). With ``until``, return as soon as
    that text has appeared (the cell still running) with status 'running'. With ``output``,
    a cell that prints: a stream that comes after the idle status (IOPub under load) still
    counts, and no output at all is a TimeoutError."""
    text, idle = "", False
    for msg in iopub(kc, kc.execute(code), timeout):
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            text += content["text"]
        elif kind == "error":
            text += "\n".join(content["traceback"])
        elif kind == "status" and content["execution_state"] == "idle":
            idle = True
        if idle and (not output or text.endswith("\n")):
            return text, "idle"
        if until and until in text:
            return text, "running"
    raise TimeoutError(f"no idle after {code!r}: {text}")


def drain(kc, timeout: float = 30) -> str:
    """The rest of the current cell's output, until the kernel is idle."""
    text = ""
    for msg in iopub(kc, None, timeout):
        if msg["msg_type"] == "stream":
            text += msg["content"]["text"]
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return text
    raise TimeoutError(text)


def test_interrupt_detaches_then_attach_after_restart(kernel, live_server):
    km, kc = kernel()
    text, state = run(kc, SLEEPER, until="tick 2")
    assert state == "running"
    job_id = text.split("aicloud: job ")[1].split()[0]
    km.interrupt_kernel()
    rest = drain(kc)
    assert f"detached from job {job_id}, which keeps running" in rest
    assert f"`%aicloud attach {job_id}`" in rest
    with live_server.api() as api:
        assert api.get(f"jobs/{job_id}").json()["status"] == "running"

    km.restart_kernel(now=True)  # a fresh kernel process: nothing in memory
    kc.wait_for_ready(timeout=60)
    run(kc, "%load_ext aicloud")
    listing, _ = run(kc, "%aicloud jobs --here")
    assert job_id in listing and "sleeper" in listing and "running" in listing
    attached, state = run(kc, f"%aicloud attach {job_id}", until="tick 20")
    assert state == "running"
    assert f"attached to job {job_id}" in attached and "tick 0" in attached  # the log so far
    km.interrupt_kernel()
    drain(kc)
    cancelled, _ = run(kc, f"%aicloud cancel {job_id}")
    assert cancelled.strip() == f"{job_id} cancelled"


def test_interrupt_cancels_with_the_setting(kernel, live_server):
    km, kc = kernel()
    run(kc, '%config AICloudMagics.on_interrupt = "cancel"')
    text, state = run(kc, SLEEPER, until="tick 1")
    job_id = text.split("aicloud: job ")[1].split()[0]
    km.interrupt_kernel()
    assert f"interrupted: cancelled job {job_id}" in drain(kc)
    with live_server.api() as api:
        wait_for(lambda: api.get(f"jobs/{job_id}").json()["status"] == "cancelled", timeout=20)


def widget_buttons(kc, msg_id: str, timeout: float = 60) -> tuple[dict, str]:
    """The comm ids of the buttons the running cell displayed, by description, and its text."""
    buttons, text = {}, ""
    for msg in iopub(kc, msg_id, timeout):
        content = msg["content"]
        if msg["msg_type"] == "comm_open":
            state = content["data"].get("state", {})
            if state.get("_model_name") == "ButtonModel":
                buttons[state["description"]] = content["comm_id"]
        elif msg["msg_type"] == "stream":
            text += content["text"]
        if "Cancel" in buttons and "tick 2" in text:
            break
    return buttons, text


def click_cancel_while_running(kc, live_server, msg_id: str) -> tuple[str, dict]:
    """Wait for the running cell's monitor, click its Cancel button (the comm message a
    browser sends), and wait for the job to be cancelled; the job id and the cell's reply."""
    buttons, text = widget_buttons(kc, msg_id)
    assert "Cancel" in buttons and "tick 2" in text, (buttons, text)
    job_id = text.split("aicloud: job ")[1].split()[0]
    click = {"method": "custom", "content": {"event": "click"}}
    kc.shell_channel.send(kc.session.msg("comm_msg", {"comm_id": buttons["Cancel"], "data": click}))
    with live_server.api() as api:
        wait_for(lambda: api.get(f"jobs/{job_id}").json()["status"] == "cancelled", timeout=30)
    reply = kc.get_shell_msg(timeout=60)  # the cell ends: the job did not succeed
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=60)
    return job_id, reply


def test_cancel_button_works_while_the_cell_waits(kernel, live_server):
    """The monitor's Cancel button is a comm message to the kernel; a waiting cell awaits in a
    thread, so the kernel dispatches the click while the cell still runs."""
    km, kc = kernel()
    run(kc, '%config AICloudMagics.widgets = "on"')
    job_id, reply = click_cancel_while_running(kc, live_server, kc.execute(SLEEPER))
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "JobFailed"
    after, _ = run(kc, "print(_aicloud_last_job)", output=True)
    assert after.strip() == job_id


def test_waiting_cells_expand_variables_and_nested_runs_stay_synchronous(kernel, live_server):
    """``{name}`` expands in the cell's namespace (not the worker thread's); a magic run
    inside another cell (``%time``, ``%%capture``) is not rewritten and works as before."""
    km, kc = kernel()
    run(kc, "name = 'echo-var'")
    text, _ = run(kc, "%aicloud submit --name {name} --wait -- echo hi")
    assert "hi" in text, text
    text, _ = run(kc, "%time %aicloud submit --name timed --wait -- echo hi-timed")
    assert "hi-timed" in text and "Wall time" in text, text
    text, _ = run(kc, "%%capture captured\n%aicloud submit --name quiet --wait -- echo hush")
    assert "hush" not in text and "Error" not in text, text
    text, _ = run(kc, "print('hush' in captured.stdout)")
    assert text.strip() == "True"
    with live_server.api() as api:
        jobs = api.get("jobs", params={"limit": 3}).json()["jobs"]
    assert sorted((j["name"], j["status"]) for j in jobs) == [
        ("echo-var", "succeeded"),
        ("quiet", "succeeded"),
        ("timed", "succeeded"),
    ]


def test_launch_async_keeps_the_cancel_button_live(kernel, live_server):
    """``await aicloud.launch_async(fn)``: the function-mode twin of an awaiting cell."""
    km, kc = kernel()
    run(kc, '%config AICloudMagics.widgets = "on"')
    run(
        kc,
        "import aicloud, time\n"
        "def ticker():\n"
        "    for i in range(600):\n"
        "        print('tick', i, flush=True)\n"
        "        time.sleep(0.2)\n"
        "    return 'never'",
    )
    code = "result = await aicloud.launch_async(ticker, nproc=1, framework='none')"
    _, reply = click_cancel_while_running(kc, live_server, kc.execute(code))
    assert (reply["content"]["status"], reply["content"]["ename"]) == ("error", "JobFailed")
