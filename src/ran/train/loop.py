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
from ran.train.schedule import StepDecay, decay_boundaries

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
    log) and in the log: run, iteration/total, loss, images/s since the last line, time left at that speed."""

    def __init__(self, name: str, iterations: int, batch: int, start: int, train_s: float):
        self.name, self.iterations, self.batch = name, iterations, batch
        self.step, self.train_s = start, train_s

    def segment(self, stop: int, loss: float, train_s: float, bar) -> str:
        seconds = max(train_s - self.train_s, 1e-9)
        speed = (stop - self.step) * self.batch / seconds
        left = (self.iterations - stop) * self.batch / speed if speed else 0.0
        line = (f"train: {self.name}: iteration {stop}/{self.iterations}, loss {loss:.4f}, {speed:.1f} images/s, "
                f"{left / 60:.0f} min left")
        self.step, self.train_s = stop, train_s
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


def training_inputs(images: np.ndarray, seed: int, start: int, stop: int, batch: int, training: dict) -> dict:
    """The training model's inputs for iterations [start, stop): images plus their augmentation draws."""
    offsets, flips = augmentation_draws(seed, start, stop, batch, int(training["pad"]), bool(training["flip"]))
    return {"images": images, "offsets": offsets, "flips": flips}


def compile_for_training(model: keras.Model, training: dict, jit: bool) -> StepDecay:
    """Nesterov SGD on the step schedule, cross-entropy on logits (Sec. 4.1); returns the schedule.

    Weight decay lives in the network's kernel regularisers (decision 5), not in the optimizer, so the logged
    `loss` is the full objective: cross-entropy plus the decay term. Under `mixed_float16` Keras wraps the optimizer
    in a LossScaleOptimizer. The optimizer is built here so a checkpoint can be restored into its variables.
    """
    schedule = StepDecay(training["base_lr"], decay_boundaries(int(training["iterations"]), training["lr_decay_at"]),
                         training["lr_decay_factor"])
    optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=training["momentum"],
                                     nesterov=training["nesterov"])
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"), FirstNonFiniteStep()],
                  jit_compile=jit, run_eagerly=bool(training.get("run_eagerly", False)))
    model.optimizer.build(model.trainable_variables)
    return schedule


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
) -> dict:
    """Train `network_fn()` for `training['iterations']` iterations; write `out_dir/{model.keras,train.json,live}`.

    `record` (run config, noise) is copied into train.json and the checkpoint identity; `describe(network)` adds
    e.g. params and depth. Returns the train.json content.
    """
    out_dir, checkpoint_dir = Path(out_dir), Path(checkpoint_dir)
    record = dict(record or {})
    iterations, batch = int(training["iterations"]), int(training["batch_size"])
    origin = provenance.snapshot()  # before any work: provenance must never cost a finished run
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    gpu = bool(provenance.accelerators())
    policy, jit = resolve_precision(training["mixed_precision"], gpu), resolve_jit(training["jit"], gpu)
    keras.utils.set_random_seed(seed)
    deterministic = use_deterministic_ops(gpu)

    previous_policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        network = network_fn()
        model, inference = build_trained_model(network, mean_image(images), training["pad"])
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)
    schedule = compile_for_training(model, training, jit)

    identity = json.loads(json.dumps({"record": record, "training": training, "seed": seed,
                                      "num_images": len(images)}))
    meta = load_state(checkpoint_dir, model, model.optimizer)
    if meta is not None and meta["identity"] != identity:
        raise ValueError(f"the checkpoint in {checkpoint_dir} was written by another configuration "
                         f"({meta['identity']}); delete that folder to start this run afresh")
    start = meta["step"] if meta else 0
    clock = meta["clock"] if meta else {"train_s": 0.0, "total_s": 0.0, "resumes": 0, "steady_s": 0.0,
                                        "steady_steps": 0}
    clock["resumes"] += meta is not None
    if int(ops.convert_to_numpy(model.optimizer.iterations)) != start:
        raise ValueError(f"checkpoint in {checkpoint_dir} says iteration {start} but its optimizer counted "
                         f"{int(ops.convert_to_numpy(model.optimizer.iterations))}; delete it and rerun")

    live = open_history(checkpoint_dir / "live", start, {**record, **training, "seed": seed})
    log_every, checkpoint_every = int(training["log_every"]), int(training["checkpoint_every"])
    per_pass = steps_per_pass(len(images), batch)
    window = {"loss": 0.0, "accuracy": 0.0, "steps": 0}
    last = {}
    began = time.perf_counter()
    compiling = True  # the first segment of a process also traces and compiles the step: not steady state
    bar = tqdm(total=iterations, initial=start, disable=not progress, desc=f"seed {seed}", unit="it",
               dynamic_ncols=True)
    report = ProgressLines(f"{record.get('run', 'run')} seed {seed}", iterations, batch, start, clock["train_s"])
    try:
        for stop in segment_ends(start, iterations, log_every, checkpoint_every, per_pass):
            chosen = batch_indices(seed, len(images), batch, start, stop)
            tick = time.perf_counter()
            inputs = training_inputs(images[chosen], seed, start, stop, batch, training)
            logs = model.fit(inputs, labels[chosen], batch_size=batch, epochs=1, shuffle=False, verbose=0).history
            clock["train_s"] += time.perf_counter() - tick
            if not compiling:
                clock["steady_s"] += time.perf_counter() - tick
                clock["steady_steps"] += stop - start
            compiling = False
            loss, accuracy = logs["loss"][-1], logs["accuracy"][-1]
            first_bad = int(logs["first_nonfinite_step"][-1])
            if first_bad >= 0 or not math.isfinite(loss):
                step = start + max(first_bad, 0)
                raise TrainingDiverged(
                    f"training loss became NaN or Inf at iteration {step} (0-based; learning rate "
                    f"{schedule.value_at(step):g}, seed {seed}); nothing was written to {out_dir}. Lower the "
                    f"learning rate or check the inputs; the last checkpoint (if any) is in {checkpoint_dir}")
            window["loss"] += loss * (stop - start)
            window["accuracy"] += accuracy * (stop - start)
            window["steps"] += stop - start
            if stop % log_every == 0 or stop == iterations:
                last = {name: window[name] / window["steps"] for name in ("loss", "accuracy")}
                live.step = stop
                live.log_metric("train/loss", last["loss"])
                live.log_metric("train/accuracy", last["accuracy"])
                live.log_metric("train/lr", schedule.value_at(stop - 1))
                live.make_summary()
                window = {"loss": 0.0, "accuracy": 0.0, "steps": 0}
            if stop % checkpoint_every == 0 and stop < iterations:
                elapsed = {**clock, "total_s": clock["total_s"] + time.perf_counter() - began}
                save_state(checkpoint_dir, model, model.optimizer, {"step": stop, "identity": identity,
                                                                    "clock": elapsed})
            bar.update(stop - start)
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{schedule.value_at(stop - 1):g}")
            if stop % checkpoint_every == 0 or stop == iterations:
                report.segment(stop, loss, clock["train_s"], bar)
            start = stop
            if interrupt_after is not None and stop >= interrupt_after:
                raise Interrupted(f"interrupted after iteration {stop} (test hook)")
    finally:
        bar.close()
    live.end()
    clock["total_s"] += time.perf_counter() - began

    result = {
        **record,
        "training": training,
        "seed": seed,
        **origin,
        "dtype_policy": policy,
        "jit": bool(model.jit_compile),  # effective: Keras turns XLA off under TF op determinism (CPU)
        "deterministic_ops": deterministic,
        "iterations": iterations,
        "train_wall_s": clock["train_s"],
        "total_wall_s": clock["total_s"],
        "images_per_s": iterations * batch / clock["train_s"] if clock["train_s"] else None,
        "images_per_s_steady": clock["steady_steps"] * batch / clock["steady_s"] if clock["steady_s"] else None,
        "resumes": clock["resumes"],
        "final_train_loss": last.get("loss"),
        "final_train_accuracy": last.get("accuracy"),
        "started_at": started_at,  # of the process that finished the run (a resumed run started earlier)
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **(describe(network) if describe else {}),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    _save_model(inference, out_dir / "model.keras")
    _publish_directory(checkpoint_dir / "live", out_dir / "live")
    atomic_write_json(out_dir / "train.json", result)  # written last: its presence marks a finished seed
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return result
