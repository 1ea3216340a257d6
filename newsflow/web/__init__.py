"""The read-only web page: the river of stories, a story's members and decisions, search, feeds, and
``/metrics`` for Prometheus. Server-rendered (Starlette + Jinja2 with autoescaping), usable without
JavaScript; every page reads through the same ``warehouse`` query functions as the CLI, in read sessions
that never block a run."""

from newsflow.web.app import create_app

__all__ = ["create_app"]
