"""The annotation benchmark (run it with scripts/bench_media; it never runs in CI)."""
