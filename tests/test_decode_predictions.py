"""`keras_resnet.imagenet_classes`: the shipped ImageNet class index and `decode_predictions`.

The shipped `imagenet_class_index.json` is keras.applications' file (its MD5 is the hash the installed
Keras publishes) and its wnids are tensorflow-datasets' ImageNet labels, in order; `decode_predictions`
gives what keras.applications' gives on the same input (Keras pointed at a copy of the shipped file, no
network), from a NumPy array or a TensorFlow tensor, and names the argument in each error. No model is built.

Reference: He et al. (2015), "Deep Residual Learning for Image Recognition", section 4.1 (ImageNet 2012,
1000 classes); keras.applications' `imagenet_utils.decode_predictions`.
"""

import hashlib
import importlib.resources
import importlib.util
import inspect
import pathlib
import re
import shutil

import keras
import numpy as np
import pytest

from keras_resnet import imagenet_classes as classes_lib
from keras_resnet.imagenet_classes import IMAGENET_CLASS_INDEX_MD5, decode_predictions, imagenet_classes

SHIPPED = importlib.resources.files("keras_resnet").joinpath("imagenet_class_index.json")
KNOWN = {0: ("n01440764", "tench"), 1: ("n01443537", "goldfish"), 134: ("n02012849", "crane"),
         207: ("n02099601", "golden_retriever"), 281: ("n02123045", "tabby"), 517: ("n03126707", "crane"),
         639: ("n03710721", "maillot"), 999: ("n15075141", "toilet_tissue")}


def random_scores(rows, seed=0):
    """Softmax rows with no two equal scores in a row (so every ranking is the same whatever the sort)."""
    rng = np.random.default_rng(seed)
    logits = rng.permutation(np.linspace(-8.0, 8.0, 1000))[None] + rng.normal(0, 1e-3, (rows, 1000))
    scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    scores = scores.astype("float32")
    assert all(len(set(row.tolist())) == 1000 for row in scores)
    return scores


def test_the_shipped_file_has_the_hash_keras_publishes():
    digest = hashlib.md5(SHIPPED.read_bytes()).hexdigest()
    source = inspect.getsource(keras.applications.imagenet_utils.decode_predictions)
    published = re.findall(r'file_hash\s*=\s*["\']([0-9a-f]{32})["\']', source)
    assert published == [IMAGENET_CLASS_INDEX_MD5], f"keras' decode_predictions publishes {published}"
    assert digest == IMAGENET_CLASS_INDEX_MD5


def test_the_wnids_are_tensorflow_datasets_imagenet_labels_in_order():
    package = pathlib.Path(importlib.util.find_spec("tensorflow_datasets").origin).parent
    labels = (package / "datasets" / "imagenet2012" / "labels.txt").read_text().split()
    assert len(labels) == 1000
    assert [wnid for wnid, _ in imagenet_classes()] == labels


def test_the_classes_are_1000_pairs_read_once():
    classes = imagenet_classes()
    assert len(classes) == 1000 and all(len(pair) == 2 for pair in classes)
    assert len({wnid for wnid, _ in classes}) == 1000
    assert imagenet_classes() is classes
    assert {index: classes[index] for index in KNOWN} == KNOWN


@pytest.mark.parametrize("index", sorted(KNOWN))
def test_a_one_hot_row_decodes_to_its_class(index):
    scores = np.zeros((1, 1000), "float32")
    scores[0, index] = 0.625
    top = decode_predictions(scores, top=1)
    assert top == [[KNOWN[index] + (0.625,)]]
    assert type(top[0][0][2]) is float


def test_known_indices_with_exact_scores():
    scores = np.zeros((1, 1000), "float32")
    for rank, index in enumerate((281, 999, 0, 207, 1)):
        scores[0, index] = 0.5 ** (rank + 1)
    assert decode_predictions(scores) == [[
        ("n02123045", "tabby", 0.5), ("n15075141", "toilet_tissue", 0.25), ("n01440764", "tench", 0.125),
        ("n02099601", "golden_retriever", 0.0625), ("n01443537", "goldfish", 0.03125)]]


