"""Bad input to the magics: one clear line each, no traceback wall, nothing submitted."""

from __future__ import annotations

from tests.test_magics import errors_of, execute


def one_line_errors(nb) -> list[str]:
    """The single traceback line of each failing cell (asserting it is a single line)."""
    lines = []
    for cell in nb.cells:
        errors = errors_of(cell)
        if errors:
            (error,) = errors
            assert len(error["traceback"]) == 1, error["traceback"]
            lines.append(error["traceback"][0])
    return lines


def test_bad_input_is_one_line(live_server, monkeypatch):
    monkeypatch.setenv("AICLOUD_URL", live_server.url)
    monkeypatch.setenv("AICLOUD_TOKEN", live_server.token)
    nb = execute(
        [
            "%load_ext aicloud",
            "%aicloud bogus",
            "%aicloud jobs --bad",
            "%aicloud submit --nodes x -- true",
            "%%aicloud train --procs x\npass",
            "%%aicloud train --ranks 5 --procs 2\npass",
            "%%aicloud train\n%time x = 1",
            "import threading\nlock = threading.Lock()",
            "%%aicloud train --push lock\nprint(lock)",
            "%%aicloud train --push missing\npass",
            "%aicloud show job-nope",
            "%aicloud attach job-nope",
            "%aicloud train",
            "%aicloud run missing.ipynb",
            "%aicloud serve",
            "%aicloud predict nosuch [[1.0,2.0]]",
            "%aicloud infer model.pt2 --data none.npy --procs 0",
        ],
        live_server.root_dir,
        allow_errors=True,
    )
    lines = one_line_errors(nb)
    assert lines == [
        "aicloud: unknown subcommand 'bogus'; known: attach, cancel, infer, jobs, logs, predict,"
        " rerun, resources, run, schedule, serve, show, status, submit, train"
        " (see %aicloud --help)",
        "aicloud: jobs: unrecognized arguments: --bad",
        "aicloud: submit: argument --nodes: expected N or MIN:MAX, got 'x'",
        "aicloud: train: argument --procs: invalid int value: 'x'",
        "aicloud: train: --ranks 5: the job has ranks 0-1",
        "aicloud: train: line 1 uses IPython syntax ('%time x = 1'); workers run plain Python,"
        " so move it to another cell",
        "aicloud: train: --push lock: a lock cannot be pickled (TypeError: cannot pickle"
        " '_thread.lock' object); create it inside the cell instead",
        "aicloud: train: --push missing: no such variable in this session",
        "aicloud: job 'job-nope' not found (HTTP 404)",
        "aicloud: job 'job-nope' not found (HTTP 404)",
        "aicloud: train is a cell magic: put %%aicloud train on a cell's first line",
        *lines[-4:],
    ]
    run, serve, predict, infer = lines[-4:]
    assert run.startswith("aicloud: ") and "missing.ipynb" in run
    assert serve == "aicloud: serve: the following arguments are required: MODEL"
    assert predict.startswith("aicloud: predict: ") and "nosuch" in predict
    assert infer.startswith("aicloud: infer") and "procs" in infer
    with live_server.api() as api:
        assert api.get("jobs").json()["total"] == 0  # nothing started


def test_no_service(tmp_path, monkeypatch):
    monkeypatch.delenv("AICLOUD_URL", raising=False)
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    nb = execute(["%load_ext aicloud", "%aicloud status"], tmp_path, allow_errors=True)
    monkeypatch.setenv("AICLOUD_URL", "http://127.0.0.1:9/")
    unreachable = execute(["%load_ext aicloud", "%aicloud jobs"], tmp_path, allow_errors=True)
    (missing,) = one_line_errors(nb)
    assert missing == (
        "aicloud: no aicloud service found: start one with `make up` (or `jupyter lab`), "
        "or set AICLOUD_URL and AICLOUD_TOKEN"
    )
    (down,) = one_line_errors(unreachable)
    assert down.startswith("aicloud: cannot reach the aicloud service at http://127.0.0.1:9/")
    assert down.endswith(
        "start one with `jupyter lab` (or `make up`), or set AICLOUD_URL and AICLOUD_TOKEN"
    )
