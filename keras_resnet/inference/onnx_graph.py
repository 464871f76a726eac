"""An ONNX graph of a (BN-folded) package network, written layer by layer from its functional config.

The networks of He et al. (2015) use a handful of layer types: convolutions (BN folded in, see
`keras_resnet.inference.fold`), ReLU, additions, zero padding, the option-A shortcut (subsample and
zero-pad channels, section 3.3), max pooling, global average pooling and the dense classifier; the
pre-activation networks (He et al. 2016b) add BNs that no convolution precedes (ONNX `BatchNormalization`). Each maps
to one or two standard ONNX operators, so the graph is exact and small: no transposes between layers
(the graph runs NCHW inside, as ONNX Runtime prefers; one `Transpose` after the input) and every
`ZeroPadding2D` in front of a convolution is merged into that convolution's `pads`.

The graph's input is NHWC, like the SavedModel's `serving_default`: `uint8` pixels `[batch, H, W, 3]`
with the training preprocessing in the graph (`(float(image) - mean) / 255`, or another
`(image - offset) * scale` rule given as arrays), or `float32` network inputs with `preprocess=False`.
The batch axis is dynamic. Outputs: `logits` and `probabilities` (softmax), float32.

Needs the `onnx` package (the `onnx` extra); nothing here needs TensorFlow.

Example:
    >>> import keras_resnet
    >>> from keras_resnet.inference import fold_batch_norms, onnx_graph
    >>> folded, _ = fold_batch_norms(keras_resnet.ResNet20(classifier_activation=None))
    >>> proto = onnx_graph.to_onnx(folded, offset=None, scale=None)  # float input, no preprocessing
    >>> proto.opset_import[0].version
    17
"""

import keras
import numpy as np

from keras_resnet.inference.fold import history_refs

OPSET = 17
"""The ONNX opset the writer targets (ONNX Runtime >= 1.13 runs it)."""


class GraphWriter:
    """Accumulates ONNX nodes and initializers with unique names."""

    def __init__(self):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers = [], []

    def constant(self, name, array):
        """Adds an initializer and returns its name."""
        self.initializers.append(self.numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op, inputs, name, **attrs):
        """Adds `op(inputs)` with output `name` and returns `name`."""
        self.nodes.append(self.helper.make_node(op, inputs, [name], name=name, **attrs))
        return name


def _padding_pairs(layer):
    """((top, bottom), (left, right)) of a `ZeroPadding2D`."""
    (top, bottom), (left, right) = layer.padding
    return (int(top), int(bottom)), (int(left), int(right))


def _conv(writer, layer, source, extra_pads):
    kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel), np.float32)
    kh, kw = kernel.shape[:2]
    if layer.padding == "same":
        if layer.strides != (1, 1) or kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"to_onnx: layer {layer.name!r} uses padding='same' at stride {layer.strides} "
                             f"with a {kh}x{kw} kernel; only symmetric padding is written.")
        pads = [kh // 2, kw // 2, kh // 2, kw // 2]
    else:
        pads = [0, 0, 0, 0]
    (top, bottom), (left, right) = extra_pads
    pads = [pads[0] + top, pads[1] + left, pads[2] + bottom, pads[3] + right]
    inputs = [source, writer.constant(f"{layer.name}/W", kernel.transpose(3, 2, 0, 1))]
    if layer.use_bias:
        inputs.append(writer.constant(f"{layer.name}/B", keras.ops.convert_to_numpy(layer.bias).astype(np.float32)))
    out = writer.node("Conv", inputs, layer.name, kernel_shape=[int(kh), int(kw)], pads=pads,
                      strides=[int(s) for s in layer.strides], dilations=[int(d) for d in layer.dilation_rate],
                      group=int(getattr(layer, "groups", 1)))
    activation = keras.activations.serialize(layer.activation)
    return out if activation in ("linear", None) else _activation(writer, activation, out, layer.name)


def _activation(writer, name, source, layer_name):
    ops = {"relu": "Relu", "softmax": "Softmax", "sigmoid": "Sigmoid"}
    if name not in ops:
        raise ValueError(f"to_onnx: activation {name!r} of layer {layer_name!r} is not supported; "
                         f"accepted: {', '.join(ops)}, linear.")
    return writer.node(ops[name], [source], f"{layer_name}/{name}")


def _shortcut(writer, layer, source, channels):
    """Option A: `x[:, :, ::s, ::s]` then zero channels split before/after (NCHW)."""
    x = source
    if layer.strides > 1:
        big = np.iinfo(np.int64).max
        x = writer.node("Slice", [x, writer.constant(f"{layer.name}/starts", np.array([0, 0], np.int64)),
                                  writer.constant(f"{layer.name}/ends", np.array([big, big], np.int64)),
                                  writer.constant(f"{layer.name}/axes", np.array([2, 3], np.int64)),
                                  writer.constant(f"{layer.name}/steps", np.array([layer.strides] * 2, np.int64))],
                        f"{layer.name}/subsample")
    extra = layer.filters - channels
    before, after = extra // 2, extra - extra // 2
    if before or after:
        x = writer.node("Pad", [x, writer.constant(f"{layer.name}/pads",
                                                   np.array([0, before, 0, 0, 0, after, 0, 0], np.int64))],
                        layer.name)
    return x


def _dense(writer, layer, source):
    kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel), np.float32)
    bias = keras.ops.convert_to_numpy(layer.bias).astype(np.float32) if layer.use_bias else np.zeros(
        kernel.shape[1], np.float32)
    return writer.node("Gemm", [source, writer.constant(f"{layer.name}/W", kernel),
                                writer.constant(f"{layer.name}/B", bias)], f"{layer.name}/logits")


