"""Authentication and XSRF on a real server: tokens, cookies from browsers, the CLI."""

from __future__ import annotations

import httpx

from tests.conftest import run_cli

ROUTES = [
    ("GET", "jobs"),
    ("POST", "jobs"),
    ("GET", "jobs/job-x"),
    ("DELETE", "jobs/job-x"),
    ("POST", "jobs/job-x/cancel"),
    ("GET", "jobs/job-x/logs"),
    ("GET", "resources"),
    ("GET", "status"),
    ("GET", "openapi.yaml"),
]


def test_every_route_refuses_anonymous_and_wrong_tokens(live_server):
    base = live_server.url + "aicloud/api/v1/"
    for headers in ({}, {"Authorization": "token wrong"}):
        for method, path in ROUTES:
            response = httpx.request(method, base + path, headers=headers, json={})
            assert response.status_code == 403, (method, path, headers, response.status_code)
    with live_server.api() as client:
        assert client.get("jobs").json()["total"] == 0


def test_browser_post_without_xsrf_is_refused(live_server):
    base = live_server.url + "aicloud/api/v1/"
    with httpx.Client() as browser:
        # Logging in with the token leaves a login cookie, as a browser would keep it.
        assert browser.get(base + "status", params={"token": live_server.token}).status_code == 200
        assert any(name.startswith("username-") for name in browser.cookies)
        refused = browser.post(base + "jobs", json={"command": ["true"]})
        assert refused.status_code == 403
        assert "_xsrf" in refused.json()["message"]
        # With the XSRF cookie and the matching header, the same browser may post.
        xsrf = httpx.get(live_server.url + "login").cookies["_xsrf"]
        browser.cookies.set("_xsrf", xsrf)
        accepted = browser.post(
            base + "jobs", json={"command": ["true"]}, headers={"X-XSRFToken": xsrf}
        )
        assert accepted.status_code == 201, accepted.text
    with live_server.api() as client:
        assert client.get("jobs").json()["total"] == 1


def test_cli_without_a_valid_token(live_server):
    env = {**live_server.env, "AICLOUD_TOKEN": "wrong"}
    result = run_cli("list", env=env)
    assert result.returncode == 1
    assert "(HTTP 403)" in result.stderr
