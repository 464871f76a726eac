"""Thin absl entry points that train the paper's networks: `python -m trainers.cifar`, `python -m trainers.imagenet`.

Each module here only parses flags and wires library calls from `keras_resnet` (recipes, data, training,
export); a trainer's `main` reads in one screen.
"""
