"""The training worker: our `keras_resnet.training.train()`, timed window by window from a batch callback.

One `train(TrainConfig(...), data=ArrayData(...))` run on random uint8 CIFAR-shaped images in memory (the
default `--input=auto`: shuffled, pad-4 crop + flip and normalised inside the compiled step from the plans
of the in-memory input, as for CIFAR-10),
float32, one epoch of `(warm-up windows + windows) * steps` iterations with `sync_every=steps`. `train()`
reads the loss on the host (and calls the batch callbacks) once per `sync_every` iterations, so the
callback sees each window's end: there it replies to the orchestrator's "window" request with the
seconds since that request and then waits for the next one; meanwhile the other columns of the row run
their windows, so the columns interleave. The first windows (tracing, compilation) are the
orchestrator's warm-up and are not counted. The backend is `KERAS_BACKEND` (TensorFlow: intra/inter-op
threads set before any op).

Protocol: "start" (replied when training begins), then "window" requests (one per window), then
"finish" (replied with `train()`'s summary, or its error) and "exit".

Example:
    >>> worker.call("start", model="resnet20", batch=128, steps=8, windows=6,
    ...             model_dir="/tmp/t", seed=0)  # needs a run directory  # doctest: +SKIP
    >>> worker.call("window")["seconds"]  # a benchmark's own process  # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
import traceback

import numpy as np

from benchmarks.cpu.channel import Channel, serve


def set_tf_threads():
    """TensorFlow's thread pools from the worker environment (before any TensorFlow op)."""
    import tensorflow as tf

    threads = int(os.environ.get("CPU_PEERS_THREADS", "1"))
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(int(os.environ.get("CPU_PEERS_TF_INTER_OP", threads)))
    return {"intra_op_threads": threads, "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}


def random_data(batch, seed, classes=10):
    """`ArrayData` of random uint8 32x32 images: `8 * batch` to train on, one batch to test on."""
    from keras_resnet.data import DatasetInfo
    from keras_resnet.training import ArrayData

    rng = np.random.default_rng(seed)
    train_n, test_n = 8 * batch, batch
    images = rng.integers(0, 256, (train_n + test_n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, classes, train_n + test_n).astype(np.int64)
    mean = images[:train_n].astype(np.float32).mean(axis=0)
    info = DatasetInfo(name="random", class_names=[str(i) for i in range(classes)], image_shape=(32, 32, 3),
                       num_examples={"train": train_n, "test": test_n}, mean=mean, preprocessing="cifar")
    return ArrayData(info, (images[:train_n], labels[:train_n]), (images[train_n:], labels[train_n:]))


def window_callback(channel, batch, steps, windows):
    """A Keras callback answering "window" requests at every `steps`-th batch end (see the module)."""
    import keras

    class WindowCallback(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen, self.done, self.start, self.awaiting = 0, 0, None, True

        def wait_for_window(self):
            message = channel.receive()
            if message.get("op") != "window":
                raise RuntimeError(f"expected a 'window' request; received {message!r}")
            self.start = time.perf_counter()

        def on_train_begin(self, logs=None):
            channel.send({"event": "ready"})
            self.awaiting = False
            self.wait_for_window()
            self.awaiting = True

        def on_train_batch_end(self, index, logs=None):
            self.seen += 1
            if self.seen % steps or self.done >= windows:
                return
            channel.send({"seconds": time.perf_counter() - self.start, "calls": steps, "items": steps * batch,
                          "loss": float((logs or {}).get("loss", float("nan")))})
            self.done += 1
            self.awaiting = False
            if self.done < windows:
                self.wait_for_window()
                self.awaiting = True

    return WindowCallback()


def run_training(channel, model, batch, steps, windows, model_dir, seed):
    """Runs `train()`; returns `(summary dict, None)` or `(None, error text)` (sent at once if awaited)."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    threads = set_tf_threads() if backend == "tensorflow" else {"jax": "XLA CPU default thread pool"}
    callback = None
    try:
        from keras_resnet.training import TrainConfig, train

        config = TrainConfig(model=model, data="random", model_dir=model_dir, batch_size=batch,
                             train_steps=steps * windows, steps_per_epoch=steps * windows, precision="float32",
                             sync_every=steps, verbose=0, seed=seed, eval_batch_size=batch)
        callback = window_callback(channel, batch, steps, windows)
        start = time.perf_counter()
        summary = train(config, data=random_data(batch, seed), callbacks=[callback])
        # train()'s own images_per_second / wall_time_s include the waits between windows: left out.
        summary = {key: value for key, value in dict(summary).items()
                   if isinstance(value, (int, float, str)) and key not in ("images_per_second", "wall_time_s")}
        return {"summary": summary, "backend": backend, "threads": threads, "sync_every": steps,
                "config": config.to_dict(), "total_s": time.perf_counter() - start}, None
    except Exception:  # noqa: BLE001 - reported to the orchestrator
        error = traceback.format_exc(limit=12)
        if callback is None or callback.awaiting:
            channel.send(error=error)
            return None, None
        return None, error


def main():
    channel = Channel()
    message = channel.receive()
    if message.pop("op") != "start":
        channel.send(error="the first request of the training worker must be 'start'")
        return
    result, error = run_training(channel, **message)

    def finish():
        if error:
            raise RuntimeError(f"train() failed after the timed windows:\n{error}")
        return result or {}

    serve({"finish": finish}, channel)


if __name__ == "__main__":
    main()
