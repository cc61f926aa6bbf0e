"""Checking a login: password, enabled account, and throttling of failed attempts.

Failed logins are counted per account and per client address in the database (so every service
process sharing it counts together): :data:`ACCOUNT_LIMIT` failures for one account, or
:data:`ADDRESS_LIMIT` from one address, within :data:`WINDOW` lock further attempts for
:data:`LOCK`; a correct password does not get through a lock. Every failure and every refusal
for a lock is audited (``login.failed``, ``login.throttled``) with the claimed name and the
address, never the password. A successful check that needed the hash clears the account's count.

Argon2 is slow on purpose (tens of milliseconds), so a verified password is remembered for
:data:`CACHE_SECONDS` per process, keyed by a keyed hash of name and password and tied to the
stored hash: a password reset or a disabled account takes effect at once.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Integer, String
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from . import accounts, audit
from .models import Base, aware, utcnow

ACCOUNT_LIMIT = 5
ADDRESS_LIMIT = 20
WINDOW = timedelta(minutes=15)
LOCK = timedelta(minutes=15)
CACHE_SECONDS = 60.0


class LoginThrottle(Base):
    """Failed attempts of one key (``account:NAME`` or ``address:IP``) in the current window."""
    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]


@dataclass(frozen=True)
class Outcome:
    """``result`` is "ok", "wrong" (unknown name or wrong password), "disabled" or "throttled"."""
    result: str
    name: str
    role: str | None = None

    @property
    def ok(self) -> bool:
        return self.result == "ok"


class _VerifiedCache:
    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._entries: dict[bytes, tuple[str, float]] = {}

    def _digest(self, name: str, password: str) -> bytes:
        return hmac.new(self._key, f"{name}\0{password}".encode(), hashlib.sha256).digest()

    def holds(self, name: str, password: str, password_hash: str) -> bool:
        with self._lock:
            entry = self._entries.get(self._digest(name, password))
        return entry is not None and entry[1] > time.monotonic() and hmac.compare_digest(entry[0], password_hash)

    def remember(self, name: str, password: str, password_hash: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries = {k: v for k, v in self._entries.items() if v[1] > now}
            self._entries[self._digest(name, password)] = (password_hash, now + CACHE_SECONDS)


_verified = _VerifiedCache()


def _keys(name: str, address: str | None) -> list[tuple[str, int]]:
    keys = [(f"account:{name[:100]}", ACCOUNT_LIMIT)]
    if address:
        keys.append((f"address:{address[:90]}", ADDRESS_LIMIT))
    return keys


def _locked(db, name: str, address: str | None) -> bool:
    now = utcnow()
    with db.session() as s:
        for key, _ in _keys(name, address):
            row = s.get(LoginThrottle, key)
            if row is not None and row.locked_until is not None and aware(row.locked_until) > now:
                return True
    return False


def _count_failure(db, name: str, address: str | None) -> None:
    now = utcnow()
    for key, limit in _keys(name, address):
        for _attempt in range(2):  # a concurrent first failure of the same key: count again
            try:
                with db.session() as s:
                    row = s.get(LoginThrottle, key, with_for_update=True)
                    if row is None:
                        row = LoginThrottle(key=key, failures=0, window_start=now)
                        s.add(row)
                    if aware(row.window_start) + WINDOW < now:
                        row.failures, row.window_start, row.locked_until = 0, now, None
                    row.failures += 1
                    if row.failures >= limit:
                        row.locked_until = now + LOCK
                break
            except IntegrityError:
                continue


def _forgive(db, name: str) -> None:
    with db.session() as s:
        row = s.get(LoginThrottle, f"account:{name[:100]}")
        if row is not None:
            s.delete(row)


def authenticate(db, name: str, password: str, address: str | None, channel: str) -> Outcome:
    """Check ``name``/``password`` from client ``address``; audits failures and locks.

    ``channel`` says where the attempt came from (``api``, ``web``, ``orthanc``), for the audit.
    """
    if _locked(db, name, address):
        audit.record("login.throttled", actor=name, client=address, channel=channel,
                     reason=f"too many failed logins; locked for up to {int(LOCK.total_seconds() // 60)} minutes")
        return Outcome("throttled", name)
    found = accounts.password_hash_of(db, name)
    role, password_hash, enabled = found if found is not None else (None, accounts.DUMMY_HASH, False)
    if found is not None and _verified.holds(name, password, password_hash):
        verified = True
    else:
        verified = accounts.verify_hash(password_hash, password) and found is not None
        if verified and enabled:
            _verified.remember(name, password, password_hash)
            _forgive(db, name)
    if verified and enabled:
        return Outcome("ok", name, role)
    result = "disabled" if verified else "wrong"
    _count_failure(db, name, address)
    audit.record("login.failed", actor=name, client=address, channel=channel,
                 reason="account disabled" if verified else "unknown user name or wrong password")
    return Outcome(result, name)
