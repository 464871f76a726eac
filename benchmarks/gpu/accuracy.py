"""The `accuracy` part: the paper's CIFAR recipe (64k iterations, batch 128, lr 0.1 / 10 at 32k and 48k, SGD
0.9, wd 1e-4; He et al. 2015, section 4.2) trained with the fused multi-iteration step or `training.train()`,
test accuracy every `--eval_every` epochs, time to the target accuracy.

Example:
    >>> from benchmarks.gpu.accuracy import part_accuracy
    >>> part_accuracy(args, report, cifar)  # accuracy_<model>.csv / .keras in report.out_dir  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import os
import time

import numpy as np

from benchmarks.gpu.cli import PRECISIONS
from benchmarks.gpu.data import IndexStream
from benchmarks.gpu.programs import block, build_package_model, copy_state, divisor_at_most, make_scan_program

TARGET_ACCURACY = {"resnet20": 0.88, "resnet56": 0.90}
CURVE_FIELDS = ["iteration", "epoch", "learning_rate", "train_loss", "train_error", "test_accuracy", "train_s",
                "wall_s"]


def part_accuracy(args, report, cifar):
    """The part: one training run per `--models`, with `--accuracy_loop` (fused or package)."""
    for model_name in args.models:
        if report.elapsed() > args.budget_s:
            report.skip(f"accuracy {model_name}", "time budget reached")
            continue
        try:
            if args.accuracy_loop == "package":
                accuracy_package(model_name, args, report, cifar)
            else:
                FusedAccuracyRun(model_name, args, report, cifar).run()
        except Exception as e:
            report.error(f"accuracy {model_name}", e)


def test_evaluator(model, cifar):
    """A jitted `evaluate(trainable, non_trainable) -> test accuracy` over all test images (batches of 1000,
    the last one zero-padded and not counted)."""
    import jax
    import jax.numpy as jnp

    from keras_resnet.data.preprocessing import normalize

    eval_batch = 1000 if len(cifar.test_y) >= 1000 else len(cifar.test_y)
    n_test = len(cifar.test_y)
    padded_n = -(-n_test // eval_batch) * eval_batch
    test_x = np.zeros((padded_n, 32, 32, 3), np.float32)
    test_x[:n_test] = normalize(cifar.test_x, cifar.mean)
    test_x = jax.device_put(test_x.reshape(-1, eval_batch, 32, 32, 3))
    test_y = jnp.asarray(cifar.test_y)

    @jax.jit
    def evaluate(trainable, non_trainable):
        def body(_, xb):
            probs = model.stateless_call(trainable, non_trainable, xb, training=False)[0]
            return None, jnp.argmax(probs, -1)

        _, pred = jax.lax.scan(body, None, test_x)
        return jnp.sum((pred.reshape(-1)[:n_test] == test_y).astype(jnp.float32)) / n_test

    return evaluate


def append_csv_row(path, values):
    with open(path, "a", newline="") as f:
        csv.writer(f).writerow(values)


class FusedAccuracyRun:
    """One accuracy run with the fused step: `k` iterations per call on device-resident, device-augmented
    data; the losses are read and the test set evaluated every `eval_every` iterations."""

    def __init__(self, model_name, args, report, cifar):
        self.model_name, self.args, self.report, self.cifar = model_name, args, report, cifar
        self.batch, self.precision = args.accuracy_batch, args.accuracy_precision
        self.num_train = len(cifar.train_y)
        self.model, self.recipe, self.stepper = build_package_model(model_name, self.batch, self.precision,
                                                                    self.num_train, args, train_steps=args.train_steps)
        self.total = self.recipe.train_steps
        self.k = divisor_at_most(self.total, args.steps_per_call)
        self.steps_per_epoch = self.num_train // self.batch
        self.eval_every = max(1, int(round(args.eval_every * self.steps_per_epoch)))
        self.target = TARGET_ACCURACY.get(model_name)
        self.csv_path = os.path.join(report.out_dir, f"accuracy_{model_name}.csv")
        self.curve, self.time_to_target, self.compile_s, self.stopped = [], None, None, False
        self.train_s, self.eval_s, self.last_train_s = 0.0, 0.0, 0.0
        self.loss_acc, self.correct_acc, self.seen = 0.0, 0.0, 0

    def describe(self):
        r = self.recipe
        print(f"== accuracy: {self.model_name}, {self.precision}, batch {self.batch}, {self.total} iterations "
              f"({self.total / self.steps_per_epoch:.1f} epochs of {self.steps_per_epoch}), lr {r.learning_rate:g} "
              f"/ 10 at {list(r.boundaries)}, warm-up {r.warmup} {r.warmup_steps}, wd {r.weight_decay:g}, "
              f"{self.k} iterations per call, test every {self.eval_every} iterations, fused step (device "
              "augmentation)", flush=True)

    def run(self):
        """Trains, evaluates, saves `accuracy_<model>.keras`, adds the row and the checks; returns the row."""
        import jax
        import keras

        self.describe()
        self.t_start = time.perf_counter()
        program = make_scan_program(self.stepper, self.batch, self.k, 4, self.cifar.mean, "fused",
                                    self.args.scan_unroll)
        images, labels = jax.device_put(self.cifar.train_x), jax.device_put(self.cifar.train_y)
        self.evaluate = test_evaluator(self.stepper.model, self.cifar)
        state = copy_state(self.stepper.state)
        stream = IndexStream(self.num_train, self.batch, self.k, self.args.seed)
        self.schedule = self.recipe.learning_rate_schedule()
        with open(self.csv_path, "w", newline="") as f:
            csv.writer(f).writerow(CURVE_FIELDS)
        it, k, pending = 0, self.k, []
        self.t_train = time.perf_counter()
        while it < self.total:
            state, ls, cs, _ = program(state, images, labels, stream.next(), np.uint32(it // k))
            pending.append((ls, cs))
            it += k
            if self.compile_s is None:
                block(ls)
                self.compile_s = time.perf_counter() - self.t_train
            if it % self.eval_every < k or it >= self.total:
                self.test_point(it, state, pending)
                pending = []
                if self.report.elapsed() > self.args.budget_s and it < self.total:
                    print(f"  STOPPED EARLY at iteration {it} of {self.total}: time budget "
                          f"{self.args.budget_s:.0f} s", flush=True)
                    self.stopped = True
                    break
        row = self.finish(it, state)
        keras.mixed_precision.set_global_policy("float32")
        return row

    def test_point(self, it, state, pending):
        """Reads the pending losses, evaluates the test set, appends one point to the curve and the CSV."""
        import keras

        sums = block(pending)
        self.loss_acc += sum(float(a) for a, _ in sums)
        self.correct_acc += sum(float(b) for _, b in sums)
        self.seen += len(sums) * self.k
        self.train_s = time.perf_counter() - self.t_train - self.eval_s
        te = time.perf_counter()
        acc = float(self.evaluate(state[0], state[1]))
        self.eval_s += time.perf_counter() - te
        wall = time.perf_counter() - self.t_start
        lr = float(keras.ops.convert_to_numpy(self.schedule(it - 1)))
        point = {"iteration": it, "epoch": round(it / self.steps_per_epoch, 2), "learning_rate": lr,
                 "train_loss": self.loss_acc / max(self.seen, 1),
                 "train_error": 1 - self.correct_acc / max(self.seen * self.batch, 1),
                 "test_accuracy": acc, "train_s": round(self.train_s, 2), "wall_s": round(wall, 2)}
        self.curve.append(point)
        append_csv_row(self.csv_path, [point[name] for name in CURVE_FIELDS])
        if self.target is not None and self.time_to_target is None and acc >= self.target:
            self.time_to_target = wall
        window_rate = self.seen * self.batch / max(self.train_s - self.last_train_s, 1e-9)
        point["window_images_per_s"] = round(window_rate, 1)
        print(f"  it {it:6d} ep {point['epoch']:6.1f} lr {lr:.4g} train loss {point['train_loss']:.4f} err "
              f"{100 * point['train_error']:5.2f}% | test acc {100 * acc:5.2f}% | train {self.train_s:6.1f} s, "
              f"{window_rate:,.0f} img/s since last test | wall {wall:6.1f} s", flush=True)
        self.loss_acc, self.correct_acc, self.seen, self.last_train_s = 0.0, 0.0, 0, self.train_s

    def finish(self, it, state):
        """Writes the state into the Keras model and saves it, adds the row and the checks; returns the row."""
        total_s = time.perf_counter() - self.t_start
        final, curve, k, batch = self.curve[-1], self.curve, self.k, self.batch
        self.stepper.state = state
        self.stepper.sync()  # the trained state into the Keras model's (and optimizer's) variables
        try:
            self.stepper.model.save(os.path.join(self.report.out_dir, f"accuracy_{self.model_name}.keras"))
        except Exception as e:  # pragma: no cover - the result matters more than the file
            self.report.error("saving the trained model", e)
        row = self.report.row(
            part="accuracy", framework="jax", model=self.model_name, setup="jax fused step", batch=batch,
            precision=self.precision, iterations=it, planned_iterations=self.total, stopped_early=self.stopped,
            test_accuracy=final["test_accuracy"], train_s=final["train_s"], total_s=total_s,
            compile_s=self.compile_s, eval_s=self.eval_s, images_per_s=it * batch / max(final["train_s"], 1e-9),
            images_per_s_after_compile=(it - k) * batch / max(final["train_s"] - self.compile_s, 1e-9),
            target=self.target, time_to_target_s=self.time_to_target, curve=curve, recipe=self.recipe.to_dict())
        if self.target is not None and not self.args.smoke and not self.stopped:
            self.report.check(f"{self.model_name} test accuracy >= {100 * self.target:.0f}% (issue 8 target)",
                              final["test_accuracy"] >= self.target, f"{100 * final['test_accuracy']:.2f}%")
        self.report.check(f"accuracy {self.model_name}: training loss decreased",
                          curve[-1]["train_loss"] < curve[0]["train_loss"] or len(curve) == 1,
                          f"{curve[0]['train_loss']:.4f} -> {curve[-1]['train_loss']:.4f}")
        print(f"  {self.model_name}: test accuracy {100 * final['test_accuracy']:.2f}% after {it} iterations; "
              f"training {final['train_s']:.0f} s ({row['images_per_s']:,.0f} img/s incl. the first call's "
              f"compilation {self.compile_s:.1f} s; {row['images_per_s_after_compile']:,.0f} img/s after it), "
              f"evaluations {self.eval_s:.1f} s, total {total_s:.0f} s -> {self.csv_path}", flush=True)
        return row


def accuracy_package(model_name, args, report, cifar):
    """`keras_resnet.training.train()` itself on the in-memory JPEG CIFAR-10 (loss read every `sync_every` steps)."""
    from keras_resnet import training

    batch = args.accuracy_batch
    steps_per_epoch = len(cifar.train_y) // batch
    model_dir = os.path.join(report.out_dir, f"train_{model_name}")
    config = training.TrainConfig(model=model_name, data="in-memory", model_dir=model_dir, batch_size=batch,
                                  train_steps=args.train_steps, steps_per_epoch=max(1, int(round(
                                      args.eval_every * steps_per_epoch))), precision=PRECISIONS[args.accuracy_precision],
                                  seed=args.seed, verbose=2, input="auto", distribution="none")
    print(f"== accuracy: {model_name} through training.train() -> {model_dir}", flush=True)
    t0 = time.perf_counter()
    summary = training.train(config, data=cifar.data)
    total_s = time.perf_counter() - t0
    with open(os.path.join(model_dir, "log.csv")) as f:
        rows = list(csv.DictReader(f))
    curve = [{"iteration": int(r["iteration"]), "test_accuracy": 1 - float(r["test_error"]),
              "train_loss": float(r["loss"]), "wall_s": float(r["wall_time_s"])} for r in rows]
    target = TARGET_ACCURACY.get(model_name)
    ttt = next((c["wall_s"] for c in curve if target is not None and c["test_accuracy"] >= target), None)
    report.row(part="accuracy", framework="jax", model=model_name, setup="jax package train()", batch=batch,
               precision=args.accuracy_precision, iterations=summary["iterations"],
               test_accuracy=summary["test_accuracy"], train_s=summary["wall_time_s"], total_s=total_s,
               images_per_s=summary["images_per_second"], target=target, time_to_target_s=ttt, curve=curve)
    report.check(f"accuracy {model_name} (train()): training loss decreased",
                 curve[-1]["train_loss"] < curve[0]["train_loss"] or len(curve) == 1,
                 f"{curve[0]['train_loss']:.4f} -> {curve[-1]['train_loss']:.4f}")
