"""Train one seed of one run with the paper's protocol (Sec. 4.1), resumably.

Training advances in segments of `model.fit` over in-memory uint8 arrays; segments end at every log, checkpoint and
pass boundary, so between them the framework's compiled step (augmentation included) runs with no Python of ours.
After a segment: the NaN/Inf guard, DVCLive logging, checkpointing. Outputs appear only once the last iteration
is done; until then the DVCLive history lives beside the checkpoint (build tools delete a failed job's outputs,
and the history must survive a resume with them).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import keras
import numpy as np
from keras import ops
from tqdm import tqdm

from ran.train import TrainingDiverged, provenance
from ran.train.checkpoint import atomic_write_json, load_state, save_state
from ran.train.data import augmentation_draws, batch_indices, mean_image, segment_ends, steps_per_pass
from ran.train.layers import PadCropFlip, PixelMeanSubtraction
from ran.train.settings import TrainingConfig

POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


class Interrupted(RuntimeError):
    """Raised by the `interrupt_after` test hook: a crash right after a segment, like a kill."""


@keras.saving.register_keras_serializable(package="ran")
class FirstNonFiniteStep(keras.metrics.Metric):
    """Index, within the current `fit` call, of the first batch whose loss is NaN or Inf (-1: none).

    A metric lives in the compiled step, so the guard names the exact iteration without a per-step host sync.
    """

    def __init__(self, name="first_nonfinite_step", **kwargs):
        super().__init__(name=name, **kwargs)
        self.first = self.add_variable(shape=(), initializer=keras.initializers.Constant(-1.0), name="first")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        loss = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        bad = ops.logical_not(ops.all(ops.isfinite(loss)))
        first, count = ops.convert_to_tensor(self.first), ops.convert_to_tensor(self.count)
        self.first.assign(ops.where(ops.logical_and(bad, first < 0), count, first))
        self.count.assign(count + 1.0)

    def result(self):
        return ops.convert_to_tensor(self.first)

    def reset_state(self):
        self.first.assign(-1.0)
        self.count.assign(0.0)


class ProgressLines:
    """One line per checkpoint segment on stdout (the console of Snakemake, whose rules send stderr to the job's
    log) and in the log: run, iteration/total, loss, training images/s since the last line, and the time left at
    the wall-clock pace since the last line, which also counts validation and checkpoints."""

    def __init__(self, name: str, iterations: int, batch: int, start: int, clock: dict):
        self.name, self.iterations, self.batch = name, iterations, batch
        self.step, self.train_s, self.total_s = start, clock["train_s"], clock["total_s"]

    def segment(self, stop: int, loss: float, clock: dict, bar) -> str:
        done = stop - self.step
        speed = done * self.batch / max(clock["train_s"] - self.train_s, 1e-9)
        left = (self.iterations - stop) * (clock["total_s"] - self.total_s) / done if done else 0.0
        line = (f"train: {self.name}: iteration {stop}/{self.iterations}, loss {loss:.4f}, {speed:.1f} images/s, "
                f"{left / 60:.0f} min left")
        self.step, self.train_s, self.total_s = stop, clock["train_s"], clock["total_s"]
        print(line, flush=True)
        if not bar.disable:
            bar.write(line, file=sys.stderr)
        return line


def resolve_precision(value: str, gpu: bool) -> str:
    """`mixed_precision` -> Keras dtype policy; `auto` is bfloat16 on a GPU, float32 on a CPU."""
    value = ("bfloat16" if gpu else "float32") if value == "auto" else value
    if value not in POLICIES:
        raise ValueError(f"mixed_precision must be auto or one of {sorted(POLICIES)}, got {value!r}")
    return POLICIES[value]


def resolve_jit(value, gpu: bool) -> bool:
    """`jit` -> bool; `auto` compiles with XLA on a GPU, and on a CPU for JAX only (docs/performance.md: XLA on CPU
    is 2.4x slower than TensorFlow's own kernels, but JAX without jit runs op by op, 2x slower than with it)."""
    if value == "auto":
        return gpu or keras.backend.backend() == "jax"
    if isinstance(value, bool):
        return value
    raise ValueError(f"jit must be auto, true or false, got {value!r}")


def use_deterministic_ops(gpu: bool) -> bool:
    """Deterministic TF kernels and one inter-op thread on CPU, so two runs with one seed, and a resumed run, give
    the same weights bit for bit.

    TensorFlow's op determinism alone is not enough on a CPU: with several inter-op threads, independent ops run in a
    varying order and the weights of two same-seed Attention-56 runs differ after a few iterations. One inter-op
    thread (intra-op parallelism, where the time goes, unchanged) makes them equal (docs/performance.md measures the
    cost). Not on GPU: some gradients (e.g. bilinear resizing) have no deterministic GPU kernel, and the rest cost
    speed; there a resumed run matches only up to reduction-order noise. JAX on CPU is deterministic already.
    """
    if gpu or keras.backend.backend() != "tensorflow":
        return keras.backend.backend() == "jax" and not gpu
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # the runtime already started (e.g. a second model in one process): keep what it has
        pass
    if inter_op_threads(tf) != 1:
        print("train: warning: TensorFlow runs several inter-op threads (it started before training could set "
              "one); same-seed runs may differ in the last bits. Set TF_NUM_INTEROP_THREADS=1 to make them equal.",
              file=sys.stderr)
        return False
    return True


def inter_op_threads(tf) -> int:
    """The inter-op thread count TensorFlow runs with: its config value, else (0 = unset) TF_NUM_INTEROP_THREADS,
    which TensorFlow reads when its config leaves the count unset; 0 when neither sets it."""
    configured = tf.config.threading.get_inter_op_parallelism_threads()
    if configured:
        return configured
    try:
        return int(os.environ.get("TF_NUM_INTEROP_THREADS", "0"))
    except ValueError:
        return 0


def build_trained_model(network: keras.Model, mean: np.ndarray, pad: int) -> tuple[keras.Model, keras.Model]:
    """(training model, inference model), sharing every layer and weight.

    Training: {images uint8, offsets, flips} -> minus the mean image -> pad/crop/flip at the given draws -> network ->
    float32 logits. Inference (what is saved): uint8 images -> minus the mean image -> network -> float32 logits.
    """
    images = keras.Input(shape=mean.shape, dtype="uint8", name="images")  # (B, 32, 32, 3)
    offsets = keras.Input(shape=(2,), dtype="int32", name="offsets")  # (B, 2): crop row, col in [0, 2 * pad]
    flips = keras.Input(shape=(), dtype="int32", name="flips")  # (B,): 1 = mirror
    subtract = PixelMeanSubtraction(name="mean_subtraction")
    # Logits leave the model in float32 whatever the mixed-precision policy, for a stable softmax.
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")
    augmented = PadCropFlip(pad=pad, name="augmentation")(subtract(images), offsets, flips)
    training = keras.Model({"images": images, "offsets": offsets, "flips": flips}, logits(network(augmented)),
                           name=f"training_{network.name}")
    inference = keras.Model(images, logits(network(subtract(images))), name=f"trained_{network.name}")
    subtract.mean.assign(mean)
    return training, inference


def training_inputs(images: np.ndarray, seed: int, start: int, stop: int, batch: int,
                    config: TrainingConfig) -> dict:
    """The training model's inputs for iterations [start, stop): images plus their augmentation draws."""
    offsets, flips = augmentation_draws(seed, start, stop, batch, config.pad, config.flip)
    return {"images": images, "offsets": offsets, "flips": flips}


@keras.saving.register_keras_serializable(package="ran")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy on logits against integer labels smoothed towards uniform: the target of the true class is
    `1 - smoothing + smoothing / K`, every other `smoothing / K` (the fast recipe; 0 is the paper's loss)."""

    def __init__(self, smoothing: float, num_classes: int, name="smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smoothing, self.num_classes = float(smoothing), int(num_classes)

    def call(self, y_true, y_pred):
        target = ops.one_hot(ops.reshape(ops.cast(y_true, "int32"), (-1,)), self.num_classes)
        return keras.losses.categorical_crossentropy(target, y_pred, from_logits=True,
                                                     label_smoothing=self.smoothing)

    def get_config(self) -> dict:
        return {**super().get_config(), "smoothing": self.smoothing, "num_classes": self.num_classes}


def compile_for_training(model: keras.Model, config: TrainingConfig, jit: bool):
    """Nesterov SGD on the profile's schedule, cross-entropy on logits (Sec. 4.1); returns the schedule.

    Weight decay lives in the network's kernel regularisers (decision 5), not in the optimizer, so the logged
    `loss` is the full objective: cross-entropy plus the decay term. The fast recipe's weight average is Keras's
    optimizer EMA (its averages are optimizer variables, so checkpoints hold them). Under `mixed_float16` Keras wraps
    the optimizer in a LossScaleOptimizer. The optimizer is built here so a checkpoint can be restored into it.
    """
    schedule = config.learning_rate()
    averaging = {"use_ema": True, "ema_momentum": config.ema} if config.ema else {}
    optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=config.momentum, nesterov=config.nesterov,
                                     **averaging)
    if config.label_smoothing:
        loss = SmoothedSparseCrossentropy(config.label_smoothing, int(model.outputs[0].shape[-1]))
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=optimizer, loss=loss,
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"), FirstNonFiniteStep()],
                  jit_compile=jit, run_eagerly=config.run_eagerly, steps_per_execution=steps_per_execution(config))
    model.optimizer.build(model.trainable_variables)
    return schedule


def segment_inputs(images: np.ndarray, labels: np.ndarray, seed: int, span: tuple[int, int],
                   config: TrainingConfig) -> tuple[dict, np.ndarray]:
    """The training model's inputs and labels for iterations [start, stop): a pure function of (seed, span), so a
    thread can prepare the next segment's while the current one trains."""
    start, stop = span
    chosen = batch_indices(seed, len(images), config.batch_size, start, stop)
    return training_inputs(images[chosen], seed, start, stop, config.batch_size, config), labels[chosen]


def steps_per_execution(config: TrainingConfig) -> int:
    """Steps TensorFlow runs in one call of its compiled loop: a segment's worth (at most the log/checkpoint period;
    a shorter segment runs its remainder), so Keras's per-call host sync of the logs (keras#20383) comes once per
    segment, not once per step. The weights are the same bit for bit (tested). JAX keeps 1: Keras loops in Python
    there, and its dispatch is asynchronous already."""
    if keras.backend.backend() != "tensorflow" or config.run_eagerly:
        return 1
    return max(1, min(config.log_every, config.checkpoint_every))


def error_pct(model: keras.Model, images: np.ndarray, labels: np.ndarray, batch: int = 500) -> float:
    """Top-1 error in % of `model` (uint8 images -> logits) on held-out images."""
    logits = model.predict(images, batch_size=batch, verbose=0)
    return 100.0 * float(np.mean(np.argmax(logits, axis=1) != labels))


def batch_norm_layers(model: keras.Model) -> list:
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.BatchNormalization)]


