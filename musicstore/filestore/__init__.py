"""Where audio files live: the local output root (contained, ``O_NOFOLLOW``) and durable writes."""
