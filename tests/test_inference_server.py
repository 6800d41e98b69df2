"""The v2 model server as its own process: every route through a real HTTP client, predictions
equal to the model's in-process output, bad input answered 4xx while the server keeps serving,
and dynamic batching of concurrent requests."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from aicloud.inference.v2client import V2Client, V2Error
from tests.conftest import wait_for
from tests.inference_models import rows, save_torch_models, tiny_net, torch_outputs


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    save_torch_models(folder)
    return folder


def start_server(folder, *args: str) -> tuple[subprocess.Popen, str]:
    endpoint = folder / f"endpoint-{len(list(folder.glob('endpoint-*')))}.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "aicloud.inference.server", *args, f"--endpoint-file={endpoint}"],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: endpoint.exists() or process.poll() is not None, timeout=60)
    except TimeoutError:
        process.kill()
        raise
    if process.poll() is not None:
        raise RuntimeError(process.stdout.read().decode())
    return process, json.loads(endpoint.read_text())["url"]


@pytest.fixture(scope="module")
def server(model_dir):
    process, url = start_server(
        model_dir, "--model=tiny.pt", "--name=tiny", "--input-shape=4", "--max-wait-ms=20"
    )
    yield url
    process.terminate()
    process.wait(timeout=20)


def infer_body(x: np.ndarray, **extra) -> dict:
    tensor = {"name": "input", "shape": list(x.shape), "datatype": "FP32"}
    return {"inputs": [{**tensor, "data": x.reshape(-1).tolist(), **extra}]}


def test_every_route(server, model_dir):
    with httpx.Client(base_url=server, timeout=30) as http:
        assert http.get("/v2/health/live").json() == {"live": True}
        assert http.get("/v2/health/ready").json() == {"ready": True}
        assert http.get("/v2").json()["name"] == "aicloud"
        meta = http.get("/v2/models/tiny").json()
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
        assert meta["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 2]}]
        assert meta["platform"] == "pytorch_torchscript" and meta["versions"] == ["1"]
        assert http.get("/v2/models/tiny/versions/1").json() == meta
        assert http.get("/v2/models/tiny/ready").json() == {"name": "tiny", "ready": True}
        assert http.get("/v2/models/tiny/versions/1/ready").status_code == 200
        x = rows(3)
        for path in ("/v2/models/tiny/infer", "/v2/models/tiny/versions/1/infer"):
            r = http.post(path, json={**infer_body(x), "id": "req-1"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["id"] == "req-1" and body["model_name"] == "tiny"
            (out,) = body["outputs"]
            assert out["name"] == "output" and out["datatype"] == "FP32" and out["shape"] == [3, 2]
            got = np.asarray(out["data"], dtype=np.float32).reshape(3, 2)
            assert np.array_equal(got, torch_outputs(tiny_net(model_dir), x))
        (stats,) = http.get("/v2/models/tiny/stats").json()["model_stats"]
        assert stats["inference_stats"]["success"]["count"] >= 2
        assert stats["inference_count"] >= 6


def test_client_predictions_equal_the_model_in_process(server, model_dir):
    model = tiny_net(model_dir)
    with V2Client(server) as v2:
        assert v2.live() and v2.ready() and v2.model_ready("tiny")
        for n in (1, 7, 64):
            x = rows(n, seed=n)
            assert np.array_equal(v2.infer("tiny", x), torch_outputs(model, x))


BAD_REQUESTS = [
    ("malformed JSON", "/v2/models/tiny/infer", b"{not json", 400, "malformed JSON"),
    ("not an object", "/v2/models/tiny/infer", b"[1]", 400, "body: must be a JSON object"),
    ("no inputs", "/v2/models/tiny/infer", b"{}", 400, "inputs: must be a list"),
    ("unknown model", "/v2/models/nope/infer", None, 404, "model 'nope' not found"),
    ("unknown version", "/v2/models/tiny/versions/9/infer", None, 404, "no version '9'"),
    ("unknown route", "/v2/nothing", None, 404, "no route"),
]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_requests(server, path, body, status, message):
    content = body if body is not None else json.dumps(infer_body(rows(1))).encode()
    r = httpx.post(server + path, content=content, timeout=30)
    assert r.status_code == status
    assert message in r.json()["error"]


BAD_TENSORS = [
    ("wrong shape", {"shape": [1, 3], "data": [1.0, 2.0, 3.0]}, "the model takes [-1, 4]"),
    ("wrong dtype", {"datatype": "INT64", "data": [1, 2, 3, 4]}, "takes FP32, got INT64"),
    ("unknown dtype", {"datatype": "COMPLEX"}, "'COMPLEX' is not supported"),
    ("strings as FP32", {"data": ["a", "b", "c", "d"]}, "do not fit FP32"),
    ("too few values", {"data": [1.0, 2.0]}, "2 values for shape [1, 4]"),
    ("bad shape", {"shape": [-1, 4]}, "shape: must be a list of non-negative"),
    ("unknown input", {"name": "x"}, "unknown input 'x'"),
    ("ragged data", {"data": [[1.0, 2.0], [3.0]]}, "inputs[0].data"),
]


@pytest.mark.parametrize(
    ("change", "message"), [c[1:] for c in BAD_TENSORS], ids=[c[0] for c in BAD_TENSORS]
)
def test_bad_tensors_are_400_and_the_server_keeps_serving(server, model_dir, change, message):
    body = infer_body(rows(1))
    body["inputs"][0].update(change)
    with httpx.Client(base_url=server, timeout=30) as http:
        r = http.post("/v2/models/tiny/infer", json=body)
        assert r.status_code == 400, r.text
        assert message in r.json()["error"]
        x = rows(2)
        ok = http.post("/v2/models/tiny/infer", json=infer_body(x))
        assert ok.status_code == 200
    with V2Client(server) as v2:
        assert np.array_equal(v2.infer("tiny", x), torch_outputs(tiny_net(model_dir), x))


def test_unknown_output_and_wrong_method(server):
    body = {**infer_body(rows(1)), "outputs": [{"name": "logits"}]}
    r = httpx.post(server + "/v2/models/tiny/infer", json=body)
    assert r.status_code == 400 and "unknown output 'logits'" in r.json()["error"]
    r = httpx.delete(server + "/v2/models/tiny")
    assert r.status_code == 405 and r.json()["error"]


def concurrent_infer(url: str, model: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
    with V2Client(url) as v2, ThreadPoolExecutor(len(inputs)) as pool:
        return list(pool.map(lambda x: v2.infer(model, x), inputs))


def test_dynamic_batching_groups_concurrent_requests(server, model_dir):
    with V2Client(server) as v2:
        before = v2.model_statistics("tiny")
        inputs = [rows(1, seed=i) for i in range(16)]
        outputs = concurrent_infer(server, "tiny", inputs)
        after = v2.model_statistics("tiny")
    assert after["inference_count"] - before["inference_count"] == 16
    assert after["execution_count"] - before["execution_count"] < 16  # batched
    assert max(b["batch_size"] for b in after["batch_stats"]) > 1
    model = tiny_net(model_dir)
    # A batch runs through other GEMM kernels than one row: equal to float rounding, not bits.
    for x, y in zip(inputs, outputs, strict=True):
        np.testing.assert_allclose(y, torch_outputs(model, x), rtol=1e-5, atol=1e-6)


def test_batching_off_and_export_model_without_declared_shape(model_dir):
    process, url = start_server(model_dir, "--model=tiny.pt2", "--name=tiny2", "--max-batch-size=1")
    try:
        inputs = [rows(1, seed=i) for i in range(6)]
        outputs = concurrent_infer(url, "tiny2", inputs)
        model = tiny_net(model_dir)
        for x, y in zip(inputs, outputs, strict=True):
            assert np.array_equal(y, torch_outputs(model, x))  # each its own model call
        (stats,) = httpx.get(url + "/v2/models/tiny2/stats").json()["model_stats"]
        assert stats["execution_count"] == stats["inference_count"] == 6
        assert stats["inference_stats"]["success"]["count"] == 6
        meta = httpx.get(url + "/v2/models/tiny2").json()
        assert meta["inputs"][0]["shape"] == [-1, 4]  # learnt from the exported program
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_model_errors_are_400_when_the_shape_is_not_declared(model_dir):
    with pytest.raises(RuntimeError, match="inference.model: cannot load torchscript model"):
        start_server(model_dir, "--model=tiny_state.pt", "--format=torchscript", "--name=bad")
    # A model whose row shape is unknown: the model itself refuses the input.
    process, url = start_server(model_dir, "--model=tiny.pt", "--name=free")
    try:
        with V2Client(url) as v2:
            with pytest.raises(V2Error) as e:
                v2.infer("free", rows(2)[:, :3])
            assert e.value.status == 400 and "the model cannot run on this input" in e.value.message
            x = rows(2)
            assert np.array_equal(v2.infer("free", x), torch_outputs(tiny_net(model_dir), x))
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_worker_processes_share_the_port_and_their_metrics(model_dir):
    import psutil

    process, url = start_server(
        model_dir, "--model=tiny.pt", "--name=multi", "--input-shape=4", "--workers=2"
    )
    try:
        (worker,) = psutil.Process(process.pid).children()
        assert "--worker-index=1" in worker.cmdline()
        x = rows(2)
        expected = torch_outputs(tiny_net(model_dir), x)
        for _ in range(12):  # a connection each: the kernel spreads them over both processes
            r = httpx.post(f"{url}/v2/models/multi/infer", json=infer_body(x), timeout=30)
            assert r.status_code == 200
            got = np.asarray(r.json()["outputs"][0]["data"], dtype=np.float32).reshape(2, 2)
            assert np.array_equal(got, expected)
        text = httpx.get(f"{url}/metrics").text
        line = 'aicloud_inference_requests_total{code="200",model="multi"}'
        assert any(row.startswith(line) and row.endswith(" 12.0") for row in text.splitlines())
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE
