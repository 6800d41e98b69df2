"""REST handlers for notebooks and job outputs: parameter discovery, output downloads."""

from __future__ import annotations

import mimetypes
import re

from jupyter_server.auth.decorator import authorized
from tornado import web

from aicloud.errors import InvalidSpec
from aicloud.handlers.base import AICloudHandler
from aicloud.notebooks import notebook_kernel, notebook_parameters, read_notebook
from aicloud.notebooks import resolve_notebook as resolve

API = "/aicloud/api/v1"
JOB_ID = r"(?P<job_id>[A-Za-z0-9_-]{1,64})"
OUTPUT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,254}$")


class NotebookParametersHandler(AICloudHandler):
    """``/notebooks/parameters?path=...``: the typed parameters of a notebook."""

    @web.authenticated
    @authorized
    async def get(self):
        """Parameters with their types, defaults and help, and the notebook's kernel."""
        path = self.get_query_argument("path", None)
        if not path:
            raise web.HTTPError(400, "path: required")
        root = self.manager.root_for(self.owner)
        try:
            notebook = resolve(root, root, path, field="path")
        except InvalidSpec as e:
            status = 404 if e.message.endswith("not found") else 400
            raise web.HTTPError(status, e.message) from None
        self.write_json(
            {
                "path": path,
                "kernel": notebook_kernel(read_notebook(notebook, field="path")),
                "parameters": notebook_parameters(notebook),
            }
        )


class JobOutputsHandler(AICloudHandler):
    """``/jobs/{id}/outputs``: the files a job produced."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str):
        """Names, sizes and download URLs of the plain files (no symlink is followed)."""
        job = self.manager.get(job_id, self.owner)
        self.write_json(
            {
                "outputs": [
                    {"name": name, "size": size, "url": f"{API}/jobs/{job_id}/outputs/{name}"}
                    for name, size in self.manager.output_files(job)
                ]
            }
        )


class JobOutputHandler(AICloudHandler):
    """``/jobs/{id}/outputs/{name}``: download one output file."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str, name: str):
        """The file's bytes, as an attachment."""
        job = self.manager.get(job_id, self.owner)
        if not OUTPUT_NAME.match(name):
            raise web.HTTPError(400, "name: not an output file name")
        with self.manager.open_output(job, name) as f:
            data = f.read()
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if name.endswith(".ipynb"):
            kind = "application/x-ipynb+json"
        self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        self.finish(data, set_content_type=kind)


default_handlers = [
    (rf"{API}/notebooks/parameters", NotebookParametersHandler),
    (rf"{API}/jobs/{JOB_ID}/outputs", JobOutputsHandler),
    (rf"{API}/jobs/{JOB_ID}/outputs/(?P<name>[^/]+)", JobOutputHandler),
]
