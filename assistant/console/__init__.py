"""The support-lead console: users and sessions (:class:`ConsoleUsers`) and the web pages that
work the review queue, show a flagged conversation with its evidence, and report analytics
(:func:`~assistant.console.pages.mount_console`, mounted by :func:`assistant.create_app` under
``/console``).

``import assistant`` does not import this package until it is used. It needs the ``[service]``
extra (argon2 for passwords, Jinja2 and FastAPI for the pages).
"""

from assistant._optional import require

require("the console", "service", "argon2")

from assistant.console.users import ROLES, ConsoleSession, ConsoleUser, ConsoleUsers, Role  # noqa: E402

__all__ = ["ROLES", "ConsoleSession", "ConsoleUser", "ConsoleUsers", "Role"]
