"""Tools that make the paper's findings executable: identity deepening, gradient flow, layer responses.

Reference: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
(arXiv:1512.03385): section 4.2 and Fig. 6 (degradation), section 3.1 (identity mapping: "a deeper model
should have training error no greater than its shallower counterpart"), section 3.2 (gradient flow through
the identity term) and Fig. 7 (standard deviations of layer responses).

* `deepen(model, extra_blocks_per_stage)`: a deeper CIFAR ResNet computing exactly the same function as a
  (trained) shallower one: new identity blocks whose last BN scale is zero, all other weights copied by
  layer name. The result is an ordinary `cifar_resnet(depth')` model that can keep training.
* `gradient_norms(model, batch)`: the L2 norm of the gradient of the loss on one batch with respect to each
  convolution / dense kernel, from the input side to the output side.
* `layer_responses(model, images)`: the standard deviation of each 3x3 layer's response (the output of its
  BN, before the addition and the ReLU), as in Fig. 7.
* `plot_*` helpers write PNGs with matplotlib's Agg backend (fixed pixel sizes), and `degradation_table`
  formats the final errors of a degradation experiment as markdown.

Backends: `deepen` and `layer_responses` use `keras` only. `gradient_norms` needs a backend-specific gradient:
`tf.GradientTape` on TensorFlow, `jax.grad` on JAX (both through `model.stateless_call`, so that the BN
moving statistics are left untouched); other backends raise `NotImplementedError`.

Example:
    >>> import keras_resnet
    >>> from keras_resnet import analysis
    >>> shallow = keras_resnet.build("resnet20")
    >>> deep = analysis.deepen(shallow, 2)  # ResNet-32, same outputs as `shallow`
    >>> deep.name
    'resnet32'
"""

from __future__ import annotations

import csv
import os
import re

import numpy as np

import keras
from keras import ops

from keras_resnet.blocks import BN_EPSILON
from keras_resnet.cifar import cifar_resnet

_BLOCK = re.compile(r"^stage(\d+)_block(\d+)_1_conv$")


# ----------------------------------------------------------------------------------------------------------
# Identity deepening.


def describe_cifar_model(model):
    """Recovers the `cifar_resnet` arguments of a model built by it (from its stable layer names).

    Args:
        model: a `keras.Model` returned by `keras_resnet.cifar_resnet` (or `build("resnet20")`, ...).

    Returns:
        dict with `depth`, `blocks_per_stage`, `shortcut` ("A", "B", "C" or None), `input_shape`,
        `include_top`, `classes`, `classifier_activation`, `pooling`, `kernel_regularizer`.

    Raises:
        ValueError: if `model` is not a CIFAR ResNet of this package (names the missing layers).
    """
    names = {layer.name for layer in model.layers}
    blocks = {}
    for name in names:
        match = _BLOCK.match(name)
        if match:
            blocks.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    if "stem_conv" not in names or sorted(blocks) != [1, 2, 3] or any(
            blocks[s] != set(range(1, len(blocks[1]) + 1)) for s in blocks):
        raise ValueError(
            f"`model` {model.name!r} is not a CIFAR ResNet built by `keras_resnet.cifar_resnet` (expected layers "
            "'stem_conv' and 'stage{1,2,3}_block{1..n}_1_conv'); `deepen` supports the CIFAR family only."
        )
    n = len(blocks[1])
    if "stage1_block1_add" not in names:
        shortcut = None
    elif "stage1_block1_shortcut_proj_conv" in names:
        shortcut = "C"
    elif "stage2_block1_shortcut_proj_conv" in names:
        shortcut = "B"
    else:
        shortcut = "A"
    include_top = "predictions" in names
    head = model.get_layer("predictions") if include_top else None
    activation = None
    if head is not None:
        activation = keras.activations.serialize(head.activation)
        activation = activation if isinstance(activation, str) else activation.get("config", {}).get("name")
        activation = None if activation == "linear" else activation
    return {
        "depth": 6 * n + 2,
        "blocks_per_stage": n,
        "shortcut": shortcut,
        "input_shape": tuple(model.input_shape[1:]),
        "include_top": include_top,
        "classes": int(head.units) if head is not None else None,
        "classifier_activation": activation,
        "pooling": None if include_top else ("avg" if "avg_pool" in names else "max" if "max_pool" in names
                                             else None),
        "kernel_regularizer": model.get_layer("stem_conv").kernel_regularizer,
    }


