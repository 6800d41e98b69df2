"""The REST contract: ``openapi.yaml`` is valid OpenAPI 3, documents exactly the routes the
handlers serve, is served as packaged, and what a real server answers conforms to it."""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path

import httpx
import nbformat
import pytest
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.validation.response.exceptions import MissingData
from openapi_spec_validator import validate as validate_openapi
from werkzeug.datastructures import Headers, ImmutableMultiDict

from aicloud.handlers import default_handlers
from aicloud.handlers.base import AICloudHandler
from aicloud.spec import (
    CatchUp,
    Framework,
    JobKind,
    JobSpec,
    JobStatus,
    Overlap,
    ReasonCode,
    Resources,
    RunNow,
    ScheduleSpec,
    ScheduleUpdate,
)
from tests.conftest import wait_for

SPEC_FILE = Path(str(files("aicloud").joinpath("api", "openapi.yaml")))
SPEC = yaml.safe_load(SPEC_FILE.read_text())
API = SPEC["servers"][0]["url"]
METHODS = ("get", "put", "post", "patch", "delete", "head", "options", "trace")
GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?P<regex>[^()]*)\)")
EXAMPLE_PATH_VALUES = {"job_id": "job-0123456789ab", "schedule_id": "sch-0123", "name": "a.html"}
JSON_TYPE = {"Content-Type": "application/json"}


# -- the document --------------------------------------------------------------------------------


def test_document_is_valid_openapi_3():
    assert SPEC["openapi"].startswith("3.0.")
    validate_openapi(SPEC)
    OpenAPI.from_file_path(str(SPEC_FILE))  # openapi-core accepts it too


def operation_ids() -> list[str]:
    return [op["operationId"] for item in SPEC["paths"].values() for op in operations(item)]


def operations(path_item: dict) -> list[dict]:
    return [path_item[m] for m in METHODS if m in path_item]


def test_operation_ids_are_unique():
    ids = operation_ids()
    assert len(ids) == len(set(ids))


# -- the document against the route tables ------------------------------------------------------


def implemented_methods(handler: type) -> set[str]:
    """HTTP methods that aicloud's own classes implement (not Jupyter's or Tornado's)."""
    return {
        method
        for method in METHODS
        for klass in handler.__mro__
        if issubclass(klass, AICloudHandler) and method in vars(klass)
    }


def route_template(pattern: str) -> str:
    """``/aicloud/api/v1/jobs/(?P<job_id>...)`` -> ``/jobs/{job_id}``."""
    assert pattern.startswith(API + "/"), pattern
    template = GROUP.sub(lambda m: "{" + m["name"] + "}", pattern.removeprefix(API))
    assert not set("()[]?*+\\$^") & set(template), f"unexpected regex syntax in {pattern}"
    return template


# Routes whose handler implements an HTTP method; the rest (the JSON 404 for any other path under
# the API) answer every method the same way and are no operation.
OPERATION_ROUTES = [(p, h) for p, h in default_handlers if implemented_methods(h)]


def routed_operations() -> set[tuple[str, str]]:
    return {
        (route_template(pattern), method)
        for pattern, handler in OPERATION_ROUTES
        for method in implemented_methods(handler)
    }


def documented_operations() -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in SPEC["paths"].items()
        for method in METHODS
        if method in item
    }


def path_parameter_schemas(path: str, method: str) -> dict[str, dict]:
    item = SPEC["paths"][path]
    params = [*item.get("parameters", []), *item[method].get("parameters", [])]
    resolved = {}
    for param in params:
        if "$ref" in param:
            param = resolve(param["$ref"])
        if param["in"] == "path":
            resolved[param["name"]] = param["schema"]
    return resolved


def resolve(ref: str) -> dict:
    node = SPEC
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


@pytest.mark.parametrize("path,method", sorted(documented_operations()))
def test_documented_operation_is_routed(path, method):
    """A concrete URL for the operation goes (first match wins) to a handler with the method."""
    schemas = path_parameter_schemas(path, method)
    assert set(schemas) == set(re.findall(r"{(\w+)}", path))
    concrete = path
    for name, schema in schemas.items():
        value = EXAMPLE_PATH_VALUES[name]
        assert re.search(schema["pattern"], value)
        concrete = concrete.replace("{" + name + "}", value)
    matches = [h for p, h in default_handlers if re.fullmatch(p, API + concrete)]
    assert matches, f"no route for {API}{concrete}"
    assert method in implemented_methods(matches[0])


