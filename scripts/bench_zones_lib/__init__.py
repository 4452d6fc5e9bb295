"""The zone lookup benchmark (run it with scripts/bench_zones; it never runs in CI)."""
