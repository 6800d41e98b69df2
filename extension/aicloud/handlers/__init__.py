"""aicloud's REST API under ``/aicloud/api/v1``: every route table, in one list."""

from aicloud.handlers import jobs, service

default_handlers = [*jobs.default_handlers, *service.default_handlers]

__all__ = ["default_handlers"]
