"""Training and measuring the counting models: the recipe (`config`), data sets and their importers, ground truth,
losses, the count scale, evaluation, benchmarks and per-camera calibration (a guarded fine-tune).

Depends on the counting library (`counting`); nothing the counting workers run imports it (tests/test_layout.py).
"""
