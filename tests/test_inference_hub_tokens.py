"""A serve job in the hub home takes its owner's hub tokens and an admin's, not another user's.

One real hub; alice serves a model from her home through the aicloud service. The model
server asks the hub (``HubAuth``, ``/hub/api/user``) who a token belongs to: alice's own token
and the admin's pass, bob's gets 403, none 401.
"""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from tests.conftest import wait_for
from tests.hub_helpers import VENV_HUB, LocalHub
from tests.inference_models import rows, save_torch_models, tiny_net, torch_outputs

API = "/services/aicloud/aicloud/api/v1"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    local = LocalHub(state=tmp_path_factory.mktemp("hub"), hub_version=VENV_HUB)
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope="module")
def served(hub):
    tokens = {name: hub.user_token(name) for name in ("alice", "bob", "boss")}
    home = hub.state / "users" / "alice"
    home.mkdir(parents=True, exist_ok=True)
    save_torch_models(home)
    spec = {"kind": "serve", "name": "tiny", "inference": {"model": "tiny.pt", "input_shape": [4]}}
    with hub.client(tokens["alice"]) as alice:
        created = alice.post(f"{API}/jobs", json=spec)
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]

        def endpoint():
            job = alice.get(f"{API}/jobs/{job_id}").json()
            assert job["status"] in ("queued", "starting", "running"), job
            r = alice.get(f"{API}/jobs/{job_id}/outputs/endpoint.json")
            return json.loads(r.content) if r.status_code == 200 else None

        found = wait_for(endpoint, timeout=120)
        yield found["url"], tokens, tiny_net(home)
        alice.post(f"{API}/jobs/{job_id}/cancel")


def infer(url: str, token: str | None, x: np.ndarray) -> httpx.Response:
    body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                        "data": x.reshape(-1).tolist()}]}  # fmt: skip
    headers = {"Authorization": f"token {token}"} if token else {}
    return httpx.post(f"{url}/v2/models/tiny/infer", json=body, headers=headers, timeout=60)


def test_the_owner_and_an_admin_pass_another_user_does_not(served):
    url, tokens, model = served
    x = rows(3)
    for name in ("alice", "boss"):
        r = infer(url, tokens[name], x)
        assert r.status_code == 200, (name, r.text)
        got = np.asarray(r.json()["outputs"][0]["data"], dtype=np.float32).reshape(3, 2)
        assert np.array_equal(got, torch_outputs(model, x))
    r = infer(url, tokens["bob"], x)
    assert r.status_code == 403 and "may not call this model server" in r.json()["error"]
    assert infer(url, None, x).status_code == 401
    assert infer(url, "not-a-hub-token", x).status_code == 403
