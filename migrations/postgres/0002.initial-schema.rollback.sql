DROP TABLE prompt_totals;
DROP TABLE generation_totals;
DROP TABLE generations;
DROP TABLE prompts;
DROP FUNCTION musicstore_count_prompts();
DROP FUNCTION musicstore_count_generations();
