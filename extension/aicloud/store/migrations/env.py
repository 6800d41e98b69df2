"""Alembic environment for the aicloud job store (run by ``aicloud.store.migrate``)."""

from alembic import context
from sqlalchemy import create_engine

from aicloud.store.tables import Base

config = context.config
connection = config.attributes.get("connection")


def run(conn) -> None:
    """Run the migrations on one connection."""
    context.configure(
        connection=conn,
        target_metadata=Base.metadata,
        render_as_batch=conn.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        run(conn)
    engine.dispose()
