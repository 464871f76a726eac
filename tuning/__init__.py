"""Hyperparameter search with keras-tuner over the package's own builders and recipes.

Holds the `HyperModel` (shortcut option, learning-rate schedule, weight decay, ...) and the absl entry point
`python -m tuning.search` for local and distributed (chief/worker) searches.
"""
