"""Stage 2, generation: TPO preference pairs made by a video-LM, runs over the library, post-filters."""
