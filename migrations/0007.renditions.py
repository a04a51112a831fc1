"""Renditions: one row per file made from a generation's master (MP3, Opus, Vorbis, FLAC, WAV at a loudness
profile), deleted with its generation (``ON DELETE CASCADE``).

A row records the format and codec settings, the loudness profile, where the file is (``storage_key``,
relative to the output root), its size, duration and SHA-256, and what its decoded audio measured. Unique by
(generation, format, settings): the same request cannot be recorded twice. Each backend's DDL is in sqlite/ or
postgres/ beside this file.
"""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0005.grouped-totals"}

dialect_sql_step(__file__)
