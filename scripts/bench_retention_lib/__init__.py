"""The retention benchmark (run it with scripts/bench_retention; it never runs in CI)."""