def test_every_route_is_documented():
    undocumented = routed_operations() - documented_operations()
    assert not undocumented, f"routes missing from openapi.yaml: {sorted(undocumented)}"


def test_every_documented_operation_is_routed():
    unrouted = documented_operations() - routed_operations()
    assert not unrouted, f"operations in openapi.yaml without a handler: {sorted(unrouted)}"


@pytest.mark.parametrize("pattern,handler", OPERATION_ROUTES)
def test_path_parameter_patterns_match_the_routes(pattern, handler):
    """What the document allows in a path parameter is exactly what the route accepts."""
    template = route_template(pattern)
    for method in implemented_methods(handler):
        schemas = path_parameter_schemas(template, method)
        for group in GROUP.finditer(pattern):
            assert schemas[group["name"]]["pattern"] == f"^{group['regex']}$"


BODY_MODELS = [JobSpec, Resources, ScheduleSpec, ScheduleUpdate, RunNow]
BODY_SCHEMAS = {Resources: "ResourceRequest"}
ENUMS = [JobKind, Framework, JobStatus, ReasonCode, Overlap, CatchUp]


@pytest.mark.parametrize("model", BODY_MODELS, ids=lambda m: m.__name__)
def test_request_schemas_document_every_field(model):
    """The body schemas have exactly the fields of the models that validate them."""
    schema = SPEC["components"]["schemas"][BODY_SCHEMAS.get(model, model.__name__)]
    assert set(schema["properties"]) == set(model.model_fields)


@pytest.mark.parametrize("enum", ENUMS, ids=lambda e: e.__name__)
def test_enums_document_every_value(enum):
    documented = SPEC["components"]["schemas"][enum.__name__]["enum"]
    assert {value for value in documented if value is not None} == {e.value for e in enum}


# -- the document as served ----------------------------------------------------------------------


async def test_served_document_is_the_packaged_one(jp_fetch):
    r = await jp_fetch("aicloud", "api", "v1", "openapi.yaml")
    assert r.code == 200
    assert r.headers["Content-Type"].split(";")[0] == "application/yaml"
    assert r.body == SPEC_FILE.read_bytes()


# -- real responses against the document ---------------------------------------------------------


class OpenAPIRequest:
    """An httpx request as openapi-core sees one."""

    def __init__(self, request: httpx.Request):
        self.host_url = f"{request.url.scheme}://{request.url.netloc.decode()}"
        self.path = request.url.path
        self.method = request.method.lower()
        self.body = request.content or None
        self.content_type = request.headers.get("Content-Type", "")
        self.parameters = openapi_core_parameters(request)


def openapi_core_parameters(request: httpx.Request) -> RequestParameters:
    return RequestParameters(
        query=ImmutableMultiDict(request.url.params.multi_items()),
        header=Headers(list(request.headers.items())),
        cookie=ImmutableMultiDict(),
    )


class OpenAPIResponse:
    """An httpx response as openapi-core sees one."""

    def __init__(self, response: httpx.Response):
        self.data = response.content
        self.status_code = response.status_code
        self.content_type = response.headers.get("Content-Type", "")
        self.headers = Headers(list(response.headers.items()))


def operation_of(method: str, path: str) -> str:
    """The operationId for a request path under the server URL."""
    relative = path.removeprefix(API)
    for template, item in SPEC["paths"].items():
        regex = re.sub(r"\\{(\w+)\\}", "[^/]+", re.escape(template))
        if re.fullmatch(regex, relative) and method in item:
            return item[method]["operationId"]
    raise AssertionError(f"{method.upper()} {path} is not in openapi.yaml")


