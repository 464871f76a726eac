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
- `deferred_initial_values()`, `giving_values`, `set_value`, `set_weights`, `initialize_deferred`,
  `forget_deferred`, `has_value`: the builders create their layers with no variable values and give every
  variable its value once the network is built (`keras_resnet.weights.api.load_weights`): its initializer's
  draw (the same values: each initializer holds its seed) or a weights file's, which then draws nothing at
  random; the export's float32 copy and BN folding (`keras_resnet.export.serving_model`,
  `keras_resnet.inference.fold`) copy their source's values the same way. Both are faster
  than Keras' own order, where each variable is drawn and becomes a backend variable as its layer is
  built, between the layers' symbolic calls: the same eager operations then take several times longer
  (cProfile of `preact_resnet164` on TensorFlow: 3,463 eager executions, 0.51 s against 0.11 s). The first
  `ResNet152()` of a process builds in 1.9 s instead of 2.9 s (`keras.applications.ResNet152`: 2.3 s),
  from a weights file in 2.1 s instead of 4.2 s, `ResNet1202()` in 7.1 s instead of 12.6 s
  (benchmarks/build_time.py; benchmarks/BENCHMARKS.md, "Build time"); an export's float32 copy of
  ResNet-152 with its BNs folded takes 1.8-2.3 s instead of 4.3-5.5 s. The public
  `keras.StatelessScope(initialize_variables=False)` creates variables without values, but Keras has no
  public way to give such a variable its first value (`assign` needs one) or to take it off the global list
  its stateless scopes initialise at their exit (`keras.src.backend.common.global_state`
  "uninitialized_variables"): `variable._deferred_initialize()` with the variable's `_initializer` set to
  the value does the first, pruning the list the second.

Example:
    >>> import keras
    >>> from keras_resnet import compat
    >>> bar = keras.utils.Progbar(10, verbose=0)
    >>> compat.progbar_set_text(bar, "iteration", "3/10")
    >>> with compat.deferred_initial_values():
    ...     layer = keras.layers.Dense(2)
    ...     layer.build((None, 3))
    >>> compat.initialize_deferred(layer.weights, zeros=True)
    2
    >>> float(keras.ops.sum(layer.kernel))
    0.0
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np

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


def _in_stateless_scope():
    # Private: no public test for an enclosing stateless scope (Keras 3.x). Checked by tests/test_compat.py.
    from keras.src.backend.common.stateless_scope import in_stateless_scope

    return in_stateless_scope()


def _pending():
    # Private: Keras' list of variables created without values, initialised at the exit of the outermost
    # stateless scope (keras.src.backend.common.variables.initialize_all_variables). Checked by tests/test_compat.py.
    from keras.src.backend.common import global_state

    return global_state, global_state.get_global_attribute("uninitialized_variables") or []


def has_value(variable):
    """Whether a Keras variable has a value (`False` for one created under `deferred_initial_values`)."""
    return getattr(variable, "_value", None) is not None  # private: where every Keras 3 backend keeps it


@contextlib.contextmanager
def deferred_initial_values():
    """Variables the layers built inside create get no initial values yet (none drawn, no backend variable).

    Give them values inside `giving_values` (`set_value`, `set_weights`) before the model is used. Inside a stateless scope of the caller's this changes nothing (the caller's scope
    defers already, and initialises at its exit). A build that raises leaves none of its variables on Keras'
    list.
    """
    if _in_stateless_scope():
        yield
        return
    created = len(_pending()[1])
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield
    except BaseException:
        forget_deferred(_pending()[1][created:])
        raise


def _give(variable, value):
    """A deferred variable's first value, through its backend's own initialisation path."""
    variable._initializer = lambda shape, dtype=None: value  # private: the initializer `_deferred_initialize` calls
    variable._deferred_initialize()


def set_value(variable, value):
    """`variable.assign(value)`, also for a variable still without a value (its first value then).

    Returns:
        `True` when `variable` got its first value (call it inside `giving_values`, which takes the
        variables off Keras' list of deferred variables afterwards).
    """
    value = np.asarray(value, dtype=variable.dtype)
    if has_value(variable) or _in_stateless_scope():
        variable.assign(value)
        return False
    _give(variable, value)
    return True


def set_weights(layer, arrays):
    """`layer.set_weights(arrays)`, also for a layer built under `deferred_initial_values` (first values).

    Raises:
        ValueError: not one array per variable of `layer.weights`, or an array of another shape (naming the
            layer or the variable); nothing is set then.
    """
    variables = layer.weights
    if len(arrays) != len(variables):
        raise ValueError(f"layer {layer.name!r} has {len(variables)} weights; received {len(arrays)} arrays.")
    for variable, array in zip(variables, arrays):
        if tuple(np.shape(array)) != tuple(variable.shape):
            raise ValueError(f"{variable.path}: expected shape {tuple(variable.shape)}, received "
                             f"{tuple(np.shape(array))}.")
    for variable, array in zip(variables, arrays):
        set_value(variable, array)


@contextlib.contextmanager
def giving_values(variables):
    """The block gives `variables` (created under `deferred_initial_values`) their values (`set_value`,
    `set_weights`); after it, those still without one get their initializers' draws, and none stays on
    Keras' list of deferred variables; if the block raises, none stays on it either (nothing initialises a
    model being thrown away)."""
    try:
        yield
    except BaseException:
        forget_deferred(variables)
        raise
    initialize_deferred(variables)


def forget_deferred(variables):
    """Takes `variables` (and any variable given a value since) off Keras' list of deferred variables.

    Returns:
        The number of variables of `variables` still without a value (left so: a model being thrown away).
    """
    drop = {id(v) for v in variables}
    global_state, pending = _pending()
    if pending:
        global_state.set_global_attribute(
            "uninitialized_variables", [v for v in pending if id(v) not in drop and not has_value(v)])
    return sum(not has_value(v) for v in variables)


def initialize_deferred(variables, zeros=False):
    """Gives each of `variables` still without a value one: zeros (`zeros=True`: a loader that assigns will
    overwrite it) or its initializer's draw (the seed is the initializer's, so the values are those a build
    without deferring draws); then takes them off Keras' list of deferred variables. Inside a stateless
    scope of the caller's, nothing (that scope initialises them at its exit).

    Returns:
        The number of variables that got a value here.
    """
    if _in_stateless_scope():
        return 0  # the caller's scope initialises them at its exit
    given = 0
    for variable in variables:
        if not has_value(variable):
            if zeros:
                _give(variable, np.zeros(variable.shape, dtype=variable.dtype))
            else:
                variable._deferred_initialize()
            given += 1
    forget_deferred(variables)
    return given
