DROP TABLE prompt_totals;
DROP TABLE generation_totals;
DROP TABLE generations;
DROP TABLE prompts;