def test_top_k_order_and_length_on_a_batch():
    scores = random_scores(4)
    for top in (1, 5, 17, 1000):
        decoded = decode_predictions(scores, top=top)
        assert len(decoded) == 4 and all(len(row) == top for row in decoded)
        for row, result in zip(scores, decoded):
            expected = np.argsort(row)[::-1][:top]
            assert [wnid for wnid, _, _ in result] == [imagenet_classes()[i][0] for i in expected]
            assert [score for _, _, score in result] == row[expected].tolist()
    assert decode_predictions(np.zeros((0, 1000), "float32")) == []


def test_ties_keep_class_index_order_and_nan_ranks_last():
    scores = np.zeros((2, 1000), "float32")
    scores[0, [5, 3, 900]] = 0.5
    scores[1, :] = np.nan
    scores[1, 7] = 0.0
    first, second = decode_predictions(scores, top=4)
    assert [imagenet_classes().index(pair[:2]) for pair in first] == [3, 5, 900, 0]
    assert second[0][:2] == imagenet_classes()[7]


@pytest.fixture
def keras_offline(tmp_path, monkeypatch):
    """Keras' decode_predictions reading a copy of the shipped file from a cache dir, with downloads refused."""
    from keras.src.applications import imagenet_utils  # private: CLASS_INDEX, Keras' once-loaded cache
    from keras.src.utils import file_utils  # private: get_file's cache dir and its downloader

    (tmp_path / "models").mkdir()
    shutil.copyfile(SHIPPED, tmp_path / "models" / "imagenet_class_index.json")
    real_get_file = file_utils.get_file
    calls = []

    def cached_get_file(fname, origin=None, **kwargs):
        calls.append(fname)
        return real_get_file(fname, origin, cache_dir=str(tmp_path), **kwargs)

    def refuse(*args, **kwargs):
        raise AssertionError(f"keras tried to download {args[:1]}")

    monkeypatch.setattr(file_utils, "get_file", cached_get_file)
    monkeypatch.setattr(file_utils, "urlretrieve", refuse)
    monkeypatch.setattr(imagenet_utils, "CLASS_INDEX", None)  # private: Keras caches the index globally
    yield keras.applications.imagenet_utils.decode_predictions
    assert calls == ["imagenet_class_index.json"], "keras did not read the index through the patched get_file"


@pytest.mark.parametrize("top", [1, 5, 10])
def test_equals_keras_applications(keras_offline, top):
    scores = random_scores(6, seed=top)
    theirs = keras_offline(scores, top=top)
    ours = decode_predictions(scores, top=top)
    assert ours == [[tuple(entry[:2]) + (float(entry[2]),) for entry in row] for row in theirs]
    assert [[entry[2] for entry in row] for row in ours] == [[entry[2] for entry in row] for row in theirs]


def test_a_tensorflow_tensor():
    import tensorflow as tf

    scores = random_scores(3, seed=7)
    assert decode_predictions(tf.constant(scores), top=3) == decode_predictions(scores, top=3)
    assert decode_predictions(keras.ops.convert_to_tensor(scores), top=2) == decode_predictions(scores, top=2)


@pytest.mark.parametrize("shape, received", [
    ((2, 10), "(2, 10)"), ((1000,), "(1000,)"), ((1, 1000, 1), "(1, 1000, 1)"), ((4, 1001), "(4, 1001)")])
def test_a_wrong_shape_is_named(shape, received):
    with pytest.raises(ValueError) as error:
        decode_predictions(np.zeros(shape, "float32"))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("`preds` must be a batch of ImageNet scores, shape [batch, 1000]; ")
    assert f"received shape {received}" in message
    assert 'ResNet50(weights="imagenet")' in message and "CIFAR-10" in message and "labels" in message
    assert ("preds[None]" in message) == (shape == (1000,))


@pytest.mark.parametrize("top", [0, -1, 1001, 2.0, "5", None, True])
def test_a_wrong_top_is_named(top):
    with pytest.raises(ValueError) as error:
        decode_predictions(np.zeros((1, 1000), "float32"), top=top)
    assert str(error.value) == ("`top` must be an int from 1 to 1000 (how many classes to list per row); "
                                f"received {top!r}.")


def test_top_accepts_numpy_ints_and_the_whole_range():
    scores = random_scores(1)
    assert len(decode_predictions(scores, top=np.int64(3))[0]) == 3
    assert len(decode_predictions(scores, top=1000)[0]) == 1000
    assert classes_lib.IMAGENET_NUM_CLASSES == 1000