class ContractClient:
    """Calls the API and checks every exchange against the document.

    Each response must have a declared status code, a declared media type, a body that
    validates against its schema, and headers that validate. Requests meant to be valid are
    validated too, so that the scenario itself uses the API only as documented.
    """

    def __init__(self, client: httpx.Client):
        self.client = client
        self.openapi = OpenAPI.from_file_path(
            str(SPEC_FILE),
            config=Config(
                # openapi-core reads JSON and text/*; the document itself is YAML.
                extra_media_type_deserializers={"application/yaml": yaml.safe_load},
            ),
        )
        self.seen: set[tuple[str, int]] = set()

    def request(self, method: str, url: str, *, valid: bool = True, **kwargs) -> httpx.Response:
        response = self.client.request(method, url, **kwargs)
        self.check(response, valid=valid)
        return response

    def check(self, response: httpx.Response, *, valid: bool = True) -> None:
        request = OpenAPIRequest(response.request)
        if valid:
            self.openapi.validate_request(request)
        errors = [
            error
            for error in self.openapi.iter_response_errors(request, OpenAPIResponse(response))
            # openapi-core calls an empty body missing; an empty log is an empty string.
            if not (
                isinstance(error, MissingData)
                and response.headers["Content-Type"].startswith("text/plain")
            )
        ]
        if errors:
            raise errors[0]
        self.seen.add((operation_of(request.method, request.path), response.status_code))

    def get(self, url: str, **kwargs) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def delete(self, url: str, **kwargs) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def job(self, job_id: str) -> dict:
        r = self.get(f"jobs/{job_id}")
        assert r.status_code == 200
        return r.json()

    def wait_status(self, job_id: str, *statuses: str, timeout: float = 30) -> dict:
        return wait_for(
            lambda: (job := self.job(job_id))["status"] in statuses and job, timeout=timeout
        )


@pytest.fixture
def live_server(live_server_factory):
    """A real server; notebook jobs start their own runner (no warm pool eating the CPU)."""
    return live_server_factory(extra_args=("--AICloudApp.notebook_pool_size=0",))


@pytest.fixture
def api(live_server):
    with live_server.api() as client:
        contract = ContractClient(client)
        yield contract
        # Leave no job process behind, whatever happened above.
        active = client.get("jobs", params={"status": ["queued", "starting", "running"]})
        for job in active.json()["jobs"]:
            client.post(f"jobs/{job['id']}/cancel")


# Every status code each scenario below must see, per operation.
EXPECTED_JOBS = {
    "listJobs": {200, 400},
    "createJob": {201, 400, 403, 409, 413},
    "getJob": {200, 404},
    "deleteJob": {204, 404, 409},
    "cancelJob": {200, 404, 409},
    "rerunJob": {201, 400, 404},
    "getJobLogs": {200, 400, 404},
    "getJobMetrics": {200, 400, 404},
    "getJobLogLines": {200, 400, 404},
    "getJobUsage": {200, 400, 404},
    "getJobServing": {409, 404},
    "compareJobs": {200, 400, 404},
    "getStatus": {200, 403},
    "getResources": {200},
    "getResourceUsage": {200},
    "getOpenAPI": {200},
}


EXPECTED_SCHEDULES_AND_NOTEBOOKS = {
    "createSchedule": {201, 400, 413},
    "listSchedules": {200, 400},
    "getSchedule": {200, 404},
    "updateSchedule": {200, 400, 404},
    "deleteSchedule": {204, 404},
    "runSchedule": {201, 400, 404},
    "listScheduleRuns": {200, 400, 404},
    "getNotebookParameters": {200, 400, 404},
    "listJobOutputs": {200, 404},
    "getJobOutput": {200, 400, 404},
}


def test_expected_covers_every_operation():
    expected = [*EXPECTED_JOBS, *EXPECTED_SCHEDULES_AND_NOTEBOOKS]
    assert sorted(expected) == sorted(operation_ids())


def assert_saw(api: ContractClient, expected: dict[str, set[int]]) -> None:
    """The scenario saw every operation, and every status code that matters for each."""
    seen: dict[str, set[int]] = {}
    for operation, code in api.seen:
        seen.setdefault(operation, set()).add(code)
    missing = {op: codes - seen.get(op, set()) for op, codes in expected.items()}
    assert not {op: codes for op, codes in missing.items() if codes}, seen


