"""Contracts of the inference graphs: BN folding is exact, the ONNX writer computes the same network."""

import keras
import numpy as np
import pytest

import keras_resnet
from keras_resnet.inference import fold_batch_norms, foldable_pairs

from conftest import randomise_batch_norms, real_cifar_test_images, relative_difference


CASES = {
    "resnet20-A": lambda: keras_resnet.ResNet20(classifier_activation=None),
    "resnet8-B-zero-init": lambda: keras_resnet.cifar_resnet(8, shortcut="B", zero_init_residual=True,
                                                             classifier_activation=None),
    "plain20": lambda: keras_resnet.PlainNet20(classifier_activation=None),
    "resnet18-64px": lambda: keras_resnet.ResNet18(input_shape=(64, 64, 3), classes=10, classifier_activation=None),
    "resnet50-64px": lambda: keras_resnet.ResNet50(input_shape=(64, 64, 3), classes=10, classifier_activation=None),
}


@pytest.fixture(scope="module")
def cifar_images():
    images, labels, _ = real_cifar_test_images(per_class=4)
    return images, labels


def network_input(model, images):
    """Real CIFAR pixels at the model's input size, with a mean image: `(uint8 pixels, mean, float input)`."""
    size = model.input_shape[1:3]
    pixels = np.asarray(keras.ops.convert_to_numpy(keras.ops.image.resize(images, size)), np.float32)
    pixels = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
    mean = pixels.astype(np.float32).mean(0)
    return pixels, mean, (pixels.astype(np.float32) - mean) / 255.0


@pytest.mark.parametrize("name", CASES, ids=CASES.keys())
def test_folding_is_exact_with_random_statistics(name, cifar_images, eager_draws):
    model = randomise_batch_norms(CASES[name]())
    _, _, x = network_input(model, cifar_images[0])
    eager_draws.clear()
    folded, pairs = fold_batch_norms(model)
    assert eager_draws == []  # every value of the folded copy is its source's: none drawn to be overwritten
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(pairs) == len(bns) and pairs == foldable_pairs(model)
    assert not [layer for layer in folded.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert folded.count_params() == model.count_params() - sum(3 * bn.gamma.shape[0] for bn in bns)  # BN: 4 per channel; bias: 1
    want = model.predict(x, verbose=0)
    assert relative_difference(folded.predict(x, verbose=0), want) < 1e-4
    assert model.get_layer(pairs[0][0]).use_bias is False  # the source model is left as it was


def test_folding_keeps_option_a_parameter_free_and_skips_shared_convolutions():
    model = keras_resnet.ResNet20()
    folded, _ = fold_batch_norms(model)
    shortcut = folded.get_layer("stage2_block1_shortcut")
    assert type(shortcut).__name__ == "ZeroPadShortcut" and not shortcut.weights
    inputs = keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(inputs)
    bn = keras.layers.BatchNormalization(name="bn")(conv)
    branching = keras.Model(inputs, keras.layers.Add(name="add")([bn, conv]))
    assert foldable_pairs(branching) == []  # the convolution feeds the addition too: not folded


def test_folding_rejects_a_subclassed_model():
    class Net(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="is not a functional model"):
        fold_batch_norms(Net())


@pytest.mark.parametrize("name", ["resnet20-A", "resnet8-B-zero-init", "resnet50-64px"])
def test_onnx_graph_equals_the_keras_model(name, cifar_images):
    ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime is installed by .ci/run (the onnx extra)")
    from keras_resnet.inference import onnx_graph

    model = randomise_batch_norms(CASES[name]())
    pixels, mean, x = network_input(model, cifar_images[0])
    folded, _ = fold_batch_norms(model)
    proto = onnx_graph.to_onnx(folded, offset=mean, scale=np.float32(1 / 255))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    logits, probabilities = session.run(["logits", "probabilities"], {"image": pixels})
    want = model.predict(x, verbose=0)
    assert relative_difference(logits, want) < 1e-4
    # The probabilities are the softmax of the graph's own logits; against Keras' softmax a logit difference
    # allowed above (1e-4 of the largest logit) moves them by more than 1e-5 where classes are close.
    np.testing.assert_allclose(probabilities, keras.ops.convert_to_numpy(keras.ops.softmax(logits)), atol=1e-6)
    assert not [n for n in proto.graph.node if n.op_type == "BatchNormalization"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == list(model.input_shape[1:])
    single = session.run(["logits"], {"image": pixels[:1]})[0]  # the batch axis is dynamic
    np.testing.assert_allclose(single, logits[:1], rtol=1e-5, atol=1e-5)


def test_onnx_graph_writes_unfolded_batch_norms_and_rejects_a_bad_dtype():
    """A BN no convolution precedes (the pre-activation networks') is an ONNX BatchNormalization in inference
    mode; unfolded everywhere, the graph still computes the network's logits."""
    pytest.importorskip("onnx", reason="onnx is installed by .ci/run (the onnx extra)")
    ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime is installed by .ci/run (the onnx extra)")
    from keras_resnet.inference import onnx_graph

    model = randomise_batch_norms(keras_resnet.cifar_resnet(8, classifier_activation=None))
    proto = onnx_graph.to_onnx(model, offset=None, scale=None, input_dtype="float32")
    assert len([n for n in proto.graph.node if n.op_type == "BatchNormalization"]) == 7
    x = np.random.default_rng(3).normal(size=(2, 32, 32, 3)).astype("float32")
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    want = keras.ops.convert_to_numpy(model(x, training=False))
    assert relative_difference(session.run(["logits"], {"image": x})[0], want) < 1e-4
    with pytest.raises(ValueError, match="input_dtype='int8'; accepted: 'uint8', 'float32'"):
        onnx_graph.to_onnx(fold_batch_norms(model)[0], input_dtype="int8")
