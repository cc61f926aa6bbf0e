"""Alembic environment: run in code by :func:`portability.db.upgrade` with a live connection."""
from alembic import context
from sqlalchemy import create_engine

from portability.models import Base

config = context.config
target_metadata = Base.metadata

connection = config.attributes.get("connection")
if connection is None:  # `alembic -x url=...` from a shell
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    with create_engine(url).begin() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          version_table="portability_alembic_version")
        context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=target_metadata,
                      version_table="portability_alembic_version")
    with context.begin_transaction():
        context.run_migrations()
