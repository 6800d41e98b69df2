"""Inference building blocks without a server: the spec, model loading in every format, the
data readers, sharding, and the dynamic batcher."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from pydantic import ValidationError

from aicloud.inference.batching import DynamicBatcher
from aicloud.inference.data import DataError, count_rows, read_rows
from aicloud.inference.loading import ModelLoadError, load_model
from aicloud.inference.options import InferenceOptions
from aicloud.inference.runner import score
from aicloud.inference.sharding import expand_data, plan_shards, shards_for
from aicloud.spec import JobSpec
from tests.inference_models import rows, save_tf_models, save_torch_models, torch_outputs

# -- the spec ------------------------------------------------------------------------------------

BAD_SPECS = [
    ({"kind": "infer", "inference": {"model": "m.pt"}}, "inference.data: an infer job needs"),
    ({"kind": "serve", "script": "x.py"}, "kind: no launcher for kind 'serve' without inference"),
    ({"kind": "command", "inference": {"model": "m.pt"}}, "inference is only for kinds"),
    (
        {"kind": "serve", "inference": {"model": "m.pt", "data": ["x.npy"]}},
        "inference.data: not used by kind 'serve'",
    ),
    (
        {"kind": "infer", "inference": {"model": "m.pt", "data": ["x.npy"], "port": 9000}},
        "inference.port: not used by kind 'infer'",
    ),
    ({"kind": "serve", "inference": {"model": "s3://b/m.pt"}}, "remote URLs are not supported"),
    ({"kind": "serve", "inference": {"model": "/etc/passwd"}}, "must be relative"),
    ({"kind": "serve", "inference": {"model": "m.pt", "format": "onnx"}}, "inference.format"),
    (
        {"kind": "serve", "inference": {"model": "m.pt", "format": "state_dict"}},
        "model_class is required",
    ),
    (
        {"kind": "serve", "inference": {"model": "m.pt", "model_class": "not a class"}},
        "inference.model_class",
    ),
    ({"kind": "serve", "inference": {"model": "m.pt", "input_shape": [0]}}, "input_shape"),
    ({"kind": "serve", "inference": {"model": "m.pt", "max_batch_size": 0}}, "max_batch_size"),
    ({"kind": "serve", "inference": {"model": "m.pt", "colour": 1}}, "inference.colour"),
    ({"kind": "serve", "inference": {"model": "m.pt", "datatype": "STR"}}, "inference.datatype"),
]


@pytest.mark.parametrize(("body", "message"), BAD_SPECS, ids=[m for _, m in BAD_SPECS])
def test_bad_inference_specs_name_the_field(body, message):
    with pytest.raises(ValidationError) as e:
        JobSpec.model_validate_json(json.dumps(body), strict=True)
    text = "; ".join(
        ".".join(str(p) for p in err["loc"]) + ": " + err["msg"] for err in e.value.errors()
    )
    assert message in text


def test_good_specs_and_format_guess():
    spec = JobSpec.model_validate(
        {"kind": "infer", "inference": {"model": "m.pt2", "data": ["d/*.npy"]}}
    )
    assert spec.entrypoint == "inference"
    assert spec.inference.resolved_format.value == "torch_export"
    options = InferenceOptions(model="w.pt", model_class="pkg.mod:Net")
    assert options.resolved_format.value == "state_dict"
    assert InferenceOptions(model="m.keras").resolved_format.value == "keras"
    assert InferenceOptions(model="model").resolved_format.value == "torchscript"


# -- model loading -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("torch-models")
    options = save_torch_models(folder)
    from tests.inference_models import tiny_net

    return folder, tiny_net(folder), options


@pytest.mark.parametrize("fmt", ["torchscript", "torch_export", "state_dict"])
def test_torch_formats_predict_like_the_model_in_process(torch_models, fmt):
    folder, model, options = torch_models
    loaded = load_model(InferenceOptions(**options[fmt]), folder)
    x = rows(50)
    assert loaded.framework == "torch" and loaded.platform == f"pytorch_{fmt}"
    assert np.array_equal(loaded.predict(x), torch_outputs(model, x))
    assert loaded.row_shape in ([4], None)


def test_torch_export_knows_its_row_shape(torch_models):
    folder, _, options = torch_models
    assert load_model(InferenceOptions(**options["torch_export"]), folder).row_shape == [4]


# Keras 3.15 converts TF variables with np.array(x, copy=False), which numpy 2 warns about.
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
def test_tensorflow_formats_predict_like_the_model_in_process(tmp_path):
    model, options = save_tf_models(tmp_path)
    x = rows(30)
    expected = np.asarray(model(x, training=False))
    for fmt, fields in options.items():
        loaded = load_model(InferenceOptions(**fields), tmp_path)
        assert loaded.platform == f"tensorflow_{fmt}"
        assert loaded.row_shape == [4]
        assert np.array_equal(loaded.predict(x), expected), fmt


def test_unloadable_models_say_why(tmp_path, torch_models):
    folder, _, _ = torch_models
    with pytest.raises(ModelLoadError, match="inference.model: 'nope.pt' not found"):
        load_model(InferenceOptions(model="nope.pt"), tmp_path)
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="cannot load torchscript model"):
        load_model(InferenceOptions(model="junk.pt"), tmp_path)
    bad_class = InferenceOptions(model="tiny_state.pt", model_class="no_such_module:Net")
    with pytest.raises(ModelLoadError, match="inference.model_class: cannot import"):
        load_model(bad_class, folder)


# -- data ----------------------------------------------------------------------------------------


def write_all_formats(folder, x: np.ndarray) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    np.save(folder / "a.npy", x)
    pq.write_table(pa.table({f"f{i}": x[:, i] for i in range(x.shape[1])}), folder / "b.parquet")
    pq.write_table(pa.table({"features": list(x)}), folder / "c.parquet")
    header = ",".join(f"f{i}" for i in range(x.shape[1]))
    lines = [header] + [",".join(repr(float(v)) for v in row) for row in x]
    (folder / "d.csv").write_text("\n".join(lines) + "\n")
    (folder / "e.jsonl").write_text("".join(json.dumps([float(v) for v in r]) + "\n" for r in x))
    objects = [json.dumps({f"f{i}": float(v) for i, v in enumerate(r)}) for r in x]
    (folder / "f.jsonl").write_text("\n".join(objects) + "\n")
    return ["a.npy", "b.parquet", "c.parquet", "d.csv", "e.jsonl", "f.jsonl"]


def test_every_reader_gives_the_same_rows(tmp_path):
    x = rows(23)
    for name in write_all_formats(tmp_path, x):
        assert count_rows(tmp_path / name) == 23, name
        assert np.array_equal(read_rows(tmp_path / name, 5, 17, np.float32), x[5:17]), name


def test_bad_data_files(tmp_path):
    (tmp_path / "x.txt").write_text("1,2\n")
    with pytest.raises(DataError, match="unsupported file type"):
        count_rows(tmp_path / "x.txt")
    (tmp_path / "bad.csv").write_text("a,b\n1,oops\n")
    with pytest.raises(DataError, match="bad.csv"):
        read_rows(tmp_path / "bad.csv", 0, 1, np.float32)
    with pytest.raises(DataError, match=r"inference.data\[0\]: 'none/\*.npy' matches no file"):
        expand_data(["none/*.npy"], tmp_path)
    np.save(tmp_path / "secret.npy", rows(1))
    sub = tmp_path / "sub"
    sub.mkdir()
    np.save(sub / "ok.npy", rows(1))
    with pytest.raises(DataError, match=r"inference.data\[1\]: .* outside the server's root"):
        expand_data(["ok.npy", "../*.npy"], sub, root=sub)


# -- sharding ------------------------------------------------------------------------------------


def test_shards_cover_every_row_once_and_workers_split_them(tmp_path):
    np.save(tmp_path / "p1.npy", rows(25))
    np.save(tmp_path / "p2.npy", rows(10))
    files = expand_data(["p*.npy"], tmp_path)
    assert files == ["p1.npy", "p2.npy"]
    shards = plan_shards(files, tmp_path, 10)
    assert [(s.path, s.start, s.stop) for s in shards] == [
        ("p1.npy", 0, 10),
        ("p1.npy", 10, 20),
        ("p1.npy", 20, 25),
        ("p2.npy", 0, 10),
    ]
    dealt = [s.index for rank in range(3) for s in shards_for(shards, rank, 3)]
    assert sorted(dealt) == [0, 1, 2, 3]


def test_score_batches_like_the_model(torch_models):
    folder, model, options = torch_models
    loaded = load_model(InferenceOptions(**options["torchscript"]), folder)
    x = rows(100)
    assert np.array_equal(score(loaded.predict, x, 16), torch_outputs(model, x, 16))


# -- dynamic batching ----------------------------------------------------------------------------


def test_batcher_batches_concurrent_requests_and_isolates_a_bad_one():
    calls: list[int] = []

    def predict(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        if np.isnan(batch).any():
            raise ValueError("NaN in input")
        return batch * 2

    async def scenario():
        batcher = DynamicBatcher(predict, max_batch_size=64, max_wait_seconds=0.05)
        good = [np.full((2, 3), i, dtype=np.float32) for i in range(10)]
        bad = np.full((1, 3), np.nan, dtype=np.float32)
        results = await asyncio.gather(
            *(batcher.submit(a) for a in good[:5]),
            batcher.submit(bad),
            *(batcher.submit(a) for a in good[5:]),
            return_exceptions=True,
        )
        await batcher.close()
        return good, results, batcher.stats

    good, results, stats = asyncio.run(scenario())
    assert isinstance(results[5], ValueError)
    for array, result in zip(good, results[:5] + results[6:], strict=True):
        assert np.array_equal(result, array * 2)
    assert calls[0] == 21  # one batch of all 11 requests, then each alone to find the bad one
    # Failed calls are not executions; the 11 waited in the queue once, for the first batch.
    assert stats.execution_count == 10 and stats.inference_count == 20
    assert stats.phases["queue"].count == 11


def test_batching_off_runs_each_request_alone():
    calls: list[int] = []

    def predict(batch):
        calls.append(len(batch))
        return batch

    async def scenario():
        batcher = DynamicBatcher(predict, max_batch_size=1, max_wait_seconds=0.05)
        await asyncio.gather(*(batcher.submit(np.zeros((1, 2))) for _ in range(5)))
        await batcher.close()

    asyncio.run(scenario())
    assert calls == [1] * 5


def test_batcher_waits_only_for_concurrent_traffic():
    """A lone client never waits for max_wait; concurrent clients fill batches."""
    calls: list[int] = []

    def predict(batch):
        calls.append(len(batch))
        return batch

    async def scenario():
        batcher = DynamicBatcher(predict, max_batch_size=16, max_wait_seconds=2.0)
        loop = asyncio.get_running_loop()
        began = loop.time()
        for _ in range(5):  # one client, one request after the other
            await batcher.submit(np.zeros((1, 2)))
        alone = loop.time() - began
        await asyncio.gather(*(batcher.submit(np.zeros((1, 2))) for _ in range(8)))
        # Traffic is concurrent now: the next batch waits (up to 2 s) for as many as the last.
        first = asyncio.create_task(batcher.submit(np.zeros((1, 2))))
        await asyncio.sleep(0.05)
        late = [asyncio.create_task(batcher.submit(np.zeros((1, 2)))) for _ in range(7)]
        await asyncio.gather(first, *late)
        await batcher.close()
        return alone

    alone = asyncio.run(scenario())
    assert alone < 0.5  # no 2 s wait per request
    assert calls == [1] * 5 + [8, 8]


def test_a_full_queue_refuses_at_once_and_the_batcher_keeps_serving():
    from aicloud.inference.batching import QueueFull

    def predict(batch):
        return batch + 1

    async def scenario():
        batcher = DynamicBatcher(predict, max_batch_size=4, max_wait_seconds=0.01, max_queue=3)
        results = await asyncio.gather(
            *(batcher.submit(np.full((1, 1), i)) for i in range(6)), return_exceptions=True
        )
        after = await batcher.submit(np.zeros((1, 1)))
        await batcher.close()
        return results, after

    results, after = asyncio.run(scenario())
    refused = [r for r in results if isinstance(r, QueueFull)]
    served = [r for r in results if isinstance(r, np.ndarray)]
    assert len(refused) == 3 and "3 requests are waiting" in str(refused[0])
    assert sorted(float(r[0, 0]) for r in served) == [1.0, 2.0, 3.0]
    assert after.tolist() == [[1.0]]


# -- the binary tensor data extension and the protocol's value checks ---------------------------


def test_binary_codec_round_trips_every_datatype():
    from aicloud.inference.binary import RAW_TYPES, decode_tensor, encode_tensor

    for datatype, code in RAW_TYPES.items():
        array = (np.arange(6) % 2).astype(code).reshape(2, 3)
        raw = encode_tensor(array)
        assert len(raw) == 6 * np.dtype(code).itemsize
        back = decode_tensor(memoryview(raw), datatype, [2, 3], "inputs[0]")
        assert back.dtype == np.dtype(code).newbyteorder("=") and np.array_equal(back, array)
    big_endian = np.array([1.5, -2.0], dtype=">f4")
    assert encode_tensor(big_endian) == np.array([1.5, -2.0], dtype="<f4").tobytes()


def test_bytes_elements_are_length_prefixed():
    from aicloud.inference.binary import BinaryDataError, decode_tensor, encode_tensor

    array = np.array([b"ab", "", "\u00e9"], dtype=object)
    raw = encode_tensor(array)
    assert raw == b"\x02\x00\x00\x00ab" + b"\x00\x00\x00\x00" + b"\x02\x00\x00\x00\xc3\xa9"
    back = decode_tensor(memoryview(raw), "BYTES", [3], "inputs[0]")
    assert back.tolist() == [b"ab", b"", "\u00e9".encode()]
    with pytest.raises(BinaryDataError, match="runs past the data"):
        decode_tensor(memoryview(b"\x09\x00\x00\x00ab"), "BYTES", [1], "inputs[0]")
    with pytest.raises(BinaryDataError, match="1 bytes after 1 BYTES elements"):
        decode_tensor(memoryview(raw[:6] + b"x"), "BYTES", [1], "inputs[0]")


def binary_request(array: np.ndarray, datatype: str, extra: bytes = b"", size=None):
    import json as json_module

    raw = array.tobytes()
    size = len(raw) if size is None else size
    tensor = {"name": "input", "shape": list(array.shape), "datatype": datatype}
    header = json_module.dumps(
        {"inputs": [{**tensor, "parameters": {"binary_data_size": size}}]}
    ).encode()
    return header + raw + extra, str(len(header))


def test_binary_requests_and_their_errors():
    from aicloud.inference.options import Datatype
    from aicloud.inference.protocol import ProtocolError, TensorSpec, parse_infer_request

    spec = TensorSpec("input", Datatype.FP32, [4])
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    body, length = binary_request(x, "FP32")
    request = parse_infer_request(body, spec, length)
    assert np.array_equal(request.array, x) and not request.binary_output
    nan = x.copy()
    nan[0, 0] = np.nan  # binary data may carry non-finite values
    body, length = binary_request(nan, "FP32")
    assert np.isnan(parse_infer_request(body, spec, length).array[0, 0])
    cases = [
        (binary_request(x, "FP32", size=16), "binary_data_size: 16 bytes for shape [2, 4]"),
        (binary_request(x, "FP32", size=64), "64 bytes, but only 32 follow the JSON"),
        (binary_request(x, "FP32", extra=b"xx"), "2 bytes after the JSON belong to no input"),
        ((binary_request(x, "FP32")[0], "nine"), "'nine' is not an integer"),
        ((binary_request(x, "FP32")[0], "99999"), "99999 is not within the body"),
    ]
    for (body, length), message in cases:
        with pytest.raises(ProtocolError) as e:
            parse_infer_request(body, spec, length)
        assert message in str(e.value)


JSON_VALUE_ERRORS = [
    ("FP32", [1e39, 0, 0, 0], "1e+39 overflows FP32 (largest 3.40282e+38)"),
    ("FP16", [70000.0, 0, 0, 0], "70000 overflows FP16"),
    ("INT8", [300, 0, 0, 0], "300 overflows INT8 (-128 to 127)"),
    ("UINT8", [-1, 0, 0, 0], "-1 overflows UINT8 (0 to 255)"),
    ("INT64", [2**70, 0, 0, 0], "overflows every integer type"),
    ("FP32", [float("nan"), 0, 0, 0], "non-finite values (NaN, Infinity) are not JSON"),
    ("FP64", [float("inf"), 0, 0, 0], "non-finite values"),
    ("INT32", [1.5, 0, 0, 0], "values of kind float64 do not fit INT32"),
]


@pytest.mark.parametrize(("datatype", "data", "message"), JSON_VALUE_ERRORS)
def test_json_values_that_do_not_fit_are_refused(datatype, data, message):
    import json as json_module

    from aicloud.inference.options import Datatype
    from aicloud.inference.protocol import ProtocolError, TensorSpec, parse_infer_request

    spec = TensorSpec("input", Datatype(datatype), [4])
    tensor = {"name": "input", "shape": [1, 4], "datatype": datatype, "data": data}
    body = json_module.dumps({"inputs": [tensor]}).encode()  # NaN and Infinity as JSON5 does
    with pytest.raises(ProtocolError) as e:
        parse_infer_request(body, spec)
    assert str(e.value).startswith("inputs[0].data: ") and message in str(e.value)


def test_outputs_binary_on_request_and_never_non_finite_json():
    import json as json_module

    from aicloud.inference.protocol import InferRequest, ProtocolError, infer_response

    out = np.array([[1.0, np.inf]], dtype=np.float32)
    with pytest.raises(ProtocolError, match="NaN or Infinity, which JSON cannot carry"):
        infer_response("m", "1", out, InferRequest(out))
    body, length = infer_response("m", "1", out, InferRequest(out, "r1", binary_output=True))
    header = json_module.loads(body[:length])
    assert header["id"] == "r1" and header["outputs"][0]["parameters"]["binary_data_size"] == 8
    assert np.array_equal(np.frombuffer(body[length:], "<f4"), out.reshape(-1))
    body, length = infer_response("m", "1", out[:, :1], InferRequest(out))
    assert length is None and json_module.loads(body)["outputs"][0]["data"] == [1.0]
