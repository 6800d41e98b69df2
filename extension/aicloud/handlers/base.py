"""The base of aicloud's REST handlers: auth, body parsing, and the error-to-status map."""

from __future__ import annotations

import errno
import json
from http.client import responses
from typing import Any, TypeVar

from jupyter_server.base.handlers import APIHandler
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import OperationalError
from tornado import web

from aicloud.errors import AICloudError
from aicloud.manager import JobManager

AUTH_RESOURCE = "aicloud"
MAX_OWNER_LENGTH = 255
#: How deeply a request body's arrays and objects may nest; no spec comes near it.
MAX_JSON_DEPTH = 64
VOLUME_FULL = "no space left on the data volume"
VOLUME_READ_ONLY = "the data volume is read-only"
Model = TypeVar("Model", bound=BaseModel)


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, each starting with the field's dotted path."""
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "body"
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}")
    return "; ".join(lines)


def json_depth(value: Any, limit: int) -> int:
    """How deeply ``value`` nests, counted up to ``limit + 1`` (no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list):
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            break
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)
    return deepest


def storage_failure(error: BaseException | None) -> str | None:
    """Why the data volume refused a write (full, read-only), or None for other errors.

    Looks through the chain of causes: SQLite's errors come wrapped by SQLAlchemy.
    """
    for _ in range(8):
        if error is None:
            return None
        if isinstance(error, OSError):
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                return VOLUME_FULL
            if error.errno == errno.EROFS:
                return VOLUME_READ_ONLY
        if isinstance(error, OperationalError):
            text = str(error.orig).lower()
            if "database or disk is full" in text:
                return VOLUME_FULL
            if "readonly database" in text or "read-only file system" in text:
                return VOLUME_READ_ONLY
        error = error.__cause__ or error.__context__
    return None


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
        too_deep = f"body: JSON nested deeper than {MAX_JSON_DEPTH} levels"
        try:
            body = json.loads(self.request.body or b"")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise web.HTTPError(400, f"malformed JSON body: {e}") from None
        except RecursionError:  # deeper than the interpreter's stack: far past the limit
            raise web.HTTPError(400, too_deep) from None
        if json_depth(body, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
            raise web.HTTPError(400, too_deep)
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
        reason = storage_failure(e)
        if reason is not None and not self._finished:
            self.log.warning(
                "aicloud: %s %s -> 503 %s: %s", self.request.method, self.request.path, reason, e
            )
            failure = web.HTTPError(503, reason)
            self.send_error(503, exc_info=(type(failure), failure, e.__traceback__))
            return
        super()._handle_request_exception(e)


class NotFoundHandler(AICloudHandler):
    """Any other path under the API: a JSON 404, not the server's HTML page."""

    def prepare(self):
        """Answer 404 whatever the method."""
        raise web.HTTPError(404, "no such endpoint: %s %s", self.request.method, self.request.path)