def _batch_norm(writer, layer, source):
    """A BN that no convolution precedes (a pre-activation unit's, He et al. 2016b), in inference mode."""
    if layer.axis not in (-1, 3) if isinstance(layer.axis, int) else list(layer.axis) not in ([-1], [3]):
        raise ValueError(f"to_onnx: BN layer {layer.name!r} normalises axis {layer.axis}; only channels last.")
    channels = int(layer.moving_mean.shape[0])

    def value(variable, default):
        return np.full(channels, default, np.float32) if variable is None else np.asarray(
            keras.ops.convert_to_numpy(variable), np.float32)

    tensors = [writer.constant(f"{layer.name}/{role}", array) for role, array in (
        ("scale", value(layer.gamma, 1.0)), ("bias", value(layer.beta, 0.0)),
        ("mean", value(layer.moving_mean, 0.0)), ("var", value(layer.moving_variance, 1.0)))]
    return writer.node("BatchNormalization", [source, *tensors], layer.name, epsilon=float(layer.epsilon))


def _inputs_of(layer_config):
    """Names of the layers feeding a layer (its first and only call)."""
    if len(layer_config["inbound_nodes"]) > 1:
        raise ValueError(f"to_onnx: layer {layer_config['name']!r} is called more than once; not supported.")
    return [ref[0] for ref in history_refs(layer_config["inbound_nodes"])]


def _write_layer(writer, layer, sources, pending_pads):
    """Writes one layer; returns its output tensor name (or None for a pad merged into its consumer)."""
    x = sources[0] if sources else None
    if isinstance(layer, keras.layers.ZeroPadding2D):
        if layer.data_format != "channels_last":
            raise ValueError(f"to_onnx: {layer.name!r} must be channels_last.")
        (top, bottom), (left, right) = _padding_pairs(layer)
        pads = np.array([0, 0, top, left, 0, 0, bottom, right], np.int64)
        return writer.node("Pad", [x, writer.constant(f"{layer.name}/pads", pads)], layer.name)
    if isinstance(layer, keras.layers.Conv2D):
        extra = pending_pads.pop(layer.name, ((0, 0), (0, 0)))
        return _conv(writer, layer, x, extra)
    if isinstance(layer, keras.layers.ReLU):
        return writer.node("Relu", [x], layer.name)
    if isinstance(layer, keras.layers.Activation):
        return _activation(writer, keras.activations.serialize(layer.activation), x, layer.name)
    if isinstance(layer, keras.layers.Add):
        out = sources[0]
        for i, other in enumerate(sources[1:]):
            out = writer.node("Add", [out, other], layer.name if i == len(sources) - 2 else f"{layer.name}/{i}")
        return out
    if isinstance(layer, keras.layers.MaxPooling2D):
        if layer.padding != "valid":
            raise ValueError(f"to_onnx: {layer.name!r} uses padding={layer.padding!r}; only 'valid' is written.")
        return writer.node("MaxPool", [x], layer.name, kernel_shape=list(layer.pool_size),
                           strides=list(layer.strides))
    if isinstance(layer, keras.layers.GlobalAveragePooling2D):
        pooled = writer.node("GlobalAveragePool", [x], f"{layer.name}/pool")
        return writer.node("Flatten", [pooled], layer.name, axis=1)
    if isinstance(layer, keras.layers.Dense):
        return _dense(writer, layer, x)
    if type(layer).__name__ == "ZeroPadShortcut":
        return _shortcut(writer, layer, x, int(layer.input.shape[-1]))
    if isinstance(layer, keras.layers.BatchNormalization):
        return _batch_norm(writer, layer, x)
    raise ValueError(f"to_onnx: layer {layer.name!r} of type {type(layer).__name__} is not supported.")


