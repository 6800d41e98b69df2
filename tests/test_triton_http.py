"""A serve job through a client no one here wrote: Triton's ``tritonclient.http``.

One real aicloud server starts two real serve jobs (module-scoped): ``tiny`` (batching on)
and ``slow`` (a model that sleeps, in a thread of its own, with a queue of 2). Triton's
client makes its default calls (binary tensor data both ways), JSON calls, and reads
metadata, config, statistics and the repository index; the answers equal the model run in
this process. Bad input gets a 4xx naming the field, a missing token 401, another job's token
403, and a full queue 503 while the server keeps serving.
"""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from aicloud.client import AICloudClient, Connection
from aicloud.inference import api
from tests.inference_models import cancel_active_jobs, rows, save_torch_models, tiny_net
from tests.inference_models import torch_outputs as model_outputs

TOKEN_FILE = "serving.token"


@pytest.fixture(scope="module")
def jobs(module_live_server):
    server = module_live_server
    save_torch_models(server.root_dir)
    client = AICloudClient(Connection(server.url, server.token, "test"))
    slow_options = {
        "model_class": "tiny_model:TinyNet",
        "model_kwargs": {"delay": 0.3},
        "input_shape": [4],
        "max_batch_size": 1,
        "max_queue": 2,
        "model_thread": True,
    }
    started = [
        api.serve("tiny.pt", "tiny", input_shape=[4], max_wait_ms=20, wait=False, client=client),
        api.serve("tiny_state.pt", "slow", wait=False, client=client, **slow_options),
    ]
    try:
        endpoints = {e.model: e for e in (api.endpoint(j["id"], client, 120) for j in started)}
        yield server, endpoints
    finally:
        cancel_active_jobs(server)
        client.close()


@pytest.fixture(scope="module")
def tiny(jobs):
    return jobs[1]["tiny"]


def triton_client(endpoint) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(endpoint.url.removeprefix("http://"))


def auth(token: str) -> dict[str, str]:
    """Fresh headers each call: tritonclient adds its own to the dict it is given."""
    return {"Authorization": f"token {token}"}


def serving_token(server, endpoint) -> str:
    return (Path(server.data_dir) / "runs" / endpoint.job_id / TOKEN_FILE).read_text()


def model(server):
    return tiny_net(server.root_dir)


def test_default_binary_calls_equal_the_model_in_process(jobs, tiny):
    server = jobs[0]
    client = triton_client(tiny)
    for n in (1, 5, 64):
        x = rows(n, seed=n)
        tensor = triton.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)  # binary_data=True: the client's default
        result = client.infer("tiny", [tensor], request_id=f"r{n}", headers=auth(tiny.token))
        output = result.get_output("output")
        assert output["parameters"]["binary_data_size"] == n * 2 * 4  # sent back binary
        assert result.get_response()["id"] == f"r{n}"
        np.testing.assert_allclose(
            result.as_numpy("output"), model_outputs(model(server), x), rtol=1e-5, atol=1e-6
        )


