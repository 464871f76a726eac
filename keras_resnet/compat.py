"""The one place that touches Keras' private names, each with the reason no public way exists.

Reference: the project's layout contract (tests/test_layout.py): Keras privates (`keras.src...`,
`obj._name` on Keras objects) appear nowhere else. tests/test_compat.py fails with a message naming the
function here when a Keras release moves one of them.

Uses:

- `progbar_set_text(bar, key, text)`: `keras.utils.Progbar.update` only shows numbers (it stores every
  value as `[value, count]` and formats an average), but the trainer's bar shows text (`iteration:
  12/64000`, `lr: 0.1`); the bar's private `_values_order` / `_values` take a text value as-is.
- `keep_saving_skipsets()`: Keras 3.15's saving (`keras.src.saving.saving_lib.get_attr_skipset`) caches the
  attribute skip-set of each object type under `saving_attr_skipset_<type>` in its global state but looks
  it up under `saving_attr_skiplist_<type>`, so the cache never hits and every save builds throwaway
  reference objects again, an `Optimizer(1.0)` (with its variables) among them: 70 KiB of resident memory
  more per `save` / `save_weights` of a model with an optimizer, for good (measured on a 41-layer model,
  TensorFlow backend, with `gc.collect()` after each save; 0 KiB uncompiled). The trainer saves three times
  an epoch, so a 183-epoch run grew by about 100 MiB. Storing each computed skip-set under the name it is
  read by makes the cache work; where Keras reads the name it writes, this changes nothing.

Example:
    >>> import keras
    >>> from keras_resnet import compat
    >>> bar = keras.utils.Progbar(10, verbose=0)
    >>> compat.progbar_set_text(bar, "iteration", "3/10")
"""

from __future__ import annotations

PROGBAR_PRIVATES = ("_values_order", "_values")
SAVING_OBJECT_TYPES = ("Operation", "Layer", "Functional", "Sequential", "Metric", "Optimizer", "Loss", "Cross",
                       "Feature")
"""The object types `keras.src.saving.saving_lib.get_attr_skipset` accepts (Keras 3.x)."""


def progbar_set_text(bar, key, text):
    """Shows `key: text` on the `keras.utils.Progbar` `bar` from its next `update` on.

    Args:
        bar: a `keras.utils.Progbar`.
        key: the label.
        text: str shown as-is (not averaged, not formatted as a number).
    """
    # Private: Progbar.update() has no text values; it prints non-list entries of `_values` as-is, in the
    # order of `_values_order` (Keras 3.x). Checked by tests/test_compat.py.
    if key not in bar._values_order:
        bar._values_order.append(key)
    bar._values[key] = text


def keep_saving_skipsets():
    """Makes Keras' saving find the attribute skip-sets it computed (see the module docstring); call after a save.

    Returns:
        The number of skip-sets stored under the name Keras reads them by.
    """
    # Private: Keras' global state (keras.src.backend.common.global_state); written under
    # "saving_attr_skipset_*", read under "saving_attr_skiplist_*" in Keras 3.15. Checked by tests/test_compat.py.
    from keras.src.backend.common import global_state

    stored = 0
    for obj_type in SAVING_OBJECT_TYPES:
        skipset = global_state.get_global_attribute(f"saving_attr_skipset_{obj_type}")
        if skipset is not None:
            global_state.set_global_attribute(f"saving_attr_skiplist_{obj_type}", skipset)
            stored += 1
    return stored
