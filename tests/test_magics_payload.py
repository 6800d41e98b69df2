"""Signed, versioned payloads: what a worker accepts and what it refuses."""

from __future__ import annotations

import json

import cloudpickle
import numpy
import pytest

from aicloud.magics.payload import (
    PayloadError,
    _signature,
    pack,
    sign_bytes,
    unpack,
    verify_bytes,
    versions_of,
)
from aicloud.magics.script import definitions, preamble, shown

KEY = "k" * 64


def test_round_trip_records_versions():
    payload = pack({"a": numpy.arange(3), "f": lambda x: x + 1}, KEY)
    versions = json.loads(payload["meta"])["versions"]
    assert versions["numpy"] == numpy.__version__
    assert versions["cloudpickle"] == cloudpickle.__version__
    values = unpack(payload, KEY)
    assert values["a"].tolist() == [0, 1, 2] and values["f"](1) == 2


def test_tampered_or_wrongly_keyed_payload_is_refused():
    payload = pack([1, 2, 3], KEY)
    other = pack([6, 6, 6], KEY)
    with pytest.raises(PayloadError, match="signature does not match"):
        unpack({**payload, "data": other["data"]}, KEY)
    with pytest.raises(PayloadError, match="signature does not match"):
        unpack(payload, "another-key")
    with pytest.raises(PayloadError, match="JOB_PAYLOAD_KEY is not set"):
        unpack(payload, "")


def test_version_mismatch_names_the_package():
    payload = pack(numpy.zeros(2), KEY)
    meta = json.loads(payload["meta"])
    meta["versions"]["numpy"] = "0.0.1"
    forged_meta = json.dumps(meta, sort_keys=True)
    import base64
    import zlib

    data = zlib.decompress(base64.b64decode(payload["data"]))
    resigned = {**payload, "meta": forged_meta, "sig": _signature(KEY, forged_meta, data)}
    with pytest.raises(PayloadError, match=r"version mismatch for numpy: the kernel has 0\.0\.1"):
        unpack(resigned, KEY)


def test_signed_results():
    blob = sign_bytes(b"value", KEY)
    assert verify_bytes(blob, KEY) == b"value"
    with pytest.raises(PayloadError):
        verify_bytes(blob.replace(b"value", b"evil!"), KEY)


def test_preamble_keeps_imports_functions_classes_only():
    cells = [
        "import os\nfrom math import pi\nx = load()\n",
        "@decorate\ndef f():\n    return 1\nprint(f())",
        "class C:\n    pass\nget_ipython().run_line_magic('time', '1')",
        "from __future__ import annotations\nimport sys",
        "this is not python",
    ]
    assert preamble(cells) == (
        "import os\nfrom math import pi\n@decorate\ndef f():\n    return 1\n"
        "class C:\n    pass\nimport sys"
    )
    assert definitions("x = 1") == []
    assert versions_of({"numpy"})["numpy"] == numpy.__version__


def test_shown_cuts_the_payload_short():
    script = "_AICLOUD_PUSHED = {'meta': '" + "m" * 500 + "'}\nprint(1)\n"
    assert shown(script).endswith("...<signed payload>\nprint(1)\n")
    assert len(shown(script)) < 200
