"""The recorder benchmark (run it with scripts/bench_recorder; it never runs in CI)."""
