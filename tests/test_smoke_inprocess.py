import json

from tests.conftest import wait_for  # noqa: F401


async def test_create_and_get(jp_fetch):
    r = await jp_fetch(
        "aicloud", "api", "v1", "jobs", method="POST", body=json.dumps({"command": ["true"]})
    )
    assert r.code == 201
    job = json.loads(r.body)
    assert job["status"] == "queued"