def test_responses_conform_to_the_document(api, live_server):
    # The service.
    status = api.get("status").json()
    assert status["mode"] == "standalone"
    assert "local" in status["backends"]
    resources = api.get("resources").json()
    assert "local" in [b["name"] for b in resources["backends"]]
    r = api.get("openapi.yaml")
    assert r.content == SPEC_FILE.read_bytes()
    machine = api.get("resources/usage").json()
    assert machine["cores"] == resources["cpu"]["cores"]
    assert len(machine["gpus"]) == len(resources["gpus"])
    assert [row["user"] for row in machine["users"]] == [status["user"]]

    # A job that ends, with its log.
    r = api.post("jobs", json={"command": ["sh", "-c", "echo hi"], "name": "hi", "tags": ["t1"]})
    assert r.status_code == 201
    echo = r.json()
    assert r.headers["Location"] == f"{API}/jobs/{echo['id']}"
    assert echo["status"] == "queued"
    assert echo["tags"] == ["t1"]
    echo = api.wait_status(echo["id"], "succeeded", "failed")
    assert echo["status"] == "succeeded", echo
    assert echo["exit_code"] == 0
    assert [a["status"] for a in echo["attempts"]] == ["succeeded"]

    r = api.get(f"jobs/{echo['id']}/logs")
    assert r.status_code == 200
    assert r.text == "hi\n"
    assert r.headers["X-Aicloud-Next-Offset"] == "3"
    assert r.headers["X-Aicloud-Job-Status"] == "succeeded"
    r = api.get(f"jobs/{echo['id']}/logs", params={"offset": 1, "limit": 1})
    assert (r.text, r.headers["X-Aicloud-Next-Offset"]) == ("i", "2")
    r = api.get(f"jobs/{echo['id']}/logs", params={"offset": 10})
    assert (r.text, r.headers["X-Aicloud-Next-Offset"]) == ("", "10")
    r = api.get(f"jobs/{echo['id']}/logs", params={"follow": "true", "rank": 0})
    assert r.text == "hi\n"

    # A job that reports metrics: one diverging, one not a point at all, one fine.
    source = "\n".join(
        [
            "from aicloud.runtime import report, run_dir",
            "report(step=1, total=4, loss=float('nan'))",
            "(run_dir() / 'metrics.jsonl').open('a').write('not json\\n')",
            "report(step=2, total=4, loss=0.5)",
        ]
    )
    r = api.post("jobs", json={"source": source})
    reporter = api.wait_status(r.json()["id"], "succeeded", "failed")
    assert reporter["status"] == "succeeded", reporter
    metrics = api.get(f"jobs/{reporter['id']}/metrics").json()
    assert [(p["step"], p["loss"]) for p in metrics["points"]] == [(1, None), (2, 0.5)]
    assert metrics["next"] == 3
    assert metrics["latest"] == metrics["points"][-1]
    assert metrics["progress"] == {"step": 2, "total": 4, "fraction": 0.5}
    metrics = api.get(f"jobs/{reporter['id']}/metrics", params={"limit": 1}).json()
    assert ([p["step"] for p in metrics["points"]], metrics["next"]) == ([2], 3)
    metrics = api.get(f"jobs/{reporter['id']}/metrics", params={"since": 3}).json()
    assert metrics == {"points": [], "next": 3, "latest": None, "progress": None}

    # A job that runs until cancelled.
    r = api.post("jobs", json={"command": ["sleep", "60"], "tags": ["t2"], "kind": "command"})
    assert r.status_code == 201
    sleeper = api.wait_status(r.json()["id"], "running")

    # The job page's views: numbered log lines, usage, comparison, serving (none here).
    lines = api.get(f"jobs/{echo['id']}/log-lines", params={"tail": "1"}).json()
    assert lines == {
        "total": 1,
        "start": 0,
        "lines": [{"n": 0, "rank": None, "text": "hi"}],
        "status": "succeeded",
    }
    assert api.get(f"jobs/{echo['id']}/usage").json()["next"] >= 0
    ids = f"{echo['id']},{reporter['id']}"
    table = api.get("jobs/compare", params={"ids": ids}).json()
    assert [run["id"] for run in table["runs"]] == [echo["id"], reporter["id"]]
    assert table["metrics"] == ["loss"]
    assert table["runs"][1]["final_metrics"] == {"loss": 0.5}
    assert api.get(f"jobs/{echo['id']}/serving").status_code == 409

    # Listing, filtering and paging.
    page = api.get("jobs").json()
    assert [j["id"] for j in page["jobs"]] == [sleeper["id"], reporter["id"], echo["id"]]
    assert (page["total"], page["offset"], page["limit"], page["next_offset"]) == (3, 0, 50, None)
    page = api.get("jobs", params={"status": "running"}).json()
    assert [j["id"] for j in page["jobs"]] == [sleeper["id"]]
    page = api.get("jobs", params={"status": ["running", "succeeded"], "kind": "command"}).json()
    assert page["total"] == 3
    page = api.get("jobs", params={"tag": "t1"}).json()
    assert [j["id"] for j in page["jobs"]] == [echo["id"]]
    page = api.get("jobs", params={"kind": "train"}).json()
    assert page == {"jobs": [], "total": 0, "offset": 0, "limit": 50, "next_offset": None}
    page = api.get("jobs", params={"limit": 1}).json()
    assert ([j["id"] for j in page["jobs"]], page["next_offset"]) == ([sleeper["id"]], 1)
    page = api.get("jobs", params={"limit": 1, "offset": 2}).json()
    assert ([j["id"] for j in page["jobs"]], page["next_offset"]) == ([echo["id"]], None)

    # Conflicts: deleting a running job, cancelling twice, reusing an idempotency token.
    assert api.delete(f"jobs/{sleeper['id']}").status_code == 409
    r = api.post(f"jobs/{sleeper['id']}/cancel")
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["reason_code"]) == ("cancelled", "cancelled")
    assert api.post(f"jobs/{sleeper['id']}/cancel").status_code == 409
    once = {"command": ["true"], "idempotency_token": "once"}
    assert api.post("jobs", json=once).status_code == 201
    r = api.post("jobs", json=once)
    assert r.status_code == 409
    assert "idempotency_token" in r.json()["message"]
    # A rerun does not reuse the token; a bad change to the spec is a 400 naming it.
    first = api.get("jobs", params={"limit": 1}).json()["jobs"][0]
    r = api.post(f"jobs/{first['id']}/rerun")
    assert r.status_code == 201
    assert "idempotency_token" not in r.json()["spec"]
    r = api.post(f"jobs/{first['id']}/rerun", json={"oops": 1})
    assert (r.status_code, "oops" in r.json()["message"]) == (400, True)

    # Not found: no such job, no such rank, a deleted job.
    assert api.get(f"jobs/{sleeper['id']}/logs", params={"rank": 1}).status_code == 404
    assert api.delete(f"jobs/{echo['id']}").status_code == 204
    for method, url in [
        ("GET", f"jobs/{echo['id']}"),
        ("DELETE", f"jobs/{echo['id']}"),
        ("POST", f"jobs/{echo['id']}/cancel"),
        ("POST", f"jobs/{echo['id']}/rerun"),
        ("GET", f"jobs/{echo['id']}/logs"),
        ("GET", f"jobs/{echo['id']}/metrics"),
        ("GET", f"jobs/{echo['id']}/log-lines"),
        ("GET", f"jobs/{echo['id']}/usage"),
        ("GET", f"jobs/{echo['id']}/serving"),
        ("GET", f"jobs/compare?ids={echo['id']}"),
    ]:
        r = api.request(method, url)
        assert r.status_code == 404, (method, url)
        assert echo["id"] in r.json()["message"]

    # A malformed job id, or any other path under the API: a JSON 404 too.
    for method, url in [("GET", "jobs/" + "a" * 65), ("POST", "jobs/a.b/cancel")]:
        r = api.request(method, url, valid=False)
        assert r.status_code == 404, (method, url)
        assert "no such endpoint" in r.json()["message"]
    r = api.client.get("no-such-thing")
    assert (r.status_code, r.json()["reason"]) == (404, "Not Found")

    # Bad requests, each naming what is wrong. These requests break the document on purpose.
    bad = [
        ("POST", "jobs", {"json": {}}, "exactly one of"),
        ("POST", "jobs", {"json": {"command": ["true"], "oops": 1}}, "oops"),
        ("POST", "jobs", {"json": {"command": ["true"], "cwd": "/"}}, "cwd"),
        ("POST", "jobs", {"json": {"command": ["true"], "cwd": "a" * 300}}, "cwd"),
        ("POST", "jobs", {"json": {"script": "a" * 300}}, "script"),
        ("POST", "jobs", {"json": {"command": ["echo", "a\x00"]}}, "command.1: must not"),
        ("POST", "jobs", {"json": {"command": ["true"], "env": {"A": "\x00"}}}, "env.A: must"),
        ("POST", "jobs", {"json": ["true"]}, "JSON object"),
        ("POST", "jobs", {"content": b"{", "headers": JSON_TYPE}, "malformed JSON"),
        ("GET", "jobs", {"params": {"status": "bogus"}}, "status"),
        ("GET", "jobs", {"params": {"kind": "bogus"}}, "kind"),
        ("GET", "jobs", {"params": {"limit": 0}}, "limit"),
        ("GET", "jobs", {"params": {"offset": "x"}}, "offset"),
        ("GET", f"jobs/{sleeper['id']}/logs", {"params": {"follow": "maybe"}}, "follow"),
        ("GET", f"jobs/{sleeper['id']}/logs", {"params": {"offset": -1}}, "offset"),
        ("GET", f"jobs/{sleeper['id']}/logs", {"params": {"limit": 0}}, "limit"),
        ("GET", f"jobs/{sleeper['id']}/logs", {"params": {"rank": "x"}}, "rank"),
        ("GET", f"jobs/{sleeper['id']}/metrics", {"params": {"since": -1}}, "since"),
        ("GET", f"jobs/{sleeper['id']}/metrics", {"params": {"limit": 10001}}, "limit"),
        ("GET", f"jobs/{sleeper['id']}/log-lines", {"params": {"count": 0}}, "count"),
        ("GET", f"jobs/{sleeper['id']}/usage", {"params": {"since": -1}}, "since"),
        ("GET", "jobs/compare", {"params": {}}, "ids"),
    ]
    for method, url, kwargs, words in bad:
        r = api.request(method, url, valid=False, **kwargs)
        assert r.status_code == 400, (method, url, kwargs, r.text)
        assert words in r.json()["message"], (method, url, kwargs, r.text)

    # Too large, and not authenticated.
    huge = json.dumps({"command": ["true"], "source": None, "name": "x" * 2**20})
    r = api.post("jobs", content=huge.encode(), headers=JSON_TYPE, valid=False)
    assert r.status_code == 413
    with httpx.Client(base_url=live_server.url + API.lstrip("/") + "/", timeout=60) as anonymous:
        for method, url in [("GET", "status"), ("POST", "jobs")]:
            r = anonymous.request(method, url, json={"command": ["true"]})
            assert r.status_code == 403
            api.check(r, valid=False)

    assert_saw(api, EXPECTED_JOBS)


