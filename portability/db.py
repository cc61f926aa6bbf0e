"""Database engine, sessions and the Alembic upgrade run at start-up."""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
log = logging.getLogger("portability.db")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # WAL: readers don't block the worker
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten, not left in free pages
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


#: Key of the PostgreSQL advisory lock that serialises migrations of service processes
#: starting at the same time on one database (an arbitrary constant of this project).
MIGRATION_LOCK = 0x6764707231


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision (Alembic, configured in code).

    On PostgreSQL a transaction-scoped advisory lock makes concurrent starters wait for each
    other; the second finds the schema current and does nothing.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Database:
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):  # owner-only: it holds patients' data and password hashes
            path = Path(url[len("sqlite:///"):])
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def migrate(self) -> None:
        upgrade(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def compact(self) -> None:
        """After an erasure: make deleted data leave the files. SQLite (``secure_delete`` on) copies
        the write-ahead log into the database and truncates it, so no older page image survives.
        PostgreSQL rewrites ``patient_keys`` (``VACUUM FULL``, a small table: the old row version
        holding a shredded key goes at once); the other tables wait for the maintenance
        ``VACUUM FULL`` of ``docs/ERASURE.md``. A busy table is left for that maintenance too."""
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as c:
                c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            return
        try:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.exec_driver_sql("SET lock_timeout = '5s'")
                try:
                    c.exec_driver_sql("VACUUM FULL patient_keys")
                finally:
                    c.exec_driver_sql("RESET lock_timeout")  # the connection goes back to the pool
        except OperationalError as e:
            log.warning("VACUUM FULL patient_keys not run now (%s); left to the maintenance VACUUM",
                        type(e.orig).__name__ if getattr(e, "orig", None) else type(e).__name__)

    def dispose(self) -> None:
        self.engine.dispose()