def deepen(model, extra_blocks_per_stage):
    """Returns a deeper residual network that computes exactly the same function as `model`.

    The paper's argument for why depth alone should not hurt (section 3.1): take a trained shallow network and
    add identity layers; the deeper network is no worse. Here each stage of a CIFAR ResNet of depth 6n+2
    gets `extra_blocks_per_stage` new basic blocks appended after its last block, giving depth
    6(n + extra)+2. A new block's last BN scale (gamma) and shift (beta) are zero, so its residual branch
    outputs exactly 0 and the block outputs `relu(x + 0) = x` (its input already comes out of a ReLU). Every
    layer of `model` is copied by name, including the BN moving statistics, so the result equals `model` in
    inference mode (and in training mode too for options A and B).

    With option C every shortcut is a 1x1 projection + BN; the new blocks' projections are set to the
    identity (identity kernel, BN with zero moving mean, unit moving variance, unit scale), which is exact
    in inference mode.

    The result is an ordinary `cifar_resnet(depth')` model (same shortcut option, input shape, classes,
    classifier and kernel regulariser), so it can be compiled and trained further, e.g. to show that
    training continues from the shallow network's accuracy.

    Args:
        model: a CIFAR ResNet built by `keras_resnet.cifar_resnet` (any shortcut option; not a plain net).
        extra_blocks_per_stage: int >= 0, the basic blocks (2 layers each) added to every stage: depth grows
            by `6 * extra_blocks_per_stage` (20 -> 32 with 2, 20 -> 56 with 6).

    Returns:
        A new `keras.Model` named `resnet<depth'>` (for option A; the builder's default name otherwise).

    Raises:
        ValueError: a plain network (no identity to add), a model not built by `cifar_resnet`, or a bad
            `extra_blocks_per_stage`.

    Example:
        >>> import numpy as np, keras_resnet
        >>> shallow = keras_resnet.build("resnet8", input_shape=(16, 16, 3))
        >>> deep = deepen(shallow, 1)  # ResNet-14
        >>> x = np.random.rand(2, 16, 16, 3).astype("float32")
        >>> bool(np.allclose(shallow.predict(x, verbose=0), deep.predict(x, verbose=0), atol=1e-6))
        True
    """
    if isinstance(extra_blocks_per_stage, bool) or not isinstance(extra_blocks_per_stage, (int, np.integer)) \
            or extra_blocks_per_stage < 0:
        raise ValueError(f"`extra_blocks_per_stage` must be an integer >= 0; received {extra_blocks_per_stage!r}.")
    spec = describe_cifar_model(model)
    if spec["shortcut"] is None:
        raise ValueError(
            f"`model` {model.name!r} is a plain network: it has no shortcuts, so new blocks cannot be identities. "
            "`deepen` needs a residual network (shortcut 'A', 'B' or 'C')."
        )
    n, extra = spec["blocks_per_stage"], int(extra_blocks_per_stage)
    deeper = cifar_resnet(
        spec["depth"] + 6 * extra,
        shortcut=spec["shortcut"],
        include_top=spec["include_top"],
        input_shape=spec["input_shape"],
        classes=spec["classes"] if spec["include_top"] else 10,
        classifier_activation=spec["classifier_activation"],
        kernel_regularizer=spec["kernel_regularizer"],
        pooling=spec["pooling"],
    )
    new_layers = {layer.name: layer for layer in deeper.layers}
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in new_layers:  # pragma: no cover - the builder keeps every name
            raise ValueError(f"Layer {layer.name!r} of {model.name!r} has no counterpart in {deeper.name!r}.")
        new_layers[layer.name].set_weights(layer.get_weights())
    for stage in (1, 2, 3):
        for block in range(n + 1, n + extra + 1):
            prefix = f"stage{stage}_block{block}"
            bn = new_layers[f"{prefix}_2_bn"]
            bn.gamma.assign(np.zeros(bn.gamma.shape, "float32"))
            bn.beta.assign(np.zeros(bn.beta.shape, "float32"))
            if f"{prefix}_shortcut_proj_conv" in new_layers:  # option C: make the projection an identity
                conv = new_layers[f"{prefix}_shortcut_proj_conv"]
                channels = conv.kernel.shape[-1]
                conv.kernel.assign(np.eye(channels, dtype="float32").reshape(1, 1, channels, channels))
                proj_bn = new_layers[f"{prefix}_shortcut_proj_bn"]
                proj_bn.gamma.assign(np.ones(channels, "float32"))
                proj_bn.beta.assign(np.zeros(channels, "float32"))
                proj_bn.moving_mean.assign(np.zeros(channels, "float32"))
                proj_bn.moving_variance.assign(np.full(channels, 1.0 - BN_EPSILON, "float32"))
    return deeper


