"""A pretrained ResNet as a backbone: its multi-scale features feeding a small head of your own.

`keras_resnet.features(model)` turns any network of the package into a model whose outputs are its feature
pyramid, `{"P0": 32x32x16, "P1": 16x16x32, "P2": 8x8x64}` for a CIFAR ResNet (stride 2**k for "P<k>").
Here the published CIFAR-10 ResNet-20 (akamaster's, `weights="cifar10"`) is frozen, its features are
computed once, and a small head (the global average of two levels, one dense layer) is trained on half of
the CIFAR-10 test JPEGs and evaluated on the other half. Runs offline with the files at hand:

    python examples/backbone_features.py --data=../shared/datasets/cifar10-jpeg \\
        --weights_dir=../shared/weights/akamaster

(`--data`: a folder or archive of CIFAR-10 JPEGs with a `test` split; `--weights_dir`: the folder holding
`resnet20-12fca82f.th`, else the package downloads it.) Prints the held-out accuracy of the head.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="CIFAR-10 image folder or archive with a test split")
    parser.add_argument("--weights_dir", default=None, help="folder with akamaster's resnet20-12fca82f.th")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of the head (default 20)")
    return parser.parse_args(argv)


def pooled_features(backbone, images, levels=("P1", "P2")):
    """The global average of each chosen level, concatenated: `[N, 32 + 64]` for ResNet-20."""
    import keras

    inputs = keras.Input(backbone.input.shape[1:])
    maps = backbone(inputs)
    pooled = [keras.layers.GlobalAveragePooling2D()(maps[level]) for level in levels]
    extractor = keras.Model(inputs, keras.layers.Concatenate()(pooled))
    return extractor.predict(images, batch_size=500, verbose=0)


def main(argv=None):
    args = parse(argv)
    if args.weights_dir:
        os.environ["KERAS_RESNET_WEIGHTS"] = args.weights_dir
    import keras

    import keras_resnet
    from keras_resnet.data import load_arrays

    images, labels, _ = load_arrays(args.data, "test", mean=np.zeros((1, 1, 3), np.float32))
    order = np.random.default_rng(0).permutation(len(images))
    images, labels = images[order], labels[order]

    base = keras_resnet.ResNet20(weights="cifar10", include_top=False)
    backbone = keras_resnet.features(base)
    backbone.trainable = False
    print({key: tuple(value.shape) for key, value in backbone.output.items()})

    x = pooled_features(backbone, keras_resnet.preprocess_input(images, weights="cifar10"))
    half = len(x) // 2
    keras.utils.set_random_seed(0)
    head = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.Dense(10, activation="softmax")])
    head.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                 metrics=["accuracy"])
    head.fit(x[:half], labels[:half], epochs=args.epochs, batch_size=250, verbose=0)
    accuracy = float(head.evaluate(x[half:], labels[half:], verbose=0)[1])
    print(f"head on P1 + P2 of the frozen ResNet-20: {accuracy:.2%} on {len(x) - half} held-out test images")
    return accuracy


if __name__ == "__main__":
    main(sys.argv[1:])
