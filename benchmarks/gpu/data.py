"""The benchmark's data: CIFAR-10 (JPEG or learnable synthetic) as uint8 arrays, and the batch index stream.

Example:
    >>> from benchmarks.gpu.data import IndexStream
    >>> stream = IndexStream(n=10, batch=4, k=3, seed=0)
    >>> stream.next().shape  # k batches of indices per call; a fresh permutation every 10 // 4 = 2 batches
    (3, 4)
"""

from __future__ import annotations

import time

import numpy as np

CIFAR_TRAIN_SIZE = 50_000


def synthetic_cifar(n_train, n_test, seed):
    """Learnable synthetic CIFAR-shaped data (class-dependent mean colour plus noise) as an `ArrayData`."""
    from keras_resnet import training
    from keras_resnet.data import DatasetInfo

    rng = np.random.default_rng(seed)
    train_y = rng.integers(0, 10, n_train)
    test_y = rng.integers(0, 10, n_test)
    palette = rng.integers(40, 216, (10, 1, 1, 3))

    def images(y):
        noise = rng.integers(-40, 41, (len(y), 32, 32, 3))
        return np.clip(palette[y] + noise, 0, 255).astype(np.uint8)

    train_x, test_x = images(train_y), images(test_y)
    mean = train_x.astype(np.float64).mean(0).astype(np.float32)
    info = DatasetInfo(name="synthetic", class_names=[str(i) for i in range(10)], image_shape=(32, 32, 3),
                       num_examples={"train": n_train, "test": n_test}, mean=mean, preprocessing="cifar")
    return training.ArrayData(info, (train_x, train_y), (test_x, test_y))


def subset(data, train_images, test_images, seed):
    """`data` cut to random subsets of `train_images` / `test_images` (classes stay mixed in a sorted folder)."""
    from keras_resnet import training

    (train_x, train_y), (test_x, test_y) = data.train, data.test
    train_x, train_y = train_x[:train_images], train_y[:train_images]
    test_x, test_y = test_x[:test_images], test_y[:test_images]
    if train_images:
        order = np.random.default_rng(seed).permutation(len(data.train[1]))[:train_images]
        train_x, train_y = data.train[0][order], data.train[1][order]
    if test_images:
        order = np.random.default_rng(seed + 1).permutation(len(data.test[1]))[:test_images]
        test_x, test_y = data.test[0][order], data.test[1][order]
    return training.ArrayData(data.info, (train_x, train_y), (test_x, test_y))


class CifarArrays:
    """uint8 train/test arrays, the per-pixel mean and an `ArrayData` for `training.train`."""

    def __init__(self, args):
        from keras_resnet import training

        t0 = time.perf_counter()
        if args.data == "synthetic":
            self.data = synthetic_cifar(args.train_images or CIFAR_TRAIN_SIZE, args.test_images or 10_000, args.seed)
        else:
            self.data = training.load_array_data(args.data)
            if args.train_images or args.test_images:
                self.data = subset(self.data, args.train_images, args.test_images, args.seed)
        self.train_x, self.train_y = self.data.train[0], self.data.train[1].astype(np.int32)
        self.test_x, self.test_y = self.data.test[0], self.data.test[1].astype(np.int32)
        self.mean = np.asarray(self.data.info.mean, np.float32)
        self.load_s = time.perf_counter() - t0
        print(f"== data: {args.data}: {len(self.train_y)} train / {len(self.test_y)} test images, "
              f"{self.train_x.dtype} {self.train_x.shape[1:]}, loaded in {self.load_s:.1f} s", flush=True)


class IndexStream:
    """Batch indices `[K, B]` int32: a fresh permutation per epoch (remainder dropped), continuous across
    epochs (so every call has the same shape)."""

    def __init__(self, n, batch, k, seed):
        self.n, self.batch, self.k = n, batch, k
        self.rng = np.random.default_rng(seed)
        self.steps_per_epoch = n // batch
        self._epoch, self._pos = None, 0

    def next(self):
        out = np.empty((self.k, self.batch), np.int32)
        for i in range(self.k):
            if self._epoch is None or self._pos == self.steps_per_epoch:
                self._epoch = self.rng.permutation(self.n)[: self.steps_per_epoch * self.batch].reshape(
                    self.steps_per_epoch, self.batch).astype(np.int32)
                self._pos = 0
            out[i] = self._epoch[self._pos]
            self._pos += 1
        return out
