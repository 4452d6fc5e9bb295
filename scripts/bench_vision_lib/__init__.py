"""The pictures benchmark (run it with scripts/bench_vision; it never runs in CI)."""
