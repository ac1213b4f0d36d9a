"""The database: one connection pool (SQLite by default, PostgreSQL by URL), schema, migrations.

It knows nothing of the web or the engine. `Database` opens and migrates it and hands out
transactions; `schema.metadata` holds the tables of every revision; the SQL of each aggregate
lives in its own module here (`nights`).
"""

from app.store.database import Database, DatabaseUnavailable
from app.store.schema import metadata

__all__ = ["Database", "DatabaseUnavailable", "metadata"]