# ----------------------------------------------------------------------------------------------------------
# Gradient flow.


def _kernel_layers(model):
    """(layer, kernel variable) of every convolution and dense layer, in the model's (topological) order."""
    out = []
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and getattr(kernel, "trainable", False):
            out.append((layer, kernel))
    return out


def _from_logits(model):
    head = model.layers[-1]
    activation = getattr(head, "activation", None)
    return activation is None or activation is keras.activations.linear or getattr(
        activation, "__name__", "") == "linear"


def gradient_norms(model, batch, training=True):
    """Per-layer L2 norm of the gradient of the classification loss on one batch.

    The paper's gradient-flow argument (section 3.2): in a residual block d(x + F(x))/dx = 1 + dF/dx, so the
    identity term keeps the gradient from vanishing towards the input; deep plain networks have no such
    term. The loss is the mean sparse categorical cross-entropy of the model's output (from logits when the
    classifier has no activation), without the weight-decay term. The BN layers normalise with the batch
    statistics (`training=True`, as in training) but their moving statistics are not updated.

    Args:
        model: a classification `keras.Model` (e.g. any CIFAR ResNet or plain net).
        batch: `(images, labels)`: float32 preprocessed images `[N, H, W, C]` and int labels `[N]`.
        training: bool, run BN (and anything else mode-dependent) in training mode.

    Returns:
        dict (insertion-ordered from the input side to the output side) mapping the name of each
        convolution / dense layer to the L2 norm (float) of the gradient with respect to its kernel.

    Raises:
        NotImplementedError: on a backend other than TensorFlow or JAX.
        ValueError: if `batch` is not an `(images, labels)` pair of matching length.

    Example:
        >>> import numpy as np, keras_resnet
        >>> model = keras_resnet.build("resnet8", input_shape=(16, 16, 3))
        >>> x, y = np.random.rand(4, 16, 16, 3).astype("float32"), np.arange(4)
        >>> list(gradient_norms(model, (x, y)))[:2]
        ['stem_conv', 'stage1_block1_1_conv']
    """
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError(f"`batch` must be an (images, labels) pair; received {type(batch).__name__}.")
    images = np.asarray(keras.ops.convert_to_numpy(batch[0]), dtype="float32")
    labels = np.asarray(keras.ops.convert_to_numpy(batch[1])).astype("int32").reshape(-1)
    if len(images) != len(labels):
        raise ValueError(f"`batch` has {len(images)} images but {len(labels)} labels.")
    kernels = _kernel_layers(model)
    trainable = model.trainable_variables
    index = {id(v): i for i, v in enumerate(trainable)}
    positions = [index[id(kernel)] for _, kernel in kernels]
    from_logits = _from_logits(model)

    def loss_fn(trainable_values, non_trainable_values, images):
        outputs, _ = model.stateless_call(trainable_values, non_trainable_values, images, training=training)
        outputs = ops.cast(outputs, "float32")
        return ops.mean(keras.losses.sparse_categorical_crossentropy(labels, outputs, from_logits=from_logits))

    non_trainable_values = [v.value for v in model.non_trainable_variables]
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        trainable_values = [tf.convert_to_tensor(v.value) for v in trainable]
        with tf.GradientTape() as tape:
            tape.watch(trainable_values)
            loss = loss_fn(trainable_values, non_trainable_values, images)
        grads = tape.gradient(loss, [trainable_values[i] for i in positions])
    elif backend == "jax":
        import jax

        trainable_values = [v.value for v in trainable]
        all_grads = jax.jit(jax.grad(loss_fn))(trainable_values, non_trainable_values, images)
        grads = [all_grads[i] for i in positions]
    else:
        raise NotImplementedError(
            f"`gradient_norms` supports the TensorFlow and JAX backends; the backend is {backend!r}.")
    return {layer.name: float(np.linalg.norm(np.asarray(keras.ops.convert_to_numpy(g), dtype=np.float64)))
            for (layer, _), g in zip(kernels, grads)}


