"""The %aicloud magics in notebooks executed by real kernels (nbclient) against a real service."""

from __future__ import annotations

import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from tests.notebook_files import write_report


@pytest.fixture
def kernel_env(live_server, monkeypatch):
    """The kernel finds the service through AICLOUD_URL/AICLOUD_TOKEN, as jobs' kernels do, and
    knows its notebook through JPY_SESSION_NAME, as a Jupyter server tells it."""
    monkeypatch.setenv("AICLOUD_URL", live_server.url)
    monkeypatch.setenv("AICLOUD_TOKEN", live_server.token)
    monkeypatch.setenv("JPY_SESSION_NAME", str(live_server.root_dir / "magics.ipynb"))
    monkeypatch.delenv("AICLOUD_WIDGETS", raising=False)
    return live_server


def execute(cells: list[str], cwd, allow_errors: bool = False, timeout: int = 240):
    """Run the cells in a fresh python3 kernel; return the executed notebook."""
    notebook = new_notebook(cells=[new_code_cell(source) for source in cells])
    NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=timeout,
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(cwd)}},
    ).execute()
    return notebook


def text_of(cell) -> str:
    """Everything a cell printed, displayed or raised, as text."""
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif output["output_type"] in ("display_data", "execute_result"):
            parts.append(output["data"].get("text/plain", ""))
        elif output["output_type"] == "error":
            parts.append("\n".join(output["traceback"]))
    return "".join(parts)


def errors_of(cell) -> list[dict]:
    return [o for o in cell.get("outputs", []) if o["output_type"] == "error"]


TRAIN_CELL = """%%aicloud train --procs 2 --push scale --name cell-demo
import os, time
from aicloud import runtime
for step in range(1, 4):
    print("step", step, "value", helper(scale), flush=True)
    runtime.report(step=step, total=3, loss=1.0 / step)
    time.sleep(0.05)"""


def test_train_cell_and_line_magics(kernel_env):
    server = kernel_env
    write_report(server.root_dir, "report.ipynb")
    nb = execute(
        [
            "%load_ext aicloud",
            "%aicloud status",
            "%aicloud resources",
            "import math\ndef helper(x):\n    return int(x * math.floor(2.5))",
            "scale = 3\nprint('kernel only')",
            TRAIN_CELL,
            "%aicloud jobs --all --here",
            "%aicloud show {_aicloud_last_job}",
            "%aicloud show {_aicloud_last_job} --script",
            "%aicloud logs {_aicloud_last_job} --rank 1",
            "%aicloud attach {_aicloud_last_job}",
            '%aicloud submit --name echo --wait -- sh -c "echo hello-submit"',
            "%aicloud logs {_aicloud_last_job} -f",
            "%aicloud run report.ipynb -p region us -p days 3",
            '%aicloud schedule report.ipynb --cron "0 6 * * 1-5" --tz Europe/Berlin --name daily',
            "%aicloud schedule list",
            "%aicloud jobs --help",
            "%aicloud --help",
        ],
        server.root_dir,
    )
    out = [text_of(cell) for cell in nb.cells]
    assert not [errors_of(c) for c in nb.cells if errors_of(c)]
    assert "(standalone)" in out[1] and "backends: local" in out[1]
    assert "accelerators:" in out[1]
    assert "cpu:" in out[2] and "memory:" in out[2]

    train = out[5]
    assert "submitted (torch, 1 node x 2 procs)" in train
    for rank in (0, 1):
        for step in (1, 2, 3):
            assert f"[rank{rank}]:step {step} value 6" in train
    assert "progress 3/3 (100%) loss=0.3333" in train
    assert "succeeded" in train

    assert "cell-demo" in out[6] and "succeeded" in out[6]
    assert "origin:" in out[7] and "magics.ipynb" in out[7]
    script = out[8]
    assert "def helper(x):" in script and "import math" in script
    assert "print('kernel only')" not in script and "scale = 3" not in script
    assert "# -- pushed variables: scale (cloudpickle, HMAC-signed) --" in script
    assert "<signed payload>" in script
    assert 'print("step", step, "value", helper(scale), flush=True)' in script
    assert "[rank1]:step 2 value 6" in out[9] and "[rank0]:" not in out[9]
    assert "attached to job" in out[10] and "[rank0]:step 3 value 6" in out[10]
    assert "hello-submit" not in out[11] or "succeeded" in out[11]
    assert "hello-submit" in out[12]

    run = out[13]
    assert "region us days 3 int" in run
    assert "aicloud: output" in run and ".ipynb" in run
    assert "succeeded" in run
    assert "next run" in out[14]
    assert "daily" in out[15] and "Europe/Berlin" in out[15]
    assert "--here" in out[16] and "--all" in out[16]
    assert "%%aicloud train" in out[17] and "%aicloud attach" in out[17]

    with server.api() as api:
        jobs = api.get("jobs", params={"notebook": str(server.root_dir / "magics.ipynb")}).json()
    names = {job["name"] for job in jobs["jobs"]}
    assert {"cell-demo", "echo"} <= names
    (cell_job,) = [job for job in jobs["jobs"] if job["name"] == "cell-demo"]
    assert cell_job["spec"]["env"]["JOB_PAYLOAD_KEY"] == "***"  # the signing key never shows


