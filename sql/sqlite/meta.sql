-- About the database file itself (SQLite only).

-- name: table_names()
-- Every table of the file (SQLite's own, sqlite_*, aside): musicstore.backends.sqlite._check_sqlite_file
-- tells a file of another program's from a musicstore database before migrate writes to it.
SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name;