def recalibrate_batch_norm(model: keras.Model, inputs: list[dict]) -> int:
    """Recompute every BatchNorm layer's moving mean and variance as the plain average over `inputs` (training
    batches) of the batch statistics under the current weights: after weight averaging, the running statistics
    collected along the way belong to no single set of weights. Returns the number of layers recalibrated."""
    layers = batch_norm_layers(model)
    momenta = [layer.momentum for layer in layers]
    try:
        for count, batch in enumerate(inputs, start=1):
            for layer in layers:  # moving = moving * m + batch * (1 - m), with m = 1 - 1/k: a running mean
                layer.momentum = 1.0 - 1.0 / count
            model(batch, training=True)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    return len(layers)


def truncate_history(live_dir: Path, step: int) -> None:
    """Drop DVCLive rows logged after `step` (after the checkpoint a resume starts from), including a row cut short
    by a kill, and the summary (rewritten at the next log)."""
    for table in Path(live_dir).glob("plots/metrics/**/*.tsv"):
        with open(table, newline="") as file:
            rows = list(csv.reader(file, delimiter="\t"))
        if not rows:
            continue
        column = rows[0].index("step")
        kept = [rows[0]] + [row for row in rows[1:] if len(row) == len(rows[0]) and int(row[column]) <= step]
        with open(table, "w", newline="") as file:
            csv.writer(file, delimiter="\t", lineterminator=os.linesep).writerows(kept)
    (Path(live_dir) / "metrics.json").unlink(missing_ok=True)


