"""aicloud's REST API under ``/aicloud/api/v1``: every route table, in one list."""

from aicloud.handlers import job_views, jobs, notebooks, resource_usage, schedules, service
from aicloud.handlers.base import NotFoundHandler

default_handlers = [
    *job_views.default_handlers,  # first: /jobs/compare before /jobs/{id}
    *jobs.default_handlers,
    *notebooks.default_handlers,
    *schedules.default_handlers,
    *service.default_handlers,
    *resource_usage.default_handlers,
    # Last: any other path under the API (a malformed job id, say) gets a JSON 404.
    (rf"{jobs.API}(/.*)?", NotFoundHandler),
]

__all__ = ["default_handlers"]
