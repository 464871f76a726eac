"""Compiled training steps: one SGD iteration, or `k` of them in one compiled call, on TensorFlow and JAX.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, section 3.4 (SGD with
momentum on mini-batches, coupled weight decay through the kernels' L2 losses); Goyal et al. 2017
(gradients of one global batch summed over replicas).

Both steppers have the interface `train()` drives:

- `start_epoch(data_input, epoch, skip, steps)`: the batches of epoch `epoch` from the input object;
- `run(k)`: dispatches the next `k` iterations as one compiled call and returns `(ces, regs, corrects)`,
  device arrays of shape `[k]` (`k == 1`: scalars), the cross-entropy, the regularisation term (the L2
  weight decay's `sum(l * ||w||^2)`; the training loss is their sum) and the number of correct predictions
  of each iteration, unread (reading them is what makes the host wait);
- `predict(x)`: probabilities of a numpy batch (inference mode), as numpy;
- `sync()`: makes the Keras variables hold the stepper's state (before checkpoints and evaluation);
- `close()`: lets go of the epoch's iterator; `train()` calls it however the run ends (a `tf.data` iterator
  left in a reference cycle is destroyed by a later garbage collection, which then waits, holding the GIL,
  for the iterator's autotuning thread to wake: 30 to 90 s measured in the test suite).

`TFStepper(model, runtime, device_data=None)`: `strategy.run` of the step on every replica, gradients
all-reduced by the optimizer; `k > 1` is a `tf.function` with a loop over `k` batches of the distributed
iterator.

`JaxStepper(model, runtime=None, device_data=None)`: a stateless step (`model.stateless_call` +
`optimizer.stateless_apply`) on the state `(trainable, non_trainable, optimizer_variables)` (lists of
arrays). Its public seams, for programs that build their own loops around the package's step (the GPU
benchmark):

- `state`: the current state tuple (taken from the Keras variables at construction and `start_epoch`);
- `step_fn`: the jitted step `(state, x, y) -> (state, ce, reg, correct)`, x float32 preprocessed images
  `[B, H, W, C]`, y int labels `[B]`; it can be called inside other jitted programs;
- `multi_step_fn(k)`: jitted `(state, xs[k, B, H, W, C], ys[k, B]) -> (state, ces[k], regs[k], corrects[k])`:
  `k` iterations of `step_fn` in one `jax.lax.scan` (cached per `k`). XLA compiles the scan body as a
  whole, so the result equals `k` calls of `step_fn` up to float32 rounding, not bitwise (TensorFlow's
  loop is bitwise equal to single steps).

With `device_data=(uint8 images, labels, mean)` either step gathers and augments its batches itself from the
plans of `MemoryInput.epoch_plans` (the `--input=device` path; on TensorFlow the images are one tensor the
compiled step captures, and the batches equal the host's bit for bit).

Example:
    >>> stepper = JaxStepper(model)  # needs the JAX backend and a model  # doctest: +SKIP
    >>> state, ce, reg, correct = stepper.step_fn(stepper.state, x, y)  # needs the JAX backend and a model  # doctest: +SKIP
    >>> state, ces, regs, corrects = stepper.multi_step_fn(4)(state, xs, ys)  # needs the JAX backend and a model  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

import keras
from keras import ops


def sparse_ce(labels, probs):
    """Mean sparse categorical cross-entropy of probabilities `probs` [B, classes] for int `labels` [B]."""
    return ops.mean(keras.losses.sparse_categorical_crossentropy(labels, probs))


def regularization(losses):
    """The sum of a model's regularisation losses (`model.losses`: the kernels' L2 weight decay), 0 without."""
    return ops.sum(ops.stack(losses)) if losses else ops.zeros((), "float32")


class TFStepper:
    """`strategy.run` of one SGD step on every replica; gradients all-reduced (summed) by the optimizer.

    Args:
        model: a compiled Keras model whose optimizer is built (`build_model`), in `runtime`'s scope.
        runtime: the `Runtime` (strategy, replicas).
        device_data: optional `(uint8 train images, labels, mean)` the compiled step gathers and augments its
            batches from (`--input=device`, one replica); None: batches come augmented from the host.
    """

    def __init__(self, model, runtime, device_data=None):
        import tensorflow as tf

        self.model, self.runtime, self.tf = model, runtime, tf
        strategy = runtime.strategy
        replica_step = self._replica_step_fn(model, float(runtime.replicas))
        self.on_device = device_data is not None
        if self.on_device:
            replica_step = self._replica_plan_step_fn(replica_step, device_data)

        def one_step(iterator):
            ce, reg, correct = strategy.run(replica_step, args=next(iterator))
            return (strategy.reduce(tf.distribute.ReduceOp.MEAN, ce, axis=None),
                    strategy.reduce(tf.distribute.ReduceOp.MEAN, reg, axis=None),
                    strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None))

        @tf.function
        def multi_step(iterator, k):  # `k` is a Python int: one trace per distinct `k`
            arrays = [tf.TensorArray(tf.float32, size=k) for _ in range(3)]
            for i in tf.range(k):
                values = one_step(iterator)
                arrays = [a.write(i, tf.cast(v, tf.float32)) for a, v in zip(arrays, values)]
            return tuple(a.stack() for a in arrays)

        @tf.function(reduce_retracing=True)
        def predict(x):
            return model(x, training=False)

        self._step, self._multi_step, self._predict = tf.function(one_step), multi_step, predict
        self._average = self._average_fn(model, strategy)
        self._iterator = None

    @staticmethod
    def _replica_plan_step_fn(replica_step, device_data):
        """The step on a batch plan `(indices, offset_y, offset_x, flip)`: the uint8 training images stay in
        one tensor, captured by the compiled step, which gathers, crops, flips and normalises its batch
        (`keras_resnet.data.device_augment`), as the JAX device path does."""
        import tensorflow as tf

        from keras_resnet.data.device_augment import augment_normalize

        images, labels, mean = device_data
        images, labels = tf.convert_to_tensor(images), tf.convert_to_tensor(labels.astype(np.int32))
        mean = None if mean is None else tf.convert_to_tensor(np.asarray(mean, np.float32))

        def plan_step(indices, offset_y, offset_x, flip):
            x = augment_normalize(tf.gather(images, indices), mean, offset_y, offset_x, flip)
            return replica_step(x, tf.gather(labels, indices))

        return plan_step

    @staticmethod
    def _replica_step_fn(model, replicas):
        import tensorflow as tf

        optimizer = model.optimizer

        def replica_step(x, y):
            with tf.GradientTape() as tape:
                probs = model(x, training=True)
                ce = sparse_ce(y, probs)
                reg = regularization(model.losses)
                scaled = optimizer.scale_loss((ce + reg) / replicas)
            grads = tape.gradient(scaled, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
            correct = ops.sum(ops.cast(ops.equal(ops.argmax(probs, -1), ops.cast(y, "int64")), "float32"))
            return ce, reg, correct

        return replica_step

    @staticmethod
    def _average_fn(model, strategy):
        import tensorflow as tf

        @tf.function
        def average_non_trainable():
            variables = model.non_trainable_variables

            def replica_fn():
                ctx = tf.distribute.get_replica_context()
                return [ctx.all_reduce(tf.distribute.ReduceOp.MEAN, tf.identity(v.value)) for v in variables]

            values = strategy.run(replica_fn)
            for variable, value in zip(variables, values):
                variable.assign(strategy.experimental_local_results(value)[0])

        return average_non_trainable

    def start_epoch(self, data_input, epoch, skip, steps):
        """Opens the `tf.distribute` iterator of `steps` batches (or batch plans) of epoch `epoch` after `skip`."""
        if self.on_device:
            self._iterator = data_input.tf_distributed_plans(self.runtime, epoch, skip, steps)
        else:
            self._iterator = data_input.tf_distributed_epoch(self.runtime, epoch, skip, steps)

    def step(self):
        """One iteration; returns the cross-entropy, the regularisation term and the number of correct
        predictions as (unread) tensors."""
        return self._step(self._iterator)

    def run(self, k=1):
        """`k` iterations in one compiled call; `(ces, regs, corrects)` (`[k]` tensors, scalars for `k == 1`)."""
        if k == 1:
            return self.step()
        return self._multi_step(self._iterator, int(k))

    def predict(self, x):
        """Probabilities of the numpy batch `x` (inference mode)."""
        return np.asarray(self._predict(x))

    def sync(self):
        """Averages the BN moving statistics over replicas (each replica updates its own copy), so every
        replica and worker holds the same model and what the chief saves is what the others have."""
        if self.runtime.replicas > 1 and self.model.non_trainable_variables:
            self._average()

    def close(self):
        """Drops the epoch's distributed iterator (its `tf.data` threads end now, not at a later garbage
        collection)."""
        self._iterator = None


class JaxStepper:
    """A jitted stateless step (JAX): `model.stateless_call` + `optimizer.stateless_apply`.

    The state lives in device arrays during an epoch; `sync()` writes it back into the Keras variables before
    anything reads them (checkpoints, evaluation). See the module docstring for `step_fn` / `multi_step_fn`.

    Args:
        model: a compiled Keras model whose optimizer is built (`build_model`).
        runtime: the `Runtime` (its `jax_distribution` shards the batches over local devices); None: one
            device.
        device_data: optional `(uint8 train images, labels, mean)` kept on the device (`--input=device`).
    """

    def __init__(self, model, runtime=None, device_data=None):
        import jax

        self.model, self.runtime = model, runtime
        self.on_device = device_data is not None
        self._step_body = self._step_body_fn(model)
        self.step_fn = jax.jit(self._step_body)
        self._predict = jax.jit(lambda trainable, non_trainable, x: model.stateless_call(
            trainable, non_trainable, x, training=False)[0])
        self._multi, self._device_multi = {}, {}
        self._batches = self._plans = None
        if self.on_device:
            images, labels, mean = device_data
            self._images, self._labels = jax.device_put(images), jax.device_put(labels.astype(np.int32))
            self._mean = None if mean is None else jax.device_put(np.asarray(mean, np.float32))
            self._device_step = jax.jit(self._device_body)
        self._load_state()

    @staticmethod
    def _step_body_fn(model):
        import jax

        optimizer = model.optimizer

        def loss_fn(trainable, non_trainable, optimizer_vars, x, y):
            probs, non_trainable, losses = model.stateless_call(trainable, non_trainable, x, training=True,
                                                                return_losses=True)
            ce, reg = sparse_ce(y, probs), regularization(losses)
            with keras.StatelessScope(state_mapping=list(zip(optimizer.variables, optimizer_vars))):
                scaled = optimizer.scale_loss(ce + reg)
            return scaled, (ce, reg, probs, non_trainable)

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

        def step(state, x, y):
            trainable, non_trainable, optimizer_vars = state
            (_, (ce, reg, probs, non_trainable)), grads = grad_fn(trainable, non_trainable, optimizer_vars, x, y)
            trainable, optimizer_vars = optimizer.stateless_apply(optimizer_vars, grads, trainable)
            correct = ops.sum(ops.cast(ops.equal(ops.argmax(probs, -1), ops.cast(y, "int32")), "float32"))
            return (trainable, non_trainable, optimizer_vars), ce, reg, correct

        return step

    def _device_body(self, state, images, labels, mean, idx, offset_y, offset_x, flip):
        from keras_resnet.data.device_augment import augment_normalize

        x = augment_normalize(ops.take(images, idx, axis=0), mean, offset_y, offset_x, flip)
        return self._step_body(state, x, ops.take(labels, idx, axis=0))

    def multi_step_fn(self, k):
        """The jitted `(state, xs[k, B, ...], ys[k, B]) -> (state, ces[k], regs[k], corrects[k])` (k iterations)."""
        if k not in self._multi:
            import jax

            def multi_step(state, xs, ys):
                def body(state, batch):
                    state, *metrics = self._step_body(state, *batch)
                    return state, tuple(metrics)

                state, (ces, regs, corrects) = jax.lax.scan(body, state, (xs, ys), length=k)
                return state, ces, regs, corrects

            self._multi[k] = jax.jit(multi_step)
        return self._multi[k]

    def _device_multi_step_fn(self, k):
        if k not in self._device_multi:
            import jax

            def multi_step(state, images, labels, mean, idx, offset_y, offset_x, flip):
                def body(state, plan):
                    state, *metrics = self._device_body(state, images, labels, mean, *plan)
                    return state, tuple(metrics)

                state, (ces, regs, corrects) = jax.lax.scan(body, state, (idx, offset_y, offset_x, flip),
                                                            length=k)
                return state, ces, regs, corrects

            self._device_multi[k] = jax.jit(multi_step)
        return self._device_multi[k]

    def _load_state(self):
        m = self.model
        self.state = ([v.value for v in m.trainable_variables], [v.value for v in m.non_trainable_variables],
                      [v.value for v in m.optimizer.variables])

    def _put(self, array):
        dist = None if self.runtime is None else self.runtime.jax_distribution
        if dist is None:
            return array
        return keras.distribution.distribute_tensor(array, dist.get_data_layout(array.shape))

    def start_epoch(self, data_input, epoch, skip, steps):
        """Takes the state from the Keras variables and the batches (or plans) of epoch `epoch` after `skip`."""
        self._load_state()
        if self.on_device:
            self._plans = data_input.epoch_plans(epoch, skip)
        else:
            self._batches = data_input.epoch_batches(epoch, skip)

    def step(self):
        """One iteration, dispatched asynchronously; returns the cross-entropy, the regularisation term and
        the correct count as device arrays."""
        if self.on_device:
            idx, (offset_y, offset_x, flip) = next(self._plans)
            self.state, *metrics = self._device_step(
                self.state, self._images, self._labels, self._mean, idx.astype(np.int32),
                offset_y.astype(np.int32), offset_x.astype(np.int32), flip)
            return tuple(metrics)
        x, y = next(self._batches)
        self.state, *metrics = self.step_fn(self.state, self._put(x), self._put(y))
        return tuple(metrics)

    def run(self, k=1):
        """`k` iterations in one compiled call; `(ces, regs, corrects)` (`[k]` arrays, scalars for `k == 1`).

        With several devices (`jax_distribution`) the `k` iterations are `k` calls of `step_fn`: the
        batches are sharded over devices one by one.
        """
        if k == 1:
            return self.step()
        if self.on_device:
            plans = [next(self._plans) for _ in range(k)]
            idx = np.stack([p[0] for p in plans]).astype(np.int32)
            offset_y, offset_x, flip = (np.stack([p[1][j] for p in plans]) for j in range(3))
            self.state, *metrics = self._device_multi_step_fn(k)(
                self.state, self._images, self._labels, self._mean, idx, offset_y.astype(np.int32),
                offset_x.astype(np.int32), flip)
            return tuple(metrics)
        if self.runtime is not None and self.runtime.jax_distribution is not None:
            results = [self.step() for _ in range(k)]
            return tuple(ops.stack([r[j] for r in results]) for j in range(3))
        batches = [next(self._batches) for _ in range(k)]
        xs, ys = np.stack([b[0] for b in batches]), np.stack([b[1] for b in batches])
        self.state, *metrics = self.multi_step_fn(k)(self.state, xs, ys)
        return tuple(metrics)

    def predict(self, x):
        """Probabilities of the numpy batch `x` (inference mode), with the stepper's current state."""
        return np.asarray(self._predict(self.state[0], self.state[1], x))

    def sync(self):
        """Writes the state back into the model's and optimizer's Keras variables."""
        m = self.model
        for variables, values in zip((m.trainable_variables, m.non_trainable_variables, m.optimizer.variables),
                                     self.state):
            for variable, value in zip(variables, values):
                variable.assign(value)

    def close(self):
        """Drops the epoch's batch iterator (on streamed data, a `tf.data` one)."""
        self._batches = self._plans = None


def make_stepper(model, runtime, run_input):
    """The stepper `train()` uses: `TFStepper` on TensorFlow, `JaxStepper` otherwise (device data for the
    `--input=device` path)."""
    data = run_input.data
    device_data = (data.train[0], data.train[1], run_input.info.mean) if run_input.device_input else None
    if runtime.backend == "tensorflow":
        return TFStepper(model, runtime, device_data=device_data)
    return JaxStepper(model, runtime, device_data=device_data)
