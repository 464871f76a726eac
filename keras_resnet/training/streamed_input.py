"""The streamed input of a run: `TFDataInput`, epochs from `keras_resnet.data.load` (tf.data).

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, section 3.4 (ImageNet:
scale augmentation, 224x224 crops, horizontal flips, the per-pixel mean subtracted; evaluation on the centre
crop or 10 crops) and 4.2 (CIFAR). The data of epoch `e` depends only on `(seed, e)`; the batches are
sharded over the replicas with `tf.distribute.InputContext`. The other paths and the choice between them
are `keras_resnet.training.inputs`'.

Example:
    >>> from keras_resnet.training import TrainConfig
    >>> run_input = TFDataInput(TrainConfig(model="resnet18", data="photos/", model_dir="x"), 32, 64, 0)  # needs a photo folder  # doctest: +SKIP
    >>> next(run_input.eval_batches("test"))[0].shape  # needs a photo folder  # doctest: +SKIP
    (64, 224, 224, 3)
"""

from __future__ import annotations

from keras_resnet.training.config import ConfigError
from keras_resnet.training.data_spec import data_spec


class TFDataInput:
    """Epochs from `keras_resnet.data.load` (tf.data), sharded with `tf.distribute.InputContext`.

    Args:
        config: the run's `DataSpec` (data, data_dir, download, seed, image_size, ten_crop, skip_corrupt), or
            the `TrainConfig` it comes from.
        global_batch: training batch size over all replicas.
        eval_batch: evaluation batch size.
        validation_size: training images held out for validation (0: none).
        eval_split: the split of role "test" (`--eval_split`).
        normalization: an `InputNormalization` applied to every batch (None: the data's mean only).
        eval_transform: the evaluation transform of the `--init_from` weights (`eval_transform_of`), at its
            publisher's crop: on ImageNet-style images it replaces the 256 / 224 geometry, scaled to the
            run's crop (`eval_transform` then holds the scaled one); CIFAR-style images stay whole (None).

    Raises:
        ConfigError: `--ten_crop` on CIFAR-style data, or with an evaluation transform (a single centre crop).
    """

    def __init__(self, config, global_batch, eval_batch, validation_size, eval_split="test", normalization=None,
                 eval_transform=None):
        from keras_resnet import data as data_lib

        spec = data_spec(config)
        self.data_lib, self.spec = data_lib, spec
        self.global_batch, self.eval_batch, self.validation_size = global_batch, eval_batch, validation_size
        self.eval_split, self.normalization, self.eval_skipped = eval_split, normalization, {}
        self.kwargs = dict(data_dir=spec.data_dir, download=spec.download, validation_size=validation_size,
                           skip_corrupt=spec.skip_corrupt)
        if normalization is not None:
            self.kwargs["mean"] = normalization.pipeline_mean
        if spec.image_size is not None:
            self.kwargs["crop_size"] = spec.image_size
        self.info = self._train_info()
        size = spec.image_size
        if self.info.preprocessing == "cifar" and size and tuple(self.info.image_shape[:2]) != (size, size):
            self.kwargs["image_size"] = (size, size)  # CIFAR-style images are resized, not cropped
            self.info = self._train_info()
        if spec.ten_crop and self.info.preprocessing != "imagenet":
            raise ConfigError(f"--ten_crop: {spec.flag} holds CIFAR-style images (both sides <= 64 pixels), "
                              "evaluated whole; 10-crop testing is for ImageNet-style images.")
        self.eval_transform = None
        if eval_transform is not None and self.info.preprocessing == "imagenet":
            if spec.ten_crop:
                raise ConfigError(f"--ten_crop: the --init_from weights are evaluated as their publisher does "
                                  f"({eval_transform.describe()}), a single crop; leave out --ten_crop.")
            self.eval_transform = eval_transform.scaled_to(self.kwargs.get("crop_size", self.data_lib.IMAGENET_CROP))
        self.num_train = int(self.info.num_examples["train"])
        self.has_validation = validation_size > 0

    def _train_info(self):
        return self.data_lib.load(self.spec.source, "train", self.global_batch, training=True,
                                  seed=self.spec.seed, **self.kwargs)[1]

    def _seed(self, epoch):
        return None if self.spec.seed is None else int(self.spec.seed) * 100_003 + int(epoch)

    def _normalized(self, ds):
        norm = self.normalization
        return ds if norm is None else ds.map(lambda x, y: (norm.tf(x), y))

    def _train(self, epoch, input_context=None):
        ds, _ = self.data_lib.load(self.spec.source, "train", self.global_batch, training=True,
                                   seed=self._seed(epoch), input_context=input_context, **self.kwargs)
        return self._normalized(ds)

    def tf_distributed_epoch(self, runtime, epoch, skip, steps):
        """A `tf.distribute` iterator over `steps` global batches of epoch `epoch`, after `skip`."""
        def dataset_fn(ctx):
            return self._train(epoch, ctx).repeat().skip(skip).take(steps)

        return iter(runtime.strategy.distribute_datasets_from_function(dataset_fn))

    def epoch_batches(self, epoch, skip=0):
        """Numpy global batches of epoch `epoch`, skipping the first `skip`."""
        return self._train(epoch).repeat().skip(skip).as_numpy_iterator()

    def eval_batches(self, role):
        """Numpy batches of `role` ("validation": held out; "test": the evaluation split), not augmented."""
        split = "validation" if role == "validation" else self.eval_split
        extra = {} if self.eval_transform is None else {"eval_transform": self.eval_transform}
        ds, info = self.data_lib.load(self.spec.source, split, self.eval_batch, training=False,
                                      ten_crop=self.spec.ten_crop, **self.kwargs, **extra)
        self.eval_skipped[role] = info.num_skipped
        return self._normalized(ds).as_numpy_iterator()

    def skipped(self):
        """`{split: images skipped}` of the training split and the splits evaluated so far (`--skip_corrupt`)."""
        counts = dict(self.info.num_skipped)
        for role, skipped in self.eval_skipped.items():
            counts.update({("validation" if role == "validation" else k): v for k, v in dict(skipped).items()})
        return counts
