"""The event search benchmark (run it with scripts/bench_search; it never runs in CI)."""
