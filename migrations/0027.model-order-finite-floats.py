"""An index of the generations by model in creation order, and PostgreSQL's float columns refuse NaN.

1. The dashboard's model filter (``dashboard_page_by_model``) and ``list_generations(model_name=...)`` walked
   ``generations_created_at`` newest first and filtered out every row of another model: a model with few
   rows among a million read about the whole index for one page. ``generations_model_created_at_id
   (model_name, created_at, id)`` reads one model's rows in the page's order, as many as the page shows.
2. PostgreSQL orders 'NaN'::float8 above every number, so ``CHECK (x >= 0)`` holds for a NaN (and for
   infinity): ``renditions.quality`` took one written by SQL (``generation_time_seconds`` was refused only by
   the totals trigger, as 'bigint out of range'). Both now refuse NaN and infinity in a CHECK of their own;
   a NaN or infinite ``quality`` already stored becomes NULL (what SQLite stores for a NaN). The other float
   columns' CHECKs already refuse NaN (an upper bound: NaN is above it). SQLite stores a NaN as NULL.

The rollback drops the index and the two CHECKs.
"""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0026.claim-shard-lock"}

dialect_sql_step(__file__)
