"""API benchmarks (`make bench`): a6hub against baselines measured the same way in the same run."""