def test_function_mode(kernel_env):
    nb = execute(
        [
            "import aicloud",
            "def square(x):\n    import os\n    print('working on', x, flush=True)\n"
            "    return x * x + int(os.environ['RANK'])",
            "print('result', aicloud.launch(square, 7, nproc=2))",
            "def boom():\n    raise ValueError('remote boom')",
            "try:\n    aicloud.launch(boom, nproc=1)\nexcept ValueError as e:\n"
            "    print('caught', e)\n    print(e.__notes__[0])",
        ],
        kernel_env.root_dir,
    )
    out = [text_of(cell) for cell in nb.cells]
    assert "[rank0]:working on 7" in out[2] and "[rank1]:working on 7" in out[2]
    assert "result 49" in out[2]  # rank 0's value, not rank 1's 50
    assert "caught remote boom" in out[4]
    assert "Remote traceback (rank 0):" in out[4] and "in boom" in out[4]


def test_tampered_payload_is_refused(kernel_env):
    nb = execute(
        [
            "from aicloud.magics.function import call_spec\n"
            "from aicloud.client import AICloudClient\n"
            "spec = call_spec(print, ('hi',), {}, nproc=1, nodes=1, framework='none', gpus=0,"
            " name='tampered', timeout=None, max_restarts=0, origin=None)\n"
            "import base64, zlib, cloudpickle, re\n"
            "evil = base64.b64encode(zlib.compress(cloudpickle.dumps((print, ('evil',), {}))))"
            ".decode()\n"
            "spec['source'] = re.sub(r\"'data': '[^']*'\", \"'data': '\" + evil + \"'\","
            " spec['source'])\n"
            "client = AICloudClient()\n"
            "job = client.wait(client.submit(spec)['id'])\n"
            "log, _ = client.logs(job['id'])\n"
            "print(job['status'], log.decode())",
        ],
        kernel_env.root_dir,
    )
    out = text_of(nb.cells[0])
    assert out.startswith("failed")
    assert "signature does not match" in out and "evil" not in out.replace("'evil'", "")


def test_widgets_render_without_errors_when_on(kernel_env, monkeypatch):
    monkeypatch.setenv("AICLOUD_WIDGETS", "on")
    nb = execute(
        [
            "%load_ext aicloud",
            "%%aicloud train --framework none --name widget-job\n"
            "from aicloud import runtime\nprint('hello from the worker')\n"
            "runtime.report(step=2, total=2, acc=0.9)",
        ],
        kernel_env.root_dir,
    )
    outputs = nb.cells[1]["outputs"]
    assert not errors_of(nb.cells[1])
    views = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert views, outputs
    assert "hello from the worker" in text_of(nb.cells[1])
    # nbclient keeps the widget state: the monitor ended showing success and full progress.
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    values = [m["state"] for m in state.values()]
    assert any(v.get("value") == 1.0 and v.get("bar_style") == "success" for v in values)
    assert any("succeeded" in str(v.get("value")) for v in values)
    assert any(v.get("description") == "Cancel" and v.get("disabled") for v in values)


def test_failed_job_fails_the_cell_in_one_line(kernel_env):
    nb = execute(
        [
            "%load_ext aicloud",
            "%%aicloud train --framework none --name doomed\nprint('about to fail')\n"
            "raise SystemExit(3)",
            "print('not reached')",
        ],
        kernel_env.root_dir,
        allow_errors=True,
    )
    (error,) = errors_of(nb.cells[1])
    assert error["traceback"][0].startswith("aicloud: job job-")
    assert "failed: exited with code 3" in error["traceback"][0]
    assert len(error["traceback"]) == 1
    assert "about to fail" in text_of(nb.cells[1])
