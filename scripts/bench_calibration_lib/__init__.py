"""The calibration benchmark: synthetic labelled weeks replayed through the real pipeline.

scripts/bench_calibration runs it in the lab (python -m scripts.bench_calibration_lib).
"""
