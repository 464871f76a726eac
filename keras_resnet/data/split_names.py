"""Split names: the canonical three, their aliases on disk, the held-out split and the "split not found" message.

Data comes with `train/` and `val/` (ImageNet, torchvision's `ImageFolder`) or `validation/` (TFDS, the
TF Model Garden shards), and sometimes `test/`. The package speaks of three canonical splits, `"train"`,
`"validation"` and `"test"`; a folder, archive member, split archive or shard prefix named `val` is the
`"validation"` split. Asking for `"val"` finds a `validation` split too.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385),
section 3.4 (ImageNet: results on the 50k validation images) and 4.2 (CIFAR-10: train / test).

Example:
    >>> canonical_split("val")
    'validation'
    >>> split_candidates("validation")
    ('validation', 'val')
"""

from __future__ import annotations

SPLITS = ("train", "validation", "test")
"""The canonical split names, in the order `available_splits` lists them."""
ALIASES = {"validation": ("validation", "val"), "val": ("val", "validation")}
"""Split asked for -> physical names to look for, in order of preference."""


def canonical_split(name: str) -> str:
    """The canonical name of a physical split name: `"val"` -> `"validation"`, others unchanged."""
    return "validation" if name == "val" else name


def split_candidates(split: str) -> tuple:
    """The physical names under which `split` may be stored, preferred first (`"validation"`, `"val"`)."""
    return ALIASES.get(split, (split,))


def pick_physical(split: str, present) -> str | None:
    """The first of `split_candidates(split)` that is in `present` (a collection of physical names), or None."""
    return next((name for name in split_candidates(split) if name in present), None)


def check_split(split, validation_size) -> None:
    """`ValueError` unless `split` is a non-empty str and `validation_size` a non-negative int."""
    if not isinstance(split, str) or not split:
        raise ValueError(f"`split` must be one of {SPLITS} (or a split the source has); received {split!r}.")
    if not isinstance(validation_size, int) or isinstance(validation_size, bool) or validation_size < 0:
        raise ValueError(f"`validation_size` must be a non-negative int; received {validation_size!r}.")


def holds_out(split: str, validation_size: int) -> bool:
    """Whether `split` is a part of the training split: `"train"` or `"validation"` while `validation_size`
    images are held out. Any other split (`"test"`) is read whole, held-out images or not."""
    return validation_size > 0 and split in ("train", "validation")


def base_split(split: str, validation_size: int) -> str:
    """The physical split to read: the training split for `"train"`/`"validation"` when holding out images."""
    return "train" if holds_out(split, validation_size) else split


def order_splits(names) -> list:
    """Canonical names of `names`, deduplicated: `train`, `validation`, `test` first, then the others sorted.

    Example:
        >>> order_splits(["val", "train", "extra"])
        ['train', 'validation', 'extra']
    """
    canon = {canonical_split(str(n)) for n in names}
    return [s for s in SPLITS if s in canon] + sorted(canon - set(SPLITS))


def missing_split_message(source, split: str, available, expected: str = "") -> str:
    """The message of a `ValueError` for a split that a source does not have.

    Names the source, the split asked for and the splits available; for `"validation"` it adds how to get
    one (hold out `validation_size` training images, or add a `val/` / `validation/` split).

    Args:
        source: the data source (path or TFDS name).
        split: the split asked for.
        available: the canonical split names the source has (`order_splits`).
        expected: optional text saying where the split was looked for.

    Example:
        >>> missing_split_message("/data/pets", "test", ["train", "validation"])[:44]
        "Split 'test' not found in '/data/pets'; avai"
    """
    where = f" ({expected})" if expected else ""
    text = (f"Split {split!r} not found in {str(source)!r}{where}; available splits: "
            f"{list(available) if available else 'none'}.")
    if split in ALIASES:
        text += (" Pass `validation_size` > 0 to hold out images of the training split (e.g. 5000 for CIFAR-10's "
                 "45k/5k), or provide a 'val' or 'validation' split.")
    return text


__all__ = ["ALIASES", "SPLITS", "base_split", "canonical_split", "check_split", "holds_out", "missing_split_message", "order_splits", "pick_physical",
           "split_candidates"]