def _mergeable_pads(model, config):
    """{conv name: pads} for each `ZeroPadding2D` whose only consumer is a `Conv2D` (merged into it)."""
    consumers = {}
    for layer_config in config["layers"]:
        for source in _inputs_of(layer_config):
            consumers.setdefault(source, []).append(layer_config["name"])
    merged = {}
    for layer in model.layers:
        users = consumers.get(layer.name, [])
        if isinstance(layer, keras.layers.ZeroPadding2D) and len(users) == 1 and isinstance(
                model.get_layer(users[0]), keras.layers.Conv2D):
            merged[layer.name] = (users[0], _padding_pairs(layer))
    return merged


def _preprocess(writer, offset, scale):
    x = writer.node("Cast", ["image"], "image/float", to=1)
    if offset is not None:
        x = writer.node("Sub", [x, writer.constant("preprocess/offset", np.asarray(offset, np.float32))],
                        "preprocess/centred")
    if scale is not None:
        x = writer.node("Mul", [x, writer.constant("preprocess/scale", np.asarray(scale, np.float32))],
                        "preprocess/scaled")
    return x


def to_onnx(model, offset=None, scale=None, input_dtype="uint8", opset=OPSET, name=None):
    """Writes `model` (BN folded, logits classifier) as an ONNX `ModelProto`.

    Args:
        model: a functional package network whose classifier `predictions` has no activation (as the
            export's float32 logits clone), its BNs folded where they follow a convolution (the others are
            written as ONNX `BatchNormalization` in inference mode).
        offset: optional array broadcastable to `[H, W, 3]` subtracted from the input (the mean image in
            0..255 units for the package's own training preprocessing).
        scale: optional array or float multiplied after the offset (`1/255` for the package's rule).
        input_dtype: `"uint8"` (pixels, with `offset`/`scale` in the graph) or `"float32"`.
        opset: int, the ONNX opset version.
        name: optional graph name (default: the model's name).

    Returns:
        An `onnx.ModelProto`, checked with `onnx.checker`.

    Raises:
        ValueError: an unsupported layer, activation or argument (names it and what is accepted).
    """
    import onnx
    from onnx import TensorProto, helper

    if input_dtype not in ("uint8", "float32"):
        raise ValueError(f"to_onnx: input_dtype={input_dtype!r}; accepted: 'uint8', 'float32'.")
    writer = GraphWriter()
    config = model.get_config()
    merged = _mergeable_pads(model, config)
    pending = {conv: pads for conv, pads in merged.values()}
    x = _preprocess(writer, offset, scale) if input_dtype == "uint8" else "image"
    if input_dtype == "float32" and (offset is not None or scale is not None):
        x = _preprocess(writer, offset, scale)
    tensors = {config["layers"][0]["name"]: writer.node("Transpose", [x], "image/nchw", perm=[0, 3, 1, 2])}
    for layer_config in config["layers"][1:]:
        layer = model.get_layer(layer_config["name"])
        sources = [tensors[s] for s in _inputs_of(layer_config)]
        if layer.name in merged:
            tensors[layer.name] = sources[0]
            continue
        tensors[layer.name] = _write_layer(writer, layer, sources, pending)
    logits = writer.node("Identity", [tensors[model.layers[-1].name]], "logits")
    writer.node("Softmax", [logits], "probabilities", axis=-1)
    height, width, channels = (model.input_shape[1:])
    elem = TensorProto.UINT8 if input_dtype == "uint8" else TensorProto.FLOAT
    graph = helper.make_graph(writer.nodes, name or model.name,
                              [helper.make_tensor_value_info("image", elem, ["batch", height, width, channels])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", None]),
                               helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", None])],
                              writer.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="keras_resnet")
    onnx.checker.check_model(proto)
    return proto
