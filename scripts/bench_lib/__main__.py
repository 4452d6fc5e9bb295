"""Entry point: python -m scripts.bench_lib [options] (scripts/bench runs it inside the lab)."""

from scripts.bench_lib.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