def test_follow_streams_until_the_job_ends(api):
    """``follow`` keeps the response open while the job runs, and its body is the whole log."""
    r = api.post("jobs", json={"command": ["sh", "-c", "echo a; sleep 1; echo b"]})
    job_id = r.json()["id"]
    r = api.get(f"jobs/{job_id}/logs", params={"follow": True})
    assert r.headers["Transfer-Encoding"] == "chunked"
    assert r.text == "a\nb\n"
    assert api.job(job_id)["status"] == "succeeded"


def write_notebook(path: Path, language: str | None = "python") -> None:
    """A notebook with a parameters cell that prints its parameter."""
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("n: int = 1  # how many", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("print('n is', n)"),
        ]
    )
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    if language:
        notebook.metadata["kernelspec"]["language"] = language
    nbformat.write(notebook, path)


def test_schedules_and_notebooks_conform_to_the_document(api, live_server):
    # A notebook's parameters, whether or not its kernelspec names the language.
    write_notebook(live_server.root_dir / "hello.ipynb")
    write_notebook(live_server.root_dir / "bare.ipynb", language=None)
    for path in ["hello.ipynb", "bare.ipynb"]:
        r = api.get("notebooks/parameters", params={"path": path})
        assert r.json()["kernel"] == "python3"
        [parameter] = r.json()["parameters"]
        assert (parameter["name"], parameter["type"], parameter["default"]) == ("n", "int", 1)
    assert api.get("notebooks/parameters", params={"path": "nope.ipynb"}).status_code == 404
    for params in [{}, {"path": "../x.ipynb"}, {"path": "a" * 300}]:
        r = api.get("notebooks/parameters", params=params, valid=bool(params))
        assert r.status_code == 400, (params, r.text)

    # A notebook job and its outputs.
    r = api.post(
        "jobs", json={"kind": "notebook", "notebook": "hello.ipynb", "parameters": {"n": 3}}
    )
    job = api.wait_status(r.json()["id"], "succeeded", "failed", timeout=120)
    assert job["status"] == "succeeded", job
    outputs = api.get(f"jobs/{job['id']}/outputs").json()["outputs"]
    assert sorted(o["name"] for o in outputs) == ["hello.html", "hello.ipynb"]
    r = api.get(
        next(o["url"] for o in outputs if o["name"] == "hello.ipynb").removeprefix(API + "/")
    )
    assert r.headers["Content-Disposition"] == 'attachment; filename="hello.ipynb"'
    assert "n is 3" in r.text
    assert api.get(f"jobs/{job['id']}/outputs/missing.txt").status_code == 404
    assert api.get(f"jobs/{job['id']}/outputs/.hidden").status_code == 400
    assert api.get("jobs/job-nope/outputs").status_code == 404

    # A schedule: create, read, change, run now, its runs, delete.
    template = {"command": ["sh", "-c", "echo scheduled"], "tags": ["nightly"]}
    body = {
        "name": "yearly",
        "job": template,
        "cron": "0 3 1 1 *",
        "timezone": "Europe/Paris",
        "webhook_url": "http://127.0.0.1:9/hook?secret=1",
    }
    r = api.post("schedules", json=body)
    assert r.status_code == 201
    schedule = r.json()
    assert r.headers["Location"] == f"{API}/schedules/{schedule['id']}"
    assert schedule["webhook_url"] == "http://127.0.0.1:9/***"
    assert schedule["next_tick_at"].endswith("T02:00:00.000Z")
    assert api.get(f"schedules/{schedule['id']}").json() == schedule
    page = api.get("schedules").json()
    assert ([s["id"] for s in page["schedules"]], page["total"]) == ([schedule["id"]], 1)
    r = api.request("PATCH", f"schedules/{schedule['id']}", json={"paused": True})
    assert (r.status_code, r.json()["paused"]) == (200, True)
    r = api.post(f"schedules/{schedule['id']}/run")
    assert r.status_code == 201
    run = r.json()
    assert (run["schedule_id"], run["scheduled_for"]) == (schedule["id"], None)
    assert r.headers["Location"] == f"{API}/jobs/{run['id']}"
    runs = api.get(f"schedules/{schedule['id']}/runs").json()
    assert ([j["id"] for j in runs["jobs"]], runs["next_offset"]) == ([run["id"]], None)
    assert api.wait_status(run["id"], "succeeded", "failed")["status"] == "succeeded"

    # Bad requests, each naming what is wrong.
    window = {"start_at": "2030-01-01T00:00:00Z", "end_at": "2029-01-01T00:00:00Z"}
    bad = [
        ("POST", "schedules", {"json": {**body, "cron": "61 * * * *"}}, "cron"),
        ("POST", "schedules", {"json": {**body, "timezone": "Mars/Olympus"}}, "timezone"),
        ("POST", "schedules", {"json": {"cron": "* * * * *"}}, "job"),
        ("GET", "schedules", {"params": {"limit": 0}}, "limit"),
        ("PATCH", f"schedules/{schedule['id']}", {"json": {"cron": None}}, "cron"),
        ("PATCH", f"schedules/{schedule['id']}", {"json": window}, "end_at must be after"),
        ("POST", f"schedules/{schedule['id']}/run", {"json": {"parameters": {"n": 1}}}, "notebook"),
        ("GET", f"schedules/{schedule['id']}/runs", {"params": {"offset": -1}}, "offset"),
    ]
    for method, url, kwargs, words in bad:
        r = api.request(method, url, valid=False, **kwargs)
        assert r.status_code == 400, (method, url, kwargs, r.text)
        assert words in r.json()["message"], (method, url, kwargs, r.text)
    huge = json.dumps({**body, "name": "x" * 2**20})
    r = api.post("schedules", content=huge.encode(), headers=JSON_TYPE, valid=False)
    assert r.status_code == 413

    # Deleted: gone, and so is everything under it; its run stays.
    assert api.delete(f"schedules/{schedule['id']}").status_code == 204
    for method, url in [
        ("GET", f"schedules/{schedule['id']}"),
        ("PATCH", f"schedules/{schedule['id']}"),
        ("DELETE", f"schedules/{schedule['id']}"),
        ("POST", f"schedules/{schedule['id']}/run"),
        ("GET", f"schedules/{schedule['id']}/runs"),
    ]:
        kwargs = {"json": {"paused": False}} if method == "PATCH" else {}
        r = api.request(method, url, **kwargs)
        assert r.status_code == 404, (method, url)
        assert schedule["id"] in r.json()["message"]
    assert api.job(run["id"])["schedule_id"] is None

    assert_saw(api, EXPECTED_SCHEDULES_AND_NOTEBOOKS)
