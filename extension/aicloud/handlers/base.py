"""The base of aicloud's REST handlers: auth, body parsing, and the error-to-status map."""

from __future__ import annotations

import json
from http.client import responses
from typing import Any, TypeVar

from jupyter_server.base.handlers import APIHandler
from pydantic import BaseModel, ValidationError
from tornado import web

from aicloud.errors import AICloudError
from aicloud.manager import JobManager

AUTH_RESOURCE = "aicloud"
MAX_OWNER_LENGTH = 255
Model = TypeVar("Model", bound=BaseModel)


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, each starting with the field's dotted path."""
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "body"
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}")
    return "; ".join(lines)


class AICloudHandler(APIHandler):
    """Base of every aicloud handler: ``auth_resource``, the manager, and error mapping."""

    auth_resource = AUTH_RESOURCE

    @property
    def manager(self) -> JobManager:
        """The job manager of this server."""
        return self.settings["aicloud_manager"]

    @property
    def owner(self) -> str:
        """Whose jobs these requests act on (the server's user in the standalone home)."""
        return self.settings["aicloud_owner"]

    @property
    def caller(self) -> str:
        """Who is calling (the server's user in the standalone home)."""
        return self.settings["aicloud_owner"]

    @property
    def caller_is_admin(self) -> bool:
        """Whether the caller may act on other users' jobs (never, in the standalone home)."""
        return False

    def listed_owner(self, what: str) -> str | None:
        """Whose ``what`` a listing shows: ``?owner=``, which only an admin may set to another."""
        requested = self.get_query_argument("owner", None)
        if requested is None:
            return self.owner
        if not 1 <= len(requested) <= MAX_OWNER_LENGTH:
            raise web.HTTPError(400, f"owner: must be 1 to {MAX_OWNER_LENGTH} characters")
        if requested != self.caller and not self.caller_is_admin:
            raise web.HTTPError(403, f"owner: only an aicloud admin may list another user's {what}")
        return requested

    def prepare(self):
        """Refuse oversized bodies before anything reads them."""
        limit = self.settings["aicloud_max_body_bytes"]
        if len(self.request.body or b"") > limit:
            raise web.HTTPError(413, f"request body is larger than {limit} bytes")
        return super().prepare()

    def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object, or a 400 that says why not."""
        try:
            body = json.loads(self.request.body or b"")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise web.HTTPError(400, f"malformed JSON body: {e}") from None
        if not isinstance(body, dict):
            raise web.HTTPError(400, "body: must be a JSON object")
        return body

    def parse_body(self, model: type[Model]) -> Model:
        """Validate the JSON body against ``model``, strictly (no "5" for 5); 400 names fields."""
        self.json_body()
        try:
            return model.model_validate_json(self.request.body, strict=True)
        except ValidationError as e:
            raise web.HTTPError(400, describe_validation_error(e)) from None

    def int_argument(self, name: str, default: int, low: int, high: int) -> int:
        """An integer query argument within ``[low, high]``, or a 400 naming it."""
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise web.HTTPError(400, f"{name}: must be an integer") from None
        if not low <= value <= high:
            raise web.HTTPError(400, f"{name}: must be between {low} and {high}")
        return value

    def bool_argument(self, name: str) -> bool:
        """A boolean query argument (1/0, true/false)."""
        raw = self.get_query_argument(name, "0").lower()
        if raw in ("1", "true", "yes"):
            return True
        if raw in ("0", "false", "no", ""):
            return False
        raise web.HTTPError(400, f"{name}: must be true or false")

    def write_json(self, model: Any, status: int = 200) -> None:
        """Finish with ``model`` as JSON."""
        self.set_status(status)
        self.finish(json.dumps(model))

    def write_error(self, status_code: int, **kwargs) -> None:
        """Render ``{"message", "reason"}``; the message of a domain error goes out as is."""
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, AICloudError):
            message = error.message
        elif isinstance(error, web.HTTPError) and error.log_message:
            message = error.log_message % error.args if error.args else error.log_message
        else:
            super().write_error(status_code, **kwargs)
            return
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": message, "reason": responses.get(status_code)}))

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, AICloudError) and not self._finished:
            self.log.info(
                "aicloud: %s %s -> %s %s", self.request.method, self.request.path, e.status, e
            )
            self.send_error(e.status, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)


class NotFoundHandler(AICloudHandler):
    """Any other path under the API: a JSON 404, not the server's HTML page."""

    def prepare(self):
        """Answer 404 whatever the method."""
        raise web.HTTPError(404, "no such endpoint: %s %s", self.request.method, self.request.path)
