"""Staff accounts: one row per person, a role, an Argon2 password hash, an enabled flag.

Roles are ranked ``staff`` < ``reviewer`` < ``dpo``; ``clinician`` ranks as staff and is the one
role (besides dpo) that may act for the purpose ``care`` (see :func:`may_act_for_care`).
Passwords are hashed with Argon2id (argon2-cffi, OWASP's parameters); a password must be at least 12 characters and
not easy to guess (zxcvbn score 3 of 4, the user name counting as a guess). Generated passwords
are 20 letters and digits, never starting with ``-`` (they may end up as command-line arguments).

Every change is audited with the acting person (or the operating-system user at the command
line) and names the account, never a password.
"""
from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, utcnow

#: Rank of each role; a route asking for a role lets every role of that rank or higher in.
RANK = {"staff": 0, "clinician": 0, "reviewer": 1, "dpo": 2}
ROLES = tuple(RANK)
CARE_ROLES = ("clinician", "dpo")
NAME = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
#: Names of machines (service and plugin credentials), never a person's account.
RESERVED = ("orthanc-gdpr-service", "orthanc-gdpr-plugin")
MIN_LENGTH, MAX_LENGTH, MIN_SCORE = 12, 256, 3

#: Argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): tens of milliseconds.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


class User(Base):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    password_set_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]
    disabled_by: Mapped[str | None] = mapped_column(String(128))


class AccountError(ValueError):
    """A request about an account breaks a rule; ``field`` names what, the message says which rule."""

    status = 422

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field, self.rule = field, rule


class DuplicateAccount(AccountError):
    status = 409


class UnknownAccount(AccountError):
    status = 404


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    enabled: bool
    created_at: datetime
    created_by: str
    password_set_at: datetime

    @classmethod
    def of(cls, row: User) -> "Account":
        return cls(row.name, row.role, row.disabled_at is None, row.created_at, row.created_by,
                   row.password_set_at)


def rank(role: str) -> int:
    """Rank of a person's role; -1 for anything else (machines, patients)."""
    return RANK.get(role, -1)


def may_act_for_care(role: str) -> bool:
    return role in CARE_ROLES


def generate_password() -> str:
    """20 random letters and digits (about 119 bits), starting with a letter."""
    alphabet = string.ascii_letters + string.digits
    return secrets.choice(string.ascii_letters) + "".join(secrets.choice(alphabet) for _ in range(19))


def check_name(name: str) -> None:
    if not NAME.match(name or ""):
        raise AccountError("name", "2 to 64 characters: a lower-case letter, then lower-case letters, digits, '.', '_' or '-'")
    if name in RESERVED:
        raise AccountError("name", "reserved for a machine credential")


def check_role(role: str) -> None:
    if role not in RANK:
        raise AccountError("role", f"must be one of {', '.join(ROLES)}")


def check_strength(name: str, password: str) -> None:
    """Raise :class:`AccountError` (field ``password``) naming the rule a weak password breaks."""
    from zxcvbn import zxcvbn

    if len(password) < MIN_LENGTH:
        raise AccountError("password", f"must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise AccountError("password", f"must be at most {MAX_LENGTH} characters")
    if name.lower() in password.lower():
        raise AccountError("password", "must not contain the user name")
    score = zxcvbn(password, user_inputs=[name, "orthanc", "gdpr"])["score"]
    if score < MIN_SCORE:
        raise AccountError("password", f"too easy to guess (strength {score} of 4, at least {MIN_SCORE} needed)")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_hash(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


#: Verified against when the account does not exist, so an unknown name costs as much time as a wrong password.
DUMMY_HASH = _hasher.hash(generate_password())


def _row(s, name: str) -> User | None:
    return s.execute(select(User).where(User.name == name)).scalar_one_or_none()


def get(db, name: str) -> Account | None:
    with db.session() as s:
        row = _row(s, name)
        return Account.of(row) if row is not None else None


def password_hash_of(db, name: str) -> tuple[str, str, bool] | None:
    """(role, password hash, enabled) of an account, or None."""
    with db.session() as s:
        row = _row(s, name)
        return None if row is None else (row.role, row.password_hash, row.disabled_at is None)


def list_accounts(db) -> list[Account]:
    with db.session() as s:
        return [Account.of(r) for r in s.execute(select(User).order_by(User.name)).scalars()]


def create(db, name: str, role: str, password: str, actor: str, *, enforce_policy: bool = True) -> Account:
    """Add an account. ``enforce_policy=False`` only for accounts given in code (tests, embedding)."""
    check_name(name)
    check_role(role)
    if enforce_policy:
        check_strength(name, password)
    with db.session() as s:
        if _row(s, name) is not None:
            raise DuplicateAccount("name", "an account with this name already exists")
        row = User(name=name, role=role, password_hash=hash_password(password), created_by=actor)
        s.add(row)
        s.flush()
        return Account.of(row)


def _change(db, name: str, change) -> Account:
    with db.session() as s:
        row = _row(s, name)
        if row is None:
            raise UnknownAccount("name", "no account with this name")
        change(s, row)
        s.flush()
        return Account.of(row)


def set_password(db, name: str, password: str) -> Account:
    check_strength(name, password)
    new_hash = hash_password(password)

    def change(_s, row: User) -> None:
        row.password_hash, row.password_set_at = new_hash, utcnow()

    return _change(db, name, change)


def _keep_a_dpo(s, row: User, rule: str) -> None:
    """Refuse a change that would leave no enabled dpo account (nobody could administer accounts)."""
    if row.role == "dpo" and row.disabled_at is None:
        others = s.execute(select(User.id).where(User.role == "dpo", User.disabled_at.is_(None),
                                                 User.id != row.id)).first()
        if others is None:
            raise DuplicateAccount("name", rule)


def set_role(db, name: str, role: str) -> Account:
    """Give an account another role; the last enabled dpo keeps theirs."""
    check_role(role)

    def change(s, row: User) -> None:
        if role != row.role:
            _keep_a_dpo(s, row, "the last enabled dpo account cannot lose its role")
            row.role = role

    return _change(db, name, change)


def set_enabled(db, name: str, enabled: bool, actor: str) -> Account:
    """Enable or disable an account; the last enabled dpo cannot be disabled."""

    def change(s, row: User) -> None:
        if enabled:
            row.disabled_at, row.disabled_by = None, None
            return
        _keep_a_dpo(s, row, "the last enabled dpo account cannot be disabled")
        if row.disabled_at is None:
            row.disabled_at, row.disabled_by = utcnow(), actor

    return _change(db, name, change)


def has_enabled(db, role: str) -> bool:
    with db.session() as s:
        return s.execute(select(User.id).where(User.role == role, User.disabled_at.is_(None))).first() is not None


def seed(db, users: dict[str, tuple[str, str]]) -> None:
    """Create the accounts given in code (``Settings.staff_users``) that do not exist yet."""
    for name, (password, role) in users.items():
        try:
            create(db, name, role, password, "settings", enforce_policy=False)
        except DuplicateAccount:
            pass