def open_history(live_dir: Path, start: int, params: dict):
    """A DVCLive logger that continues the history of a resumed run, or starts a fresh one."""
    from dvclive import Live
    from scmrepo.exceptions import SCMError  # a dependency of dvc

    if start == 0:
        shutil.rmtree(live_dir, ignore_errors=True)
    else:
        truncate_history(live_dir, start)
    try:
        live = Live(str(live_dir), resume=start > 0, report=None, dvcyaml=False, save_dvc_exp=False)
    except SCMError as error:  # DVCLive asks git for HEAD before checking that there is one
        raise RuntimeError("DVCLive cannot log inside a git repository without commits (it reads HEAD even with "
                           "save_dvc_exp=False): make a first commit (`git add -A && git commit -m init`) or run "
                           "outside that repository, then rerun") from error
    if start == 0:
        live.log_params(params)
    return live


def _save_model(inference: keras.Model, path: Path) -> None:
    """The inference model (no optimizer, no compile state, no augmentation), written atomically."""
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=".staging-"))
    try:
        inference.save(staging / path.name)
        os.replace(staging / path.name, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish_directory(source: Path, target: Path) -> None:
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)


class SeedState:
    """What a seed's training carries from segment to segment and across a resume: the iteration reached, the wall
    clock, and the loss/accuracy window of the current log interval."""

    def __init__(self, meta: dict | None):
        self.step = meta["step"] if meta else 0
        self.clock = meta["clock"] if meta else {"train_s": 0.0, "total_s": 0.0, "resumes": 0, "steady_s": 0.0,
                                                 "steady_steps": 0}
        self.clock["resumes"] += meta is not None
        self.window = {"loss": 0.0, "accuracy": 0.0, "steps": 0}
        self.last: dict = {}
        self.began = time.perf_counter()
        self.compiling = True  # the first segment of a process also traces and compiles the step

    def add_segment(self, stop: int, seconds: float, loss: float, accuracy: float) -> None:
        self.clock["train_s"] += seconds
        if not self.compiling:
            self.clock["steady_s"] += seconds
            self.clock["steady_steps"] += stop - self.step
        self.compiling = False
        for name, value in (("loss", loss), ("accuracy", accuracy)):
            self.window[name] += value * (stop - self.step)
        self.window["steps"] += stop - self.step

    def close_window(self) -> dict:
        self.last = {name: self.window[name] / self.window["steps"] for name in ("loss", "accuracy")}
        self.window = {"loss": 0.0, "accuracy": 0.0, "steps": 0}
        return self.last

    def elapsed(self) -> dict:
        return {**self.clock, "total_s": self.clock["total_s"] + time.perf_counter() - self.began}


