"""Optional dependencies, imported where a feature first needs them.

The core install (``pip install driver-help-assistant``) answers questions offline. The HTTP
service and the console (``[service]``: FastAPI, uvicorn, Jinja2, argon2, Prometheus), the eval
reports and refitting (``[evals]``: plotly, Jinja2, scikit-learn) and a PostgreSQL store
(``[postgres]``: psycopg) are extras. A feature whose extra is missing raises
:class:`~assistant.errors.MissingDependencyError` naming the extra, never a bare
``ModuleNotFoundError`` from deep inside.
"""

from __future__ import annotations

import importlib

from assistant.errors import MissingDependencyError

#: The extra that installs each optional module (its import name).
EXTRA_OF: dict[str, str] = {
    "fastapi": "service", "starlette": "service", "uvicorn": "service", "prometheus_client": "service",
    "argon2": "service", "multipart": "service", "python_multipart": "service",
    "plotly": "evals", "sklearn": "evals", "jinja2": "evals",
    "psycopg": "postgres",
}


def missing(feature: str, exc: ModuleNotFoundError, *, extra: str | None = None) -> Exception:
    """The error to raise for ``exc`` when ``feature`` imported an optional module: a
    :class:`MissingDependencyError` naming its extra, or ``exc`` itself when the missing module
    is not an optional one (a broken install is not ours to relabel)."""
    module = (exc.name or "").split(".")[0]
    chosen = extra or EXTRA_OF.get(module)
    if chosen is None:
        return exc
    return MissingDependencyError(feature=feature, module=module, extra=chosen)


def require(feature: str, extra: str, *modules: str) -> None:
    """Import ``modules`` for ``feature``, or raise :class:`MissingDependencyError` naming the
    first one missing and the ``extra`` that installs it."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] != name.split(".")[0]:
                raise  # installed, but one of its own imports is broken
            raise missing(feature, exc, extra=extra) from exc
