"""Database backends: a connector per database (SQLite, PostgreSQL), sync and async."""
