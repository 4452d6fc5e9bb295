"""The intake latency benchmark (run it with scripts/bench_intake; it never runs in CI)."""
