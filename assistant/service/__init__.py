"""The HTTP service (FastAPI): ``create_app(settings)``; run it with ``assistant serve``."""

from assistant.service.app import create_app

__all__ = ["create_app"]
