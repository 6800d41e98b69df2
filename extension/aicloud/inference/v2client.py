"""A small Open Inference Protocol (v2, REST) client: health, metadata and typed infer calls.

``token`` goes as ``Authorization: token <token>``: a serve job's model server wants its
owner's token (the one the aicloud client holds) or its serving token.
"""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np

from aicloud.client import ErrorAnswer, HTTPClient
from aicloud.inference.loading import NUMPY_TYPES, datatype_of
from aicloud.inference.options import Datatype


class V2Error(ErrorAnswer):
    """The model server answered with an error; ``message`` is its own words."""


class V2Client(HTTPClient):
    """Calls one v2 model server at ``url`` (``http://host:port``)."""

    def __init__(
        self,
        url: str,
        timeout: float = 60.0,
        headers: dict[str, str] | None = None,
        token: str = "",
    ):
        self.url = url.rstrip("/")
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"token {token}"
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def _get(self, path: str, ok: tuple[int, ...] = (200,)) -> dict[str, Any]:
        response = self._http.get(path)
        if response.status_code not in ok:
            raise V2Error(response.status_code, _error(response))
        return response.json()

    def live(self) -> bool:
        """Whether the server is live."""
        return bool(self._get("/v2/health/live").get("live"))

    def ready(self) -> bool:
        """Whether the server is ready (its model loaded)."""
        return bool(self._get("/v2/health/ready", ok=(200, 503)).get("ready"))

    def server_metadata(self) -> dict[str, Any]:
        """Name, version and extensions of the server."""
        return self._get("/v2")

    def model_metadata(self, model: str) -> dict[str, Any]:
        """A model's name, versions, platform, inputs and outputs."""
        return self._get(f"/v2/models/{model}")

    def model_config(self, model: str) -> dict[str, Any]:
        """A model's configuration (Triton's document)."""
        return self._get(f"/v2/models/{model}/config")

    def model_statistics(self, model: str) -> dict[str, Any]:
        """A model's entry of the statistics extension."""
        return self._get(f"/v2/models/{model}/stats")["model_stats"][0]

    def model_ready(self, model: str) -> bool:
        """Whether the model is ready."""
        return bool(self._get(f"/v2/models/{model}/ready", ok=(200, 503)).get("ready"))

    def infer_raw(self, model: str, request: dict[str, Any]) -> dict[str, Any]:
        """POST an infer request document; return the response document."""
        response = self._http.post(f"/v2/models/{model}/infer", json=request)
        if response.status_code != 200:
            raise V2Error(response.status_code, _error(response))
        return response.json()

    def infer(
        self, model: str, array: Any, input_name: str = "input", datatype: str | None = None
    ) -> np.ndarray:
        """The model's output for ``array`` (rows along the first axis), as numpy."""
        array = np.asarray(array)
        if datatype is None:
            datatype = datatype_of(array).value
        request = {
            "inputs": [
                {
                    "name": input_name,
                    "shape": list(array.shape),
                    "datatype": datatype,
                    "data": array.reshape(-1).tolist(),
                }
            ]
        }
        return decode_output(self.infer_raw(model, request)["outputs"][0])


def decode_output(tensor: dict[str, Any]) -> np.ndarray:
    """A response tensor as a numpy array of its datatype and shape."""
    dtype = NUMPY_TYPES[Datatype(tensor["datatype"])]
    return np.asarray(tensor["data"], dtype=dtype).reshape(tensor["shape"])


def _error(response: httpx.Response) -> str:
    try:
        return response.json().get("error") or response.reason_phrase
    except (ValueError, AttributeError):
        return response.text.strip() or response.reason_phrase
