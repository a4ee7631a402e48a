"""Console users, sessions and the sign-in rate limit, kept in the conversation store so every
service worker agrees on them.

- passwords are hashed with argon2id (``argon2-cffi``); only the hash is stored;
- a session is a random cookie token; the database keeps its SHA-256, never the token, plus the
  session's CSRF token, which every form of the console carries in a hidden field;
- failed sign-ins are counted per account and per client address: after ``max_failures`` in
  ``window`` the next attempt is refused with a ``retry_after`` (:class:`~assistant.errors.AuthError`);
- sign-ins, sign-outs and user changes go to the console's audit log (review actions have their own,
  :meth:`~assistant.store.ReviewQueue.history`).

>>> users = ConsoleUsers(store)
>>> users.add("sam", "a long passphrase", role="lead")
>>> token, session = users.sign_in("sam", "a long passphrase", client="127.0.0.1")
>>> users.session(token).role
'lead'
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from assistant.errors import AuthError, ConfigurationError, NotFoundError
from assistant.store import schema
from assistant.store.store import ConversationStore, _utc

Role = Literal["reviewer", "lead"]
ROLES: tuple[Role, ...] = ("reviewer", "lead")
MIN_PASSWORD_CHARS = 10
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ConsoleUser(BaseModel):
    """A console account (never its password or hash)."""

    model_config = ConfigDict(frozen=True)

    name: str
    role: Role
    created_at: datetime
    active: bool


class ConsoleSession(BaseModel):
    """A signed-in browser: who, their role, and the CSRF token its forms must send back."""

    model_config = ConfigDict(frozen=True)

    user: str
    role: Role
    csrf: str
    expires_at: datetime

    @property
    def is_lead(self) -> bool:
        return self.role == "lead"


class AuditEntry(BaseModel):
    """One line of the console's audit log."""

    model_config = ConfigDict(frozen=True)

    actor: str
    action: str
    target: str | None
    at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ConsoleUsers:
    """Users, sessions and sign-in throttling of the console, in a :class:`ConversationStore`."""

    def __init__(
        self,
        store: ConversationStore,
        *,
        session_hours: float = 12,
        max_failures: int = 5,
        window: timedelta = timedelta(minutes=15),
        hasher: PasswordHasher | None = None,
    ) -> None:
        self.store = store
        self.session_length = timedelta(hours=session_hours)
        self.max_failures = max_failures
        self.window = window
        self.hasher = hasher or PasswordHasher()
        # verified against when the account does not exist, so both cases take the same time
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    # -- accounts ---------------------------------------------------------------------------

    def add(self, name: str, password: str, *, role: Role = "reviewer", actor: str = "cli") -> ConsoleUser:
        """Create an account; :class:`~assistant.errors.ConfigurationError` if the name is taken,
        malformed, the role unknown or the password shorter than ten characters."""
        name = self._valid_name(name)
        self._check_role(role)
        hashed = self._hash(password)
        with self.store._session(write=True) as session:
            if session.get(schema.ConsoleUser, name) is not None:
                raise ConfigurationError(f"user {name!r} exists; use `assistant users passwd {name}` to change it")
            now = datetime.now(UTC)
            session.add(schema.ConsoleUser(name=name, role=role, password_hash=hashed, created_at=now, active=True))
            session.add(schema.ConsoleAudit(actor=actor, action="user_add", target=f"{name} ({role})", at=now))
        return self.get(name)

    def set_password(self, name: str, password: str, *, actor: str = "cli") -> None:
        """Change a password; every session of that user ends."""
        hashed = self._hash(password)
        with self.store._session(write=True) as session:
            row = self._row(session, name)
            row.password_hash = hashed
            session.execute(delete(schema.ConsoleSession).where(schema.ConsoleSession.user_name == row.name))
            session.add(schema.ConsoleAudit(actor=actor, action="password", target=row.name, at=datetime.now(UTC)))

    def set_role(self, name: str, role: Role, *, actor: str = "cli") -> ConsoleUser:
        """Change a user's role."""
        self._check_role(role)
        with self.store._session(write=True) as session:
            row = self._row(session, name)
            row.role = role
            session.add(schema.ConsoleAudit(actor=actor, action="role", target=f"{row.name} ({role})", at=datetime.now(UTC)))
        return self.get(name)

    def set_active(self, name: str, active: bool, *, actor: str = "cli") -> ConsoleUser:
        """Disable (or re-enable) an account; disabling ends its sessions."""
        with self.store._session(write=True) as session:
            row = self._row(session, name)
            row.active = active
            if not active:
                session.execute(delete(schema.ConsoleSession).where(schema.ConsoleSession.user_name == row.name))
            action = "user_enable" if active else "user_disable"
            session.add(schema.ConsoleAudit(actor=actor, action=action, target=row.name, at=datetime.now(UTC)))
        return self.get(name)

    def get(self, name: str) -> ConsoleUser:
        with self.store._session() as session:
            return _view(self._row(session, name))

    def all(self) -> list[ConsoleUser]:
        """Every account, by name."""
        with self.store._session() as session:
            return [_view(row) for row in session.scalars(select(schema.ConsoleUser).order_by(schema.ConsoleUser.name))]

    def count(self) -> int:
        with self.store._session() as session:
            return int(session.scalar(select(func.count()).select_from(schema.ConsoleUser)) or 0)

    # -- sessions ---------------------------------------------------------------------------

    def sign_in(self, name: str, password: str, *, client: str = "unknown") -> tuple[str, ConsoleSession]:
        """Check the password; return a new session's cookie token and the session.

        Raises :class:`~assistant.errors.AuthError` for a wrong name or password (the same
        message for both) and, with ``retry_after``, when the account or the client address
        failed too often within the window.
        """
        name = name.strip()[:64]
        keys = (f"user:{name.lower()}", f"client:{client[:120]}")
        now = datetime.now(UTC)
        wait = self._throttled(keys, now)
        if wait is not None:
            raise AuthError("too many failed sign-ins; try again later", retry_after=wait)
        with self.store._session() as session:
            row = session.get(schema.ConsoleUser, name)
            stored_hash, role, active = (row.password_hash, row.role, row.active) if row else (self._dummy_hash, "", False)
        try:
            self.hasher.verify(stored_hash, password)
            verified = row is not None and active
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            verified = False
        if not verified:
            with self.store._session(write=True) as session:
                for key in keys:
                    session.add(schema.LoginAttempt(key=key, at=now))
                session.add(schema.ConsoleAudit(actor=name or "-", action="sign_in_failed", target=None, at=now))
            raise AuthError("wrong name or password")
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires = now + self.session_length
        rehash = self.hasher.check_needs_rehash(stored_hash)
        with self.store._session(write=True) as session:
            session.execute(delete(schema.LoginAttempt).where(schema.LoginAttempt.key == keys[0]))
            session.execute(delete(schema.ConsoleSession).where(schema.ConsoleSession.expires_at < now))
            session.add(schema.ConsoleSession(
                token_hash=_digest(token), user_name=name, csrf=csrf, created_at=now, expires_at=expires,
            ))
            if rehash:
                live = session.get(schema.ConsoleUser, name)
                if live is not None:
                    live.password_hash = self.hasher.hash(password)
            session.add(schema.ConsoleAudit(actor=name, action="sign_in", target=None, at=now))
        return token, ConsoleSession(user=name, role=role, csrf=csrf, expires_at=expires)  # type: ignore[arg-type]

    def session(self, token: str | None) -> ConsoleSession | None:
        """The live session behind a cookie token, or None (unknown, expired, user disabled)."""
        if not token or len(token) > 128:
            return None
        now = datetime.now(UTC)
        with self.store._session() as session:
            found = session.execute(
                select(schema.ConsoleSession, schema.ConsoleUser)
                .join(schema.ConsoleUser, schema.ConsoleUser.name == schema.ConsoleSession.user_name)
                .where(schema.ConsoleSession.token_hash == _digest(token))
            ).first()
        if found is None:
            return None
        row, user = found
        if _utc(row.expires_at) <= now or not user.active:
            return None
        return ConsoleSession(user=user.name, role=user.role, csrf=row.csrf, expires_at=_utc(row.expires_at))  # type: ignore[arg-type]

    def sign_out(self, token: str | None) -> None:
        """End the session behind ``token`` (nothing happens for an unknown one)."""
        if not token:
            return
        with self.store._session(write=True) as session:
            row = session.get(schema.ConsoleSession, _digest(token))
            if row is not None:
                session.add(schema.ConsoleAudit(actor=row.user_name, action="sign_out", target=None, at=datetime.now(UTC)))
                session.delete(row)

    def audit(self, *, limit: int = 100) -> list[AuditEntry]:
        """The newest entries of the console's audit log."""
        statement = select(schema.ConsoleAudit).order_by(schema.ConsoleAudit.id.desc()).limit(limit)
        with self.store._session() as session:
            return [
                AuditEntry(actor=a.actor, action=a.action, target=a.target, at=_utc(a.at))
                for a in session.scalars(statement)
            ]

    # -- helpers ----------------------------------------------------------------------------

    def _throttled(self, keys: tuple[str, ...], now: datetime) -> float | None:
        since = now - self.window
        with self.store._session() as session:
            for key in keys:
                times = session.scalars(
                    select(schema.LoginAttempt.at)
                    .where(schema.LoginAttempt.key == key, schema.LoginAttempt.at >= since)
                    .order_by(schema.LoginAttempt.at)
                ).all()
                if len(times) >= self.max_failures:
                    oldest = _utc(times[-self.max_failures])
                    return max(1.0, (oldest + self.window - now).total_seconds())
        return None

    def _hash(self, password: str) -> str:
        if len(password) < MIN_PASSWORD_CHARS:
            raise ConfigurationError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
        if len(password) > 1024:
            raise ConfigurationError("a password may have at most 1024 characters")
        return self.hasher.hash(password)

    @staticmethod
    def _valid_name(name: str) -> str:
        name = name.strip()
        if not _NAME.match(name):
            raise ConfigurationError(
                "a user name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return name

    @staticmethod
    def _check_role(role: str) -> None:
        if role not in ROLES:
            raise ConfigurationError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")

    @staticmethod
    def _row(session: Session, name: str) -> schema.ConsoleUser:
        row = session.get(schema.ConsoleUser, name.strip())
        if row is None:
            raise NotFoundError(f"no console user {name!r}")
        return row


def _view(row: schema.ConsoleUser) -> ConsoleUser:
    return ConsoleUser(name=row.name, role=row.role, created_at=_utc(row.created_at), active=row.active)  # type: ignore[arg-type]
