"""Stage 1, the library: video files, probing and frame sampling, thumbnails, synthetic videos."""
