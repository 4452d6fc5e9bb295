"""The verdict evaluation (run it with scripts/eval_verdicts; it never runs in CI)."""
