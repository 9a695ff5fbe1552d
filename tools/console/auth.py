"""Users, roles, sessions and CSRF tokens of the console.

Users live in one JSON file (``Settings.console_users_path``, mode 0600) with argon2id hashes
(argon2-cffi's defaults, RFC 9106's second recommended profile); there is no built-in user and
no default password: ``ecgmon console adduser NAME --role ROLE --password-stdin`` creates one,
and only ``ecgmon demo`` makes a user of its own, with a random password it prints.

Sessions are kept in memory, so a console restart logs everyone out (actions are never lost:
they are in Kafka). The session cookie is ``HttpOnly`` and ``SameSite=Strict``; every state-changing
request must also carry the session's CSRF token (form field ``csrf_token`` or header
``X-CSRF-Token``). ``POST /login`` is the exception: it has no session yet, and the strict cookie
keeps another site from riding on the session it creates.

Roles: ``technician`` and ``physician`` act on alerts; ``physician`` and ``admin`` set a
patient's notification criteria; ``admin`` may annotate but neither confirms nor rejects (that is
a clinical judgement). Everyone logged in may look.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ecgmon.errors import ConfigError

ROLES: tuple[str, ...] = ("technician", "physician", "admin")
PERMISSIONS: dict[str, frozenset[str]] = {
    "acknowledge": frozenset({"technician", "physician"}),
    "confirm": frozenset({"technician", "physician"}),
    "reject": frozenset({"technician", "physician"}),
    "annotate": frozenset({"technician", "physician", "admin"}),
    "escalate": frozenset({"technician", "physician"}),
    "criteria": frozenset({"physician", "admin"}),
}
"""Which roles may take each action."""
_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))  # verified for unknown users: same time either way


def allowed(role: str, kind: str) -> bool:
    """True when ``role`` may take action ``kind``."""
    return role in PERMISSIONS.get(kind, frozenset())


@dataclass(frozen=True)
class User:
    """A console user: name and role."""

    name: str
    role: str


class UserStore:
    """The users file: name -> role and argon2 hash."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, dict[str, str]]:
        if not self.path.exists():
            return {}
        try:
            users = json.loads(self.path.read_text())["users"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"The console users file {self.path} cannot be read ({exc}); fix or remove it.") from None
        return dict(users)

    def names(self) -> list[str]:
        """Every user name, sorted."""
        return sorted(self._read())

    def add(self, name: str, role: str, password: str, *, min_chars: int) -> User:
        """Create or replace user ``name``; ``ConfigError`` for a bad name, role or short password."""
        if not _NAME_RE.fullmatch(name):
            raise ConfigError(f"User name {name!r:.80} is not allowed: use 1-64 characters of A-Z a-z 0-9 . _ -.")
        if role not in ROLES:
            raise ConfigError(f"Role {role!r} is unknown; use one of {', '.join(ROLES)}.")
        if len(password) < min_chars:
            raise ConfigError(
                f"The password has {len(password)} characters; it needs at least {min_chars} "
                "(ECGMON_CONSOLE_PASSWORD_MIN_CHARS)."
            )
        users = self._read()
        users[name] = {"role": role, "hash": _HASHER.hash(password)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"users": users}, fh, indent=1)
        os.replace(tmp, self.path)
        return User(name, role)

    def verify(self, name: str, password: str) -> User | None:
        """The user when ``password`` is right, else None (in about the same time for unknown users)."""
        entry = self._read().get(name)
        try:
            _HASHER.verify(entry["hash"] if entry else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return None
        return User(name, entry["role"]) if entry else None


@dataclass
class Session:
    """A logged-in browser or API client."""

    user: User
    csrf: str
    last_used: float


class Sessions:
    """Session id -> ``Session``, in memory; idle sessions expire."""

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self._by_id: dict[str, Session] = {}

    def create(self, user: User) -> tuple[str, Session]:
        """A new session for ``user`` and its id (the cookie value)."""
        sid = secrets.token_urlsafe(32)
        session = Session(user, secrets.token_urlsafe(32), time.monotonic())
        self._by_id[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        """The live session of ``sid``, touched; None when unknown or expired."""
        if not sid:
            return None
        session = self._by_id.get(sid)
        now = time.monotonic()
        if session is None or now - session.last_used > self.idle_s:
            self._by_id.pop(sid, None)
            return None
        session.last_used = now
        return session

    def drop(self, sid: str | None) -> None:
        """End a session (logout)."""
        if sid:
            self._by_id.pop(sid, None)


def csrf_ok(session: Session, token: str | None) -> bool:
    """True when ``token`` is the session's CSRF token (constant-time comparison)."""
    return bool(token) and hmac.compare_digest(session.csrf.encode(), str(token).encode())
