"""The HTTP service (FastAPI): ``create_app(settings)``; run it with ``assistant serve``.

Needs the ``[service]`` extra (``pip install 'driver-help-assistant[service]'``); without it,
importing this package raises :class:`~assistant.errors.MissingDependencyError`."""

from assistant._optional import require

require("the HTTP service", "service", "fastapi", "prometheus_client", "multipart", "jinja2", "argon2")

from assistant.service.app import create_app  # noqa: E402  (after the check, so a missing extra is named)

__all__ = ["create_app"]