def check_finite(logs: dict, start: int, schedule, seed: int, out_dir: Path, checkpoint_dir: Path) -> None:
    """The NaN/Inf guard: the exact iteration, from the in-step metric, without a per-step host sync."""
    first_bad = int(logs["first_nonfinite_step"][-1])
    if first_bad >= 0 or not math.isfinite(logs["loss"][-1]):
        step = start + max(first_bad, 0)
        raise TrainingDiverged(
            f"training loss became NaN or Inf at iteration {step} (0-based; learning rate "
            f"{schedule.value_at(step):g}, seed {seed}); nothing was written to {out_dir}. Lower the "
            f"learning rate or check the inputs; the last checkpoint (if any) is in {checkpoint_dir}")


def resume_or_start(checkpoint_dir: Path, model: keras.Model, identity: dict) -> dict | None:
    """The checkpoint's meta after restoring it into `model` (None: a fresh start); refuses another config's.

    The logging and checkpoint cadence may change between a kill and a resume: they change no weight.
    """
    from ran.train.checkpoint import identity_changes, resumable_identity

    def same_configuration(meta: dict) -> None:
        changes = identity_changes(resumable_identity(meta.get("identity") or {}), resumable_identity(identity))
        if not changes:
            return
        shown = "; ".join(changes[:6]) + (f"; {len(changes) - 6} more" if len(changes) > 6 else "")
        values = "that value" if len(changes) == 1 else "those values"
        raise ValueError(f"the checkpoint in {checkpoint_dir} was written by another configuration ({shown}): "
                         f"restore {values} to resume, or delete {checkpoint_dir} to start this seed afresh, "
                         f"losing its {meta['step']} iterations")

    meta = load_state(checkpoint_dir, model, model.optimizer, check=same_configuration)
    counted = int(ops.convert_to_numpy(model.optimizer.iterations))
    if meta is not None and counted != meta["step"]:
        raise ValueError(f"checkpoint in {checkpoint_dir} says iteration {meta['step']} but its optimizer counted "
                         f"{counted}; delete it and rerun")
    return meta


