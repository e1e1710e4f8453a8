"""Runs: a run directory's files and record, one run end to end, the trained-model type, MLflow."""
