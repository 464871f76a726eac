"""Hyperparameter search with keras-tuner over the package's own builders and recipes.

`tuning.hypermodel` holds the `HyperModel` (shortcut option, learning-rate schedule, weight decay, ...);
`python -m tuning.search` runs local and distributed (chief/worker) searches, wired from `tuning.options`
(flags), `tuning.tuner` (oracles and the tuner), `tuning.distributed` (chief and workers) and
`tuning.kt_compat` (the only module that touches keras-tuner's private names); `tuning.report` writes
the results files.
"""