def training_batches(images: np.ndarray, seed: int, config: TrainingConfig, start: int, count: int) -> list[dict]:
    """The augmented training batches of iterations [start, start + count), as the training model takes them."""
    batch = config.batch_size
    return [training_inputs(images[batch_indices(seed, len(images), batch, step, step + 1)], seed, step, step + 1,
                            batch, config) for step in range(start, start + count)]


def average_weights(model: keras.Model, config: TrainingConfig, images: np.ndarray, seed: int) -> dict:
    """The fast recipe's end of training: the EMA weights copied into the model, then BatchNorm statistics
    recomputed on `ema_bn_batches` augmented training batches (drawn as iterations past the run's end, so no
    training batch's draws repeat). Returns what train.json says of it; {} without EMA."""
    if not config.ema:
        return {}
    model.optimizer.finalize_variable_values(model.trainable_variables)
    layers = recalibrate_batch_norm(model, training_batches(images, seed, config, config.iterations,
                                                            config.ema_bn_batches))
    return {"ema_momentum": config.ema, "bn_recalibrated_layers": layers,
            "bn_recalibration_images": config.ema_bn_batches * config.batch_size}


VALIDATION_BN_BATCHES = 20


def validation_error(model: keras.Model, inference: keras.Model, validation: tuple, batches: list[dict]) -> float:
    """Validation error of the current weights with BatchNorm statistics recomputed on `batches`, the running
    statistics restored afterwards, so training is untouched. Mid-run the running statistics lag the weights (at
    lr 0.13, Attention-56 scored 81% error with them and 50% recomputed on 20 batches), so they would say little."""
    layers = batch_norm_layers(model)
    running = [(ops.convert_to_numpy(layer.moving_mean), ops.convert_to_numpy(layer.moving_variance))
               for layer in layers]
    try:
        recalibrate_batch_norm(model, batches)
        return error_pct(inference, *validation)
    finally:
        for layer, (mean, variance) in zip(layers, running, strict=True):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(variance)