# ----------------------------------------------------------------------------------------------------------
# Layer responses (Fig. 7).


def response_layers(model):
    """Names of the BN layers that follow a 3x3 convolution (`X_conv` -> `X_bn`), in layer order."""
    names = {layer.name for layer in model.layers}
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and tuple(layer.kernel_size) == (3, 3) \
                and layer.name.endswith("_conv") and layer.name[:-5] + "_bn" in names:
            out.append(layer.name[:-5] + "_bn")
    return out


def layer_responses(model, images, batch_size=256):
    """Standard deviation of each 3x3 layer's response, the quantity of the paper's Fig. 7.

    The response of a 3x3 layer is the output of its BN, before the addition (residual nets) and the ReLU,
    computed in inference mode. Its standard deviation is taken per channel over the images and positions,
    then averaged over the channels: the scale that BN's gamma sets, which shrinks when a residual function
    is close to zero (the overall standard deviation would also mix in the spread of the channel offsets).

    Args:
        model: a network with stable layer names (`stem_conv`/`stem_bn`, `stage{s}_block{b}_{1,2}_conv/_bn`).
        images: float32 preprocessed images `[N, H, W, C]` (numpy or tensor).
        batch_size: int, images per forward pass.

    Returns:
        dict (insertion-ordered by layer index, input side first) mapping BN layer name -> std (float).

    Raises:
        ValueError: if the model has no 3x3 conv + BN pair or `images` is empty.

    Example:
        >>> import numpy as np, keras_resnet
        >>> model = keras_resnet.build("plain8", input_shape=(16, 16, 3))
        >>> len(layer_responses(model, np.random.rand(4, 16, 16, 3).astype("float32")))
        7
    """
    names = response_layers(model)
    if not names:
        raise ValueError(f"`model` {model.name!r} has no 3x3 convolution followed by a BN layer ('X_conv', 'X_bn').")
    images = np.asarray(keras.ops.convert_to_numpy(images), dtype="float32")
    if images.ndim != 4 or not len(images):
        raise ValueError(f"`images` must be a non-empty batch [N, H, W, C]; received shape {images.shape}.")
    probe = keras.Model(model.input, [model.get_layer(name).output for name in names])
    counts = [0] * len(names)
    sums = [0.0] * len(names)
    squares = [0.0] * len(names)
    for start in range(0, len(images), batch_size):
        outputs = probe(images[start:start + batch_size], training=False)
        for i, out in enumerate(outputs):
            out = np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float64)
            out = out.reshape(-1, out.shape[-1])
            counts[i] += out.shape[0]
            sums[i] = sums[i] + out.sum(0)
            squares[i] = squares[i] + (out * out).sum(0)
    result = {}
    for name, s, q, count in zip(names, sums, squares, counts):
        mean = s / count
        result[name] = float(np.sqrt(np.maximum(q / count - mean * mean, 0.0)).mean())
    return result


