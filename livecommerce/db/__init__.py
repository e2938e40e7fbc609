"""Database access: the engine, the embedded PostgreSQL server and migrations."""
