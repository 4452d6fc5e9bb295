"""The Assist benchmark: sentences and tools over a large stored history (scripts/bench_assist)."""