# ----------------------------------------------------------------------------------------------------------
# Experiments: several training runs with one recipe (used by `trainers/degradation.py`, ...).


def _uses_memory(config):
    """Whether `keras_resnet.training.train` would read `config.data` into memory (mirrors its rule)."""
    if config.input == "memory":
        return True
    if config.input == "tfdata":
        return False
    return keras.backend.backend() != "tensorflow" or os.path.isdir(config.data) or os.path.isfile(config.data)


def load_experiment_data(config):
    """Loads `config.data` once as in-memory `training.ArrayData` when the trainer would use memory input.

    Args:
        config: a `keras_resnet.training.TrainConfig`.

    Returns:
        `training.ArrayData`, or None for sources read through tf.data (TFDS names, TFRecord directories).
    """
    from keras_resnet import training

    if not _uses_memory(config):
        return None
    return training.load_array_data(config.data, config.validation_split, config.data_dir, config.download)


def train_runs(config, models, output_dir, data=None, callbacks=None):
    """Trains each of `models` with the identical recipe of `config`, each into `output_dir/<model>`.

    Args:
        config: a `keras_resnet.training.TrainConfig`; its `model` and `model_dir` are replaced per run.
        models: list of model names (`"plain20"`, `"resnet56"`, ...).
        output_dir: str, parent directory of the runs.
        data: optional `training.ArrayData` shared by all runs (loaded once by `load_experiment_data` if None).
        callbacks: optional function `model name -> list of keras callbacks` for that run.

    Returns:
        dict model name -> the run's summary (`training.train`'s return value) plus `error` (final training
        error), `model_dir` and the log curves `curves` (see `read_log`).
    """
    from keras_resnet import training

    if data is None:
        data = load_experiment_data(config)
    results = {}
    for name in models:
        model_dir = os.path.join(output_dir, name)
        run = config.replace(model=name, model_dir=model_dir)
        summary = dict(training.train(run, data=data, callbacks=callbacks(name) if callbacks else None))
        curves = read_log(model_dir)
        summary.update(model_dir=model_dir, curves=curves,
                       error=float(curves["error"][-1]) if len(curves["error"]) else float("nan"))
        results[name] = summary
    return results


def sample_batch(data, size, seed=0, split="train"):
    """A fixed, seeded batch `(float32 preprocessed images, int32 labels)` of in-memory data.

    Args:
        data: a `training.ArrayData` (uint8 images, labels, `info.mean`).
        size: int, images in the batch (at most the split's size).
        seed: int, chooses the images.
        split: "train" or "test".

    Returns:
        `(images, labels)` normalised as the trainer does: `(image - mean) / 255`.
    """
    from keras_resnet.data import normalize

    images, labels = data.train if split == "train" else data.test
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(len(labels), size=min(int(size), len(labels)), replace=False))
    return normalize(images[index], data.info.mean), np.asarray(labels)[index].astype("int32")


def load_checkpoint(model_dir, checkpoint="best"):
    """Loads `model_dir/checkpoints/<checkpoint>.keras` (safe mode) of a training run.

    Args:
        model_dir: str, a training run's directory.
        checkpoint: "best" or "latest".

    Returns:
        The `keras.Model`.

    Raises:
        ValueError: bad `checkpoint`. FileNotFoundError: no such checkpoint.
    """
    import keras_resnet  # noqa: F401  (registers ZeroPadShortcut and the recipes' schedules)

    if checkpoint not in ("best", "latest"):
        raise ValueError(f"`checkpoint` must be 'best' or 'latest'; received {checkpoint!r}.")
    path = os.path.join(model_dir, "checkpoints", f"{checkpoint}.keras")
    if not os.path.exists(path):
        raise FileNotFoundError(f"No checkpoint {path!r}: is {model_dir!r} a model_dir of a finished epoch?")
    return keras.saving.load_model(path, compile=False)