def train_seed(
    network_fn: Callable[[], keras.Model],
    images: np.ndarray,
    labels: np.ndarray,
    training: dict,
    seed: int,
    out_dir: Path,
    checkpoint_dir: Path,
    record: dict | None = None,
    describe: Callable[[keras.Model], dict] | None = None,
    progress: bool = True,
    interrupt_after: int | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Train `network_fn()` for `training['iterations']` iterations; write `out_dir/{model.keras,train.json,live}`.

    `record` (run config, noise) is copied into train.json and the checkpoint identity; `describe(network)` adds
    e.g. params and depth; `validation` (images, labels), held out of `images`, is scored at every log step and
    once more on the saved model. Returns the train.json content.
    """
    out_dir, checkpoint_dir = Path(out_dir), Path(checkpoint_dir)
    record = dict(record or {})
    config = TrainingConfig.from_dict(training)
    iterations, batch = config.iterations, config.batch_size
    origin = provenance.snapshot()  # before any work: provenance must never cost a finished run
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    gpu = bool(provenance.accelerators())
    policy, jit = resolve_precision(config.mixed_precision, gpu), resolve_jit(config.jit, gpu)
    keras.utils.set_random_seed(seed)
    deterministic = use_deterministic_ops(gpu)

    previous_policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        network = network_fn()
        model, inference = build_trained_model(network, mean_image(images), config.pad)
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)
    schedule = compile_for_training(model, config, jit)

    identity = json.loads(json.dumps({"record": record, "training": training, "seed": seed,
                                      "num_images": len(images)}))
    state = SeedState(resume_or_start(checkpoint_dir, model, identity))
    live = open_history(checkpoint_dir / "live", state.step, {**record, **training, "seed": seed})
    per_pass = steps_per_pass(len(images), batch)
    bar = tqdm(total=iterations, initial=state.step, disable=not progress, desc=f"seed {seed}", unit="it",
               dynamic_ncols=True)
    report = ProgressLines(f"{record.get('run', 'run')} seed {seed}", iterations, batch, state.step, state.elapsed())
    print(f"train: {report.name}: {'resuming at' if state.step else 'starting at'} iteration {state.step}/"
          f"{iterations}, checkpoint every {config.checkpoint_every} iterations in {checkpoint_dir}", flush=True)
    val_error = None
    ends = segment_ends(state.step, iterations, config.log_every, config.checkpoint_every, per_pass)
    spans = list(zip([state.step, *ends[:-1]], ends, strict=True))
    prefetch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="next-segment")
    upcoming = prefetch.submit(segment_inputs, images, labels, seed, spans[0], config) if spans else None
    try:
        for index, (start, stop) in enumerate(spans):
            tick = time.perf_counter()
            inputs, targets = upcoming.result()
            if index + 1 < len(spans):  # gathered and drawn on the host while the device runs this segment
                upcoming = prefetch.submit(segment_inputs, images, labels, seed, spans[index + 1], config)
            logs = model.fit(inputs, targets, batch_size=batch, epochs=1, shuffle=False, verbose=0).history
            check_finite(logs, start, schedule, seed, out_dir, checkpoint_dir)
            state.add_segment(stop, time.perf_counter() - tick, logs["loss"][-1], logs["accuracy"][-1])
            state.step = stop
            if stop % config.log_every == 0 or stop == iterations:
                last = state.close_window()
                live.step = stop
                live.log_metric("train/loss", last["loss"])
                live.log_metric("train/accuracy", last["accuracy"])
                live.log_metric("train/lr", schedule.value_at(stop - 1))
                if validation is not None:
                    val_error = validation_error(model, inference, validation, training_batches(
                        images, seed, config, stop, VALIDATION_BN_BATCHES))
                    live.log_metric("val/error", val_error)
                live.make_summary()
            if stop % config.checkpoint_every == 0 and stop < iterations:
                save_state(checkpoint_dir, model, model.optimizer, {"step": stop, "identity": identity,
                                                                    "clock": state.elapsed()})
            bar.update(stop - start)
            bar.set_postfix(loss=f"{logs['loss'][-1]:.3f}", lr=f"{schedule.value_at(stop - 1):g}")
            if stop % config.checkpoint_every == 0 or stop == iterations:
                report.segment(stop, logs["loss"][-1], state.elapsed(), bar)
            if interrupt_after is not None and stop >= interrupt_after:
                raise Interrupted(f"interrupted after iteration {stop} (test hook)")
    finally:
        prefetch.shutdown(wait=True, cancel_futures=True)
        bar.close()
    averaging = average_weights(model, config, images, seed)
    live.end()
    clock = state.elapsed()
    held_out = {}
    if validation is not None:
        held_out = {"validation": {"images": len(validation[1]), "error_pct": error_pct(inference, *validation),
                                   "error_pct_before_averaging": val_error if averaging else None}}

    result = {
        **record,
        "training": training,
        "seed": seed,
        **origin,
        "dtype_policy": policy,
        "jit": bool(model.jit_compile),  # effective: Keras turns XLA off under TF op determinism (CPU)
        "deterministic_ops": deterministic,
        "iterations": iterations,
        "train_images": len(images),
        "train_wall_s": clock["train_s"],
        "total_wall_s": clock["total_s"],
        "images_per_s": iterations * batch / clock["train_s"] if clock["train_s"] else None,
        "images_per_s_steady": clock["steady_steps"] * batch / clock["steady_s"] if clock["steady_s"] else None,
        "resumes": clock["resumes"],
        "final_train_loss": state.last.get("loss"),
        "final_train_accuracy": state.last.get("accuracy"),
        "weights": {"averaged": True, **averaging} if averaging else {"averaged": False},
        **held_out,
        "started_at": started_at,  # of the process that finished the run (a resumed run started earlier)
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **(describe(network) if describe else {}),
    }
    publish(out_dir, checkpoint_dir, inference, result)
    return result


def publish(out_dir: Path, checkpoint_dir: Path, inference: keras.Model, result: dict) -> None:
    """A finished seed's outputs: the saved model, its history and, last (its presence marks the seed finished),
    train.json; then the checkpoint folder goes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _save_model(inference, out_dir / "model.keras")
    _publish_directory(checkpoint_dir / "live", out_dir / "live")
    atomic_write_json(out_dir / "train.json", result)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
