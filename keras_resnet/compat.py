"""The one place that touches Keras' private names, each with the reason no public way exists.

Reference: the project's layout contract (tests/test_layout.py): Keras privates (`keras.src...`,
`obj._name` on Keras objects) appear nowhere else. tests/test_compat.py fails with a message naming the
function here when a Keras release moves one of them.

Uses:

- `progbar_set_text(bar, key, text)`: `keras.utils.Progbar.update` only shows numbers (it stores every
  value as `[value, count]` and formats an average), but the trainer's bar shows text (`iteration:
  12/64000`, `lr: 0.1`); the bar's private `_values_order` / `_values` take a text value as-is.

Example:
    >>> import keras
    >>> from keras_resnet import compat
    >>> bar = keras.utils.Progbar(10, verbose=0)
    >>> compat.progbar_set_text(bar, "iteration", "3/10")
"""

from __future__ import annotations

PROGBAR_PRIVATES = ("_values_order", "_values")


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