# ----------------------------------------------------------------------------------------------------------
# Figures and tables.


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path, dpi):
    """Saves at a fixed pixel size (figsize * dpi; no tight bounding box) via a temporary file."""
    plt = _pyplot()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def read_log(model_dir):
    """Reads `model_dir/log.csv` of a training run: dict of numpy arrays `iteration`, `error`, `test_error`."""
    path = os.path.join(model_dir, "log.csv")
    if not os.path.exists(path):
        raise FileNotFoundError(f"No training log {path!r}: is {model_dir!r} a model_dir of a training run?")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))

    def column(key):
        return np.array([float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows])

    return {"iteration": column("iteration"), "error": column("error"), "test_error": column("test_error")}


def _depth_of(label):
    match = re.search(r"(\d+)", label)
    return int(match.group(1)) if match else 0


def _colors(labels):
    depths = sorted({_depth_of(label) for label in labels})
    return {d: f"C{i}" for i, d in enumerate(depths)}


def plot_degradation(curves, path, title=None, figsize=(10, 4), dpi=100):
    """Writes the paper's Fig. 6 as a PNG: plain networks left, ResNets right.

    Training error is dashed, test error solid, against iterations; one colour per depth.

    Args:
        curves: mapping label (e.g. "plain20", "resnet56") -> dict with arrays `iteration`, `error`,
            `test_error` (fractions in 0..1, as in the trainer's log.csv; see `read_log`). Labels starting
            with "plain" go to the left panel, the others to the right.
        path: output PNG path.
        title: optional figure title.
        figsize, dpi: the figure size in inches and its resolution: the PNG is `figsize * dpi` pixels.

    Returns:
        `path`.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=figsize, sharey=True)
    colors = _colors(curves)
    for ax, plain in zip(axes, (True, False)):
        for label, c in sorted(curves.items(), key=lambda kv: _depth_of(kv[0])):
            if label.lower().startswith("plain") != plain:
                continue
            color = colors[_depth_of(label)]
            it = np.asarray(c["iteration"], float)
            ax.plot(it, 100 * np.asarray(c["error"], float), "--", color=color, linewidth=1)
            ax.plot(it, 100 * np.asarray(c["test_error"], float), "-", color=color, linewidth=2,
                    label=f"{'plain' if plain else 'ResNet'}-{_depth_of(label)}")
        ax.set_title("plain networks" if plain else "residual networks")
        ax.set_xlabel("iterations")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(title="dashed: training, solid: test", fontsize=8, title_fontsize=8)
    axes[0].set_ylabel("error (%)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, dpi)


def degradation_table(results):
    """Markdown table of final training / test errors of a degradation experiment.

    Args:
        results: mapping label -> dict with `error` (final training error), `test_error` and `iterations`
            (fractions for the errors).

    Returns:
        str: a markdown table, one row per network (plain first, by depth), followed by the two checks of
        the paper's claim where both depths of a kind are present.
    """
    lines = ["| network | depth | iterations | training error (%) | test error (%) |",
             "| --- | --- | --- | --- | --- |"]
    order = sorted(results, key=lambda k: (not k.lower().startswith("plain"), _depth_of(k)))
    for label in order:
        r = results[label]
        lines.append(f"| {label} | {_depth_of(label)} | {int(r['iterations'])} | {100 * r['error']:.2f} | "
                     f"{100 * r['test_error']:.2f} |")
    notes = []
    for kind in ("plain", "resnet"):
        labels = [k for k in order if k.lower().startswith(kind)]
        if len(labels) >= 2:
            shallow, deep = labels[0], labels[-1]
            worse = results[deep]["error"] > results[shallow]["error"]
            notes.append(f"- {deep} training error {'>' if worse else '<='} {shallow}: "
                         f"{100 * results[deep]['error']:.2f}% vs {100 * results[shallow]['error']:.2f}% "
                         f"(paper: {'>' if kind == 'plain' else '<'}).")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def plot_gradient_norms(panels, path, title=None, figsize=(11, 4), dpi=100):
    """Writes per-layer gradient norms (log scale), input side to output side, one panel per condition.

    Args:
        panels: mapping panel title (e.g. "at initialisation", "after 300 iterations") -> mapping label
            (e.g. "plain56", "resnet56") -> ordered dict layer name -> norm (see `gradient_norms`). Plain
            networks are dashed, ResNets solid, one colour per depth; the x axis is the layer's relative
            position (0 = input, 1 = output) so that depths can share a panel.
        path: output PNG path.
        title: optional figure title.
        figsize, dpi: the PNG is `figsize * dpi` pixels.

    Returns:
        `path`.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=figsize, sharey=True, squeeze=False)
    labels = {label for series in panels.values() for label in series}
    colors = _colors(labels)
    for ax, (panel, series) in zip(axes[0], panels.items()):
        for label, norms in sorted(series.items(), key=lambda kv: (_depth_of(kv[0]), kv[0])):
            values = np.asarray(list(norms.values()), float)
            x = np.linspace(0, 1, len(values)) if len(values) > 1 else np.zeros(1)
            plain = label.lower().startswith("plain")
            ax.plot(x, np.maximum(values, 1e-30), "--" if plain else "-", color=colors[_depth_of(label)],
                    linewidth=1.2, label=f"{'plain' if plain else 'ResNet'}-{_depth_of(label)}")
        ax.set_yscale("log")
        ax.set_title(panel)
        ax.set_xlabel("layer position (input -> output)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("gradient norm of the loss w.r.t. the kernel")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, dpi)


def plot_layer_responses(responses, path, title=None, figsize=(10, 4), dpi=100):
    """Writes the paper's Fig. 7: std of 3x3 layer responses by layer index (left) and sorted (right).

    Args:
        responses: mapping label (e.g. "plain20", "resnet110") -> ordered dict layer -> std (see
            `layer_responses`). Plain networks dashed, ResNets solid.
        path: output PNG path.
        title: optional figure title.
        figsize, dpi: the PNG is `figsize * dpi` pixels.

    Returns:
        `path`.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=figsize, sharey=True)
    colors = {label: f"C{i}" for i, label in enumerate(
        sorted(responses, key=lambda k: (not k.lower().startswith("plain"), _depth_of(k))))}
    for label in colors:
        values = np.asarray(list(responses[label].values()), float)
        plain = label.lower().startswith("plain")
        style = dict(color=colors[label], linestyle="--" if plain else "-", linewidth=1.2,
                     label=f"{'plain' if plain else 'ResNet'}-{_depth_of(label)}")
        index = np.arange(1, len(values) + 1)
        axes[0].plot(index, values, **style)
        axes[1].plot(index, np.sort(values)[::-1], **style)
    axes[0].set_title("layer index (original)")
    axes[1].set_title("layer index (sorted by magnitude)")
    for ax in axes:
        ax.set_xlabel("layer index")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("std of the 3x3 layer response")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, dpi)


__all__ = [
    "deepen",
    "degradation_table",
    "describe_cifar_model",
    "gradient_norms",
    "load_checkpoint",
    "load_experiment_data",
    "layer_responses",
    "plot_degradation",
    "plot_gradient_norms",
    "plot_layer_responses",
    "read_log",
    "response_layers",
    "sample_batch",
    "train_runs",
]