def test_json_calls_and_mixed_ones(jobs, tiny):
    server = jobs[0]
    client = triton_client(tiny)
    x = rows(3, seed=7)
    expected = model_outputs(model(server), x)
    for binary_in, binary_out in ((False, False), (False, True), (True, False)):
        tensor = triton.InferInput("input", [3, 4], "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary_in)
        wanted = [triton.InferRequestedOutput("output", binary_data=binary_out)]
        result = client.infer("tiny", [tensor], outputs=wanted, headers=auth(tiny.token))
        (output,) = result.get_response()["outputs"]
        assert ("data" in output) is not binary_out
        np.testing.assert_allclose(result.as_numpy("output"), expected, rtol=1e-5, atol=1e-6)


def test_metadata_config_and_repository_index(tiny):
    client = triton_client(tiny)
    headers = auth(tiny.token)
    assert client.is_server_live() and client.is_server_ready()  # the probes need no token
    assert client.is_model_ready("tiny", headers=auth(tiny.token))
    server_metadata = client.get_server_metadata(headers=auth(tiny.token))
    assert {"binary_tensor_data", "statistics", "model_configuration"} <= set(
        server_metadata["extensions"]
    )
    metadata = client.get_model_metadata("tiny", headers=headers)
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert metadata["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 2]}]
    config = client.get_model_config("tiny", headers=auth(tiny.token))
    assert config["name"] == "tiny" and config["platform"] == "pytorch_torchscript"
    assert config["max_batch_size"] == 32
    assert config["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [4]}]
    assert config["output"] == [{"name": "output", "data_type": "TYPE_FP32", "dims": [2]}]
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 20_000
    assert client.get_model_config("tiny", "1", headers=auth(tiny.token)) == config
    index = client.get_model_repository_index(headers=auth(tiny.token))
    assert index == [{"name": "tiny", "version": "1", "state": "READY", "reason": ""}]


def test_statistics_grow_by_the_calls_made(tiny):
    client = triton_client(tiny)
    (before,) = client.get_inference_statistics("tiny", headers=auth(tiny.token))["model_stats"]
    for seed in range(3):
        tensor = triton.InferInput("input", [2, 4], "FP32")
        tensor.set_data_from_numpy(rows(2, seed=seed))
        client.infer("tiny", [tensor], headers=auth(tiny.token))
    stats = client.get_inference_statistics("tiny", "1", headers=auth(tiny.token))
    (after,) = stats["model_stats"]
    assert after["name"] == "tiny" and after["version"] == "1"
    assert after["inference_count"] - before["inference_count"] == 6
    assert after["execution_count"] - before["execution_count"] == 3  # one client: no waiting
    success = after["inference_stats"]["success"]
    assert success["count"] - before["inference_stats"]["success"]["count"] == 3
    assert success["ns"] > before["inference_stats"]["success"]["ns"]
    assert any(
        b["batch_size"] == 2 and b["compute_infer"]["count"] >= 3 for b in after["batch_stats"]
    )


BAD_INPUTS = [
    ("wrong shape", "FP32", rows(1)[:, :3], "inputs[0].shape: the model takes [-1, 4], got [1, 3]"),
    ("wrong datatype", "INT64", np.ones((1, 4), np.int64), "takes FP32, got INT64"),
    ("BYTES", "BYTES", np.array([[b"a", b"b", b"c", b"d"]], dtype=object), "got BYTES"),
]


@pytest.mark.parametrize(
    ("datatype", "array", "message"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_bad_inputs_are_400_and_the_server_keeps_serving(
    jobs, tiny, datatype, array, message, binary
):
    client = triton_client(tiny)
    tensor = triton.InferInput("input", list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    with pytest.raises(InferenceServerException) as e:
        client.infer("tiny", [tensor], headers=auth(tiny.token))
    assert e.value.status() == "400" and message in e.value.message()
    x = rows(2)
    good = triton.InferInput("input", [2, 4], "FP32")
    good.set_data_from_numpy(x)
    result = client.infer("tiny", [good], headers=auth(tiny.token))
    np.testing.assert_allclose(
        result.as_numpy("output"), model_outputs(model(jobs[0]), x), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("[1e39, 0, 0, 0]", "1e+39 overflows FP32"),
        ("[NaN, 0, 0, 0]", "non-finite values (NaN, Infinity) are not JSON"),
        ("[-Infinity, 0, 0, 0]", "non-finite values"),
    ],
)
def test_values_that_json_or_fp32_cannot_hold_are_400(tiny, data, message):
    body = '{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": %s}]}'
    r = httpx.post(
        f"{tiny.url}/v2/models/tiny/infer", content=body % data, headers=auth(tiny.token)
    )
    assert r.status_code == 400 and message in r.json()["error"]


def test_tokens_missing_wrong_and_of_another_job(jobs, tiny):
    server, endpoints = jobs
    client = triton_client(tiny)
    with pytest.raises(InferenceServerException) as e:
        client.get_model_metadata("tiny")
    assert e.value.status() == "401" and "authentication required" in e.value.message()
    other = serving_token(server, endpoints["slow"])
    for token in (other, "not-a-token"):
        with pytest.raises(InferenceServerException) as e:
            client.get_model_metadata("tiny", headers=auth(token))
        assert e.value.status() == "403"
    tensor = triton.InferInput("input", [1, 4], "FP32")
    tensor.set_data_from_numpy(rows(1))
    with pytest.raises(InferenceServerException) as e:
        client.infer("tiny", [tensor], headers={"Authorization": f"Bearer {other}"})
    assert e.value.status() == "403"
    # The job's own serving token works, as Bearer too; it is readable by its owner only,
    # not among the job's outputs, and not in its log.
    own = serving_token(server, tiny)
    assert client.get_model_metadata("tiny", headers={"Authorization": f"Bearer {own}"})
    path = Path(server.data_dir) / "runs" / tiny.job_id / TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with server.api() as http:
        outputs = http.get(f"jobs/{tiny.job_id}/outputs").json()
        assert TOKEN_FILE not in str(outputs)
        logs = http.get(f"jobs/{tiny.job_id}/logs").text
        assert own not in logs and "serving model 'tiny'" in logs


def test_metrics_count_requests_and_batch_sizes(jobs, tiny):
    x = rows(1)
    with ThreadPoolExecutor(8) as pool:  # concurrent: some model calls batch several rows
        list(pool.map(lambda _: tiny.predict(x), range(16)))
    r = httpx.get(f"{tiny.url}/metrics")
    assert r.status_code == 401
    r = httpx.get(f"{tiny.url}/metrics", headers=auth(serving_token(jobs[0], tiny)))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    count = next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith('aicloud_inference_requests_total{code="200",model="tiny"}')
    )
    assert count >= 16
    assert 'aicloud_inference_request_duration_seconds_bucket{le="+Inf",model="tiny"}' in text
    assert 'aicloud_inference_batch_size_bucket{le="1.0",model="tiny"}' in text
    assert 'aicloud_inference_queue_depth{model="tiny"}' in text


def test_a_full_queue_answers_503_and_the_server_keeps_serving(jobs):
    server, endpoints = jobs
    slow = endpoints["slow"]
    x = rows(1)

    def call(_):
        body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                            "data": x.reshape(-1).tolist()}]}  # fmt: skip
        return httpx.post(
            f"{slow.url}/v2/models/slow/infer", json=body, headers=auth(slow.token), timeout=60
        )

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(call, range(6)))
    codes = sorted(r.status_code for r in answers)
    assert codes.count(200) >= 2 and 503 in codes, codes
    busy = next(r for r in answers if r.status_code == 503)
    assert busy.headers["Retry-After"] == "1" and "is busy" in busy.json()["error"]
    np.testing.assert_allclose(
        slow.predict(x), model_outputs(model(server), x), rtol=1e-5, atol=1e-6
    )
