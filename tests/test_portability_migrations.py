"""Service processes starting together on one fresh PostgreSQL database migrate it once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from pg import throwaway_database
from portability.db import Database


def test_concurrent_start_ups_migrate_a_fresh_database_once():
    with throwaway_database("migrations_test") as url:
        databases = [Database(url) for _ in range(4)]
        try:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda db: db.migrate(), databases))  # raises if any start-up failed
            with databases[0].engine.connect() as c:
                versions = c.execute(sa.text("SELECT version_num FROM portability_alembic_version")).all()
            assert len(versions) == 1
        finally:
            for db in databases:
                db.engine.dispose()
