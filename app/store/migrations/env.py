"""Alembic's entry: migrate the connection app/store/migrate.py hands over, in its transaction."""

from alembic import context

from app.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Run the migrations through app.store (Database.start()), not alembic.")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
