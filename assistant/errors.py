"""The one exception hierarchy of driver-help-assistant.

Callers catch :class:`AssistantError` (or one of its branches); a dependency's own
exceptions never escape the library, they are wrapped at the edge with ``raise ... from``.
A human handoff is a normal :class:`~assistant.response.HelpResponse`, not an exception.

::

    AssistantError
      ConfigurationError        # developer misuse: bad settings, bad arguments
        IndexMismatchError      # the index was built by another embedding model
        MissingDependencyError  # a feature whose optional extra is not installed
      InputError                # a request or journey the library cannot accept
      NotFoundError             # no conversation (or record) with that id
      CorpusError               # the policy corpus is missing, unreadable or empty
      IndexNotReadyError        # no index has been built yet
      BackendError              # the vector store, embedder or model failed
        BackendTimeout          # ... by running past its deadline
      AuthError                 # a console sign-in refused or throttled
"""

from __future__ import annotations


class AssistantError(Exception):
    """Base class for every error the library raises."""


class ConfigurationError(AssistantError):
    """The library was configured or called incorrectly."""


class IndexMismatchError(ConfigurationError):
    """The index was built with a different embedding model than the one configured for queries."""

    def __init__(self, *, index_model: str, query_model: str) -> None:
        self.index_model = index_model
        self.query_model = query_model
        super().__init__(
            f"the index was built with embedding model {index_model!r} but queries would use "
            f"{query_model!r}; rebuild it with `assistant ingest --rebuild` or configure the "
            "original model"
        )


class MissingDependencyError(ConfigurationError):
    """A feature needs an optional dependency that is not installed (its extra names it).

    The core install answers questions offline; the HTTP service and console (``[service]``),
    the eval reports and refitting (``[evals]``) and a PostgreSQL store (``[postgres]``) are
    extras: ``pip install 'driver-help-assistant[service]'``."""

    def __init__(self, *, feature: str, module: str, extra: str) -> None:
        self.feature = feature
        self.module = module
        self.extra = extra
        super().__init__(
            f"{feature} needs the optional dependency {module!r}, which is not installed; "
            f"install it with: pip install 'driver-help-assistant[{extra}]'"
        )


class InputError(AssistantError):
    """A request, journey or history that cannot be accepted (oversized, malformed)."""


class NotFoundError(AssistantError):
    """No conversation, record or other stored item has the id asked for."""


class CorpusError(AssistantError):
    """The policy corpus is missing, unreadable or holds no usable document."""


class IndexNotReadyError(AssistantError):
    """No usable index exists yet; run ``assistant ingest`` first."""


class BackendError(AssistantError):
    """A backend (vector store, embedder, chat model) failed."""


class BackendTimeout(BackendError):
    """A backend did not answer within its deadline."""


__all__ = [
    "AssistantError",
    "BackendError",
    "BackendTimeout",
    "ConfigurationError",
    "CorpusError",
    "IndexMismatchError",
    "IndexNotReadyError",
    "InputError",
    "MissingDependencyError",
    "NotFoundError",
]


class AuthError(AssistantError):
    """A console sign-in was refused (wrong name or password), or too many failed; when
    throttled, ``retry_after`` says how many seconds to wait."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
