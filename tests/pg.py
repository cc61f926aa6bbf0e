"""Throw-away PostgreSQL databases on this machine's server (127.0.0.1:5432, trust auth)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """Create a fresh database, yield its SQLAlchemy URL, drop it afterwards.

    Skips the calling test (saying why) when PostgreSQL does not answer.
    """
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as e:  # noqa: BLE001 - any connection failure means: no PostgreSQL here
        print(f"\nPostgreSQL unreachable on 127.0.0.1:5432, PostgreSQL variants skipped: {e}")
        pytest.skip(f"PostgreSQL unreachable on 127.0.0.1:5432: {e}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def empty_schema(url: str) -> None:
    """Drop every table of a throw-away database (the ``public`` schema, made again empty), so the
    next service start migrates from scratch whatever tables later revisions add."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(sa.text("DROP SCHEMA public CASCADE"))
        c.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
