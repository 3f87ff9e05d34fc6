"""Stage 5, evaluation: benchmarks, the needle suite, side-by-side comparisons, and the end-to-end experiment."""
