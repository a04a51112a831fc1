"""musicstore: the job store and audio export layer of an AI music generation service."""
