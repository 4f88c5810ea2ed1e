"""`ran plan`: what a profile will cost before it runs: images per run and in all, and the time it takes here.

    ran plan --profile paper          # every `snakemake` call prints a short form of this before any job

Speeds come from the recorded runs (workflow/resources/records) on the same kind of device (GPU or CPU); a network
without a record there is estimated from the recorded network closest in forward MACs (images/s scaled by the MACs
ratio; the row says so), and a record's seconds outside its training loop (total minus training wall time) are
counted too. Beside training, the estimate counts what every job of the DAG costs: each train and evaluate job is a
process that imports TensorFlow, builds (or loads) each seed's model, in time that grows with the network's layers,
and evaluates the test set in two views (single and flipped) at a fixed multiple of the training speed; the data
jobs, the jobs of runs a profile leaves out, and the tables, figures and report jobs add a few fixed seconds
(constants below, each with where its value comes from). `--probe` measures each network here instead (a build, a
warm-up step that compiles, then timed steps until a few seconds have passed; the median step gives the speed),
saying so before each, and keeps each probe per machine in ~/.cache/ran (`--fresh` measures again). A profile that
would take more than a day on a machine without a GPU is announced with a warning, and the workflow stops before its
first job unless `--config allow_long=true` (Snakefile, `guard`).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ran.atomic import write_text_atomic
from ran.config import ConfigError, load_params, resolve_profile, run_config, selected_runs
from ran.data import NUM_CLASSES
from ran.runtime import has_gpu

DAY_S = 86_400.0
FULL_TABLE_RUNS = 8  # a longer plan prints one line per network in the workflow; `ran plan` always lists every run

# Forward multiply-accumulates per 32x32 image (10 classes; attention networks with mixed attention and
# encoder-decoder masks, as most runs of the matrix), measured once on 2026-12-02 with
# `ran.models.forward_macs(ran.models.build_network(name, 10))`, the count `ran bench` reports: convolutions and the
# classifier. A table, not a build: building a network imports Keras, which every `snakemake` call must not pay for.
# tests/test_front_door.py rebuilds Attention-56 and checks its entry.
FORWARD_MACS = {
    "attention56": 136_333_824,
    "attention92": 238_930_432,
    "attention128": 341_527_040,
    "attention164": 444_123_648,
    "attention236": 649_316_864,
    "attention452": 1_244_252_672,
    "resnet164": 247_646_720,
}

# Keras layers of each network (nested ones included; the default attention, learning and mask), counted on
# 2026-12-02 with `len(list(build_network(name, 10)._flatten_layers(include_self=False)))`. What a job spends on a
# model besides its training steps (building it, saving and loading it, tracing its functions) grows with its layers,
# not with its MACs: ResNet-164 has more MACs than Attention-92 and fewer layers, and its smoke jobs were shorter.
KERAS_LAYERS = {
    "attention56": 261,
    "attention92": 471,
    "attention128": 681,
    "attention164": 891,
    "attention236": 1311,
    "attention452": 2655,
    "resnet164": 387,
}

# What the jobs around training cost, measured on 2026-12-02 on this project's 2-core Intel Xeon VM while a training
# job used both cores (load 2-4; every command under `nice -n 10`), so on the slow side for an idle machine:
# - JOB_START_S: a train or evaluate job is a process that imports TensorFlow: `python -c "import tensorflow"` took
#   4.9 s (twice); `import keras` 4.8 s.
# - BUILD_S_PER_LAYER: per seed and Keras layer, what the model costs its train and evaluate jobs beyond their
#   start-up: build, the smoke profile's two eager steps, checkpoints and the saved model, then loading it and
#   tracing the predict function. Smoke train + evaluate jobs (`ran train` then `ran evaluate`, 40 test images) took
#   15.8 + 8.7 s (Attention-56), 13.8 + 10.0 s (ResNet-164), 14.7 + 11.7 s (Attention-92) and 82.2 + 48.5 s
#   (Attention-452); less 2 x JOB_START_S that is 165 s for 3,774 layers, 0.044 s a layer (0.035-0.056 s for each
#   of the four). The records hold no build time: their total minus training wall time starts after the build
#   (ran.train.loop.SeedState) and is counted apart, as the seconds outside the training loop.
# - FORWARD_SPEEDUP: a test image costs a fraction of a training image: `ran bench` (README, Performance) measured
#   inference at 5.1x (Attention-56), 6.7x (Attention-92) and 6.3x (ResNet-164) the training images/s; 5 is the
#   low end. (Training is forward + backward, about 3x a forward pass by FLOPs; the rest is the update, the
#   augmentation and BatchNorm's batch statistics.) Each seed is evaluated on the test set twice: the single view
#   and the flipped one of flip test-time augmentation (EVAL_VIEWS).
# - LIGHT_JOB_S: a job that does not import TensorFlow (download, prepare and noise of synthetic data, and the train
#   and evaluate jobs of runs the profile leaves out): the 59 such jobs of a one-run smoke DAG took 14 s in all.
#   The download of the official archives is not counted (it depends on the network).
# - REPORT_S: tables, figures and report (papermill + nbconvert) of the same DAG: 1 + 8 + 3 s, rounded up to 15 s
#   for a matrix whose every run has results.
JOB_START_S = 5.0
BUILD_S_PER_LAYER = 0.044
FORWARD_SPEEDUP = 5.0
EVAL_VIEWS = 2
LIGHT_JOB_S = 0.25
REPORT_S = 15.0
OFFICIAL_TEST_IMAGES = 10_000  # the test set of CIFAR-10 and of CIFAR-100

# `--probe`: a warm-up step (it traces and compiles; timed apart, never in the speed), then steps until
# PROBE_MIN_WALL_S of them have passed and at least PROBE_MIN_STEPS, at most PROBE_MAX_STEPS (a GPU's short steps);
# the median step gives the speed, so one step slowed by other work on the machine does not move it.
# PROBE_VERSION marks the cache entries of this probe: an entry without it (the earlier probe: 3 steps, their mean)
# is measured again.
PROBE_MIN_WALL_S = 3.0
PROBE_MIN_STEPS = 5
PROBE_MAX_STEPS = 100
PROBE_VERSION = 2


def _on_gpu(record: dict) -> bool:
    return "CPU," not in record["device"]


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def recorded_speeds(records: list[dict], gpu: bool) -> dict[str, float]:
    """Median training images/s per network over the records made on this kind of device."""
    found: dict[str, list[float]] = {}
    for record in records:
        speed = record["summary"].get("images_per_s")
        if speed and _on_gpu(record) == gpu:
            found.setdefault(record["config"]["network"], []).append(float(speed))
    return {network: _median(values) for network, values in found.items()}


def recorded_overheads(records: list[dict], gpu: bool) -> dict[str, float]:
    """Median seconds per seed outside the training loop (model build, data loading) per network, where recorded.

    Records of runs with a validation split are left out: their validation passes (one per log step) fall outside
    the training loop too and grow with the iterations, so they say nothing of a job's fixed cost (a 2,100-iteration
    cpu_fast record spent 1,124 s there, against 2 s for the cpu records)."""
    found: dict[str, list[float]] = {}
    for record in records:
        total, train = record["summary"].get("total_wall_s"), record["summary"].get("train_wall_s")
        validated = int((record.get("training") or {}).get("validation") or 0) > 0
        if total is not None and train is not None and total >= train and _on_gpu(record) == gpu and not validated:
            found.setdefault(record["config"]["network"], []).append(float(total) - float(train))
    return {network: _median(values) for network, values in found.items()}


def nearest_by_macs(network: str, known) -> str | None:
    """The network of `known` closest to `network` in forward MACs (by ratio), None if none can be compared."""
    known = [name for name in known if name in FORWARD_MACS]
    if network not in FORWARD_MACS or not known:
        return None
    return min(known, key=lambda name: (abs(math.log(FORWARD_MACS[name] / FORWARD_MACS[network])), name))


def network_cost(network: str, speeds: dict[str, float], overheads: dict[str, float]):
    """(images/s, seconds per seed outside training, the network it was estimated from or None) for `network`.

    A network without a speed of its own takes the speed of the nearest measured one scaled by their MACs ratio,
    and its overhead likewise (build time grows with the network); (None, 0, None) when nothing can be compared.
    """
    if network in speeds:
        return speeds[network], overheads.get(network, 0.0), None
    base = nearest_by_macs(network, speeds)
    if base is None:
        return None, 0.0, None
    ratio = FORWARD_MACS[base] / FORWARD_MACS[network]
    return speeds[base] * ratio, overheads.get(base, 0.0) / ratio, base


def duration(seconds: float) -> str:
    if seconds >= 2 * DAY_S:
        return f"{seconds / DAY_S:.1f} days"
    if round(seconds / 60) >= 60:
        return f"{seconds / 3600:.1f} h"
    if round(seconds) < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def images_in_test_set(params: dict, training: dict, dataset: str) -> int:
    """Images of `dataset`'s test set under the profile: the official 10,000, or the synthetic archive's."""
    if training.get("data") == "synthetic":
        return int(params["synthetic"]["test_per_class"]) * NUM_CLASSES[dataset]
    return OFFICIAL_TEST_IMAGES


def job_seconds(network: str, seeds: int) -> float:
    """A run's train and evaluate jobs beside their training steps and test images: two start-ups (TensorFlow) and,
    per seed, what the model costs them (build, save, load), by its Keras layers (the deepest table entry for a
    network the table lacks)."""
    layers = KERAS_LAYERS.get(network, max(KERAS_LAYERS.values()))
    return 2 * JOB_START_S + seeds * layers * BUILD_S_PER_LAYER


def fixed_seconds(params: dict, planned_runs: int) -> float:
    """The jobs that are no run's training: download and prepare per dataset, the label noise, the train and
    evaluate jobs of the runs not planned (they only write a note), then tables, figures and report."""
    light = 2 * len(params["datasets"]) + 1 + 2 * (len(params["runs"]) - planned_runs)
    return light * LIGHT_JOB_S + REPORT_S


def build_plan(params: dict, profile: str | None, speeds: dict[str, float], overheads: dict[str, float] | None = None,
               runs=None) -> dict:
    """Per selected run (only those of `runs` if given): images to process and the estimated seconds.

    A row's `seconds` is its training (steps and the recorded seconds outside them), None for a run whose network
    can be neither measured nor estimated; `jobs_s` the start-up and model builds of its two jobs, `eval_s` its
    evaluation (None without a speed); `total_s` all three. `estimated_from` names the network whose speed was
    scaled by MACs, None for a measured one. The plan's `known_seconds` adds up every run's total and the fixed jobs.
    """
    overheads = overheads or {}
    training = resolve_profile(params, profile)
    seeds = len(params["seeds"])
    rows = []
    for run_id in selected_runs(params, training["name"]):
        if runs is not None and run_id not in runs:
            continue
        run = run_config(params, run_id)
        images = int(training["iterations"]) * int(training["batch_size"]) * seeds
        speed, overhead, base = network_cost(run["network"], speeds, overheads)
        eval_images = seeds * EVAL_VIEWS * images_in_test_set(params, training, run["dataset"])
        jobs = job_seconds(run["network"], seeds)
        seconds = images / speed + seeds * overhead if speed else None
        evaluation = eval_images / (speed * FORWARD_SPEEDUP) if speed else None
        rows.append({"run": run_id, "network": run["network"], "images": images, "images_per_s": speed,
                     "estimated_from": base, "overhead_s": seeds * overhead, "seconds": seconds,
                     "jobs_s": jobs, "eval_images": eval_images, "eval_s": evaluation,
                     "total_s": seconds + jobs + evaluation if speed else None})
    total = sum(row["images"] for row in rows)
    known = [row for row in rows if row["total_s"] is not None]
    fixed = fixed_seconds(params, len(rows))
    fastest = max(speeds.values()) if speeds else None
    jobs = sum(row["jobs_s"] for row in rows)
    lower = (total / fastest + jobs + sum(row["eval_images"] for row in rows) / (fastest * FORWARD_SPEEDUP) + fixed
             if fastest else None)
    return {"profile": training["name"], "iterations": training["iterations"], "batch_size": training["batch_size"],
            "seeds": seeds, "rows": rows, "images": total,
            "training_seconds": sum(row["seconds"] for row in known), "jobs_seconds": jobs,
            "eval_seconds": sum(row["eval_s"] for row in known), "eval_images": sum(r["eval_images"] for r in rows),
            "fixed_seconds": fixed, "known_seconds": sum(row["total_s"] for row in known) + fixed,
            "complete": len(known) == len(rows), "estimated": sum(1 for row in rows if row["estimated_from"]),
            "lower_bound_seconds": lower}


def worst_seconds(plan: dict) -> float | None:
    """The plan's time: the sum when every run has one, else the lower bound (None without any speed)."""
    return plan["known_seconds"] if plan["complete"] else plan["lower_bound_seconds"]


def too_long(plan: dict, gpu: bool) -> bool:
    """More than a day of work on a machine without a GPU."""
    worst = worst_seconds(plan)
    return not gpu and worst is not None and worst > DAY_S


def _when(row: dict, each: str = "") -> str:
    if row["seconds"] is None:
        return "no speed known for this network here"
    estimated = f" (estimated from {row['estimated_from']} by MACs)" if row["estimated_from"] else ""
    return f"{row['images_per_s']:.0f} images/s -> {duration(row['total_s'])}{each}{estimated}"


def _network_lines(plan: dict) -> list[str]:
    """One line per network, the slowest first: the rows of one network differ only by their id."""
    groups: dict[str, list[dict]] = {}
    for row in plan["rows"]:
        groups.setdefault(row["network"], []).append(row)
    order = sorted(groups, key=lambda network: -(groups[network][0]["total_s"] or 0.0))
    lines = [f"plan:   {network:<12} {len(groups[network]):>2} run(s) x {groups[network][0]['images']:,} images  "
             f"{_when(groups[network][0], ' each')}" for network in order]
    return lines + [f"plan:   (`ran plan --profile {plan['profile']}` lists every run)"]


def plan_text(plan: dict, gpu: bool, source: str, full: bool = True) -> str:
    """The plan; `full=False` prints one line per network instead of per run when there are many runs."""
    device = "a GPU" if gpu else "no GPU"
    lines = [f"plan: profile {plan['profile']}: {len(plan['rows'])} run(s) x {plan['seeds']} seed(s) x "
             f"{plan['iterations']} iterations x batch {plan['batch_size']} = {plan['images']:,} training images "
             f"(this machine: {device}; speeds: {source})"]
    if full or len(plan["rows"]) <= FULL_TABLE_RUNS:
        lines += [f"plan:   {row['run']:<28} {row['network']:<12} {row['images']:>13,} images  {_when(row)}"
                  for row in plan["rows"]]
    else:
        lines += _network_lines(plan)
    if plan["complete"] and plan["rows"]:
        estimated = (f"; {plan['estimated']} of {len(plan['rows'])} run(s) estimated by MACs from measured networks"
                     if plan["estimated"] else "")
        lines.append(f"plan: estimated time {duration(plan['known_seconds'])} incl. start-up, builds and evaluation, "
                     f"one job at a time: training {duration(plan['training_seconds'])}, start-up of "
                     f"{2 * len(plan['rows'])} train/evaluate jobs {duration(plan['jobs_seconds'])} (model builds "
                     f"included), evaluation of {plan['eval_images']:,} test images "
                     f"{duration(plan['eval_seconds'])}, data and report jobs {duration(plan['fixed_seconds'])}"
                     f"{estimated}")
    elif plan["lower_bound_seconds"] is not None:
        lines.append(f"plan: estimated time at least {duration(plan['lower_bound_seconds'])} incl. start-up, builds "
                     f"and evaluation (every run at the fastest recorded speed; `ran plan --probe` measures each "
                     f"network)")
    if too_long(plan, gpu):
        lines.append(f"plan: WARNING: profile {plan['profile']} is sized for GPUs: on this machine it needs "
                     f"{'at least ' if not plan['complete'] else ''}{duration(worst_seconds(plan))}. Try "
                     f"`--config profile=cpu` (real data, minutes to hours) or `profile=smoke`, or run on a GPU; "
                     f"snakemake stops before its first job unless `--config allow_long=true`.")
    return "\n".join(lines)


def stop_line(params: dict, plan: dict, speeds: dict[str, float], overheads: dict[str, float]) -> str:
    """The one line that stops a GPU-sized workflow on a CPU: the cost, the profiles that fit, the way past it."""
    fits = []
    for name in params["profiles"]:
        if name == plan["profile"]:
            continue
        other = build_plan(params, name, speeds, overheads)
        seconds = worst_seconds(other)
        if other["complete"] and seconds is not None and seconds <= DAY_S:
            fits.append(f"`{'--config ' if not fits else ''}profile={name}`: {duration(seconds)}")
    listed = f"{', '.join(fits[:-1])} or {fits[-1]}" if len(fits) > 1 else "".join(fits)
    sized = f"a profile sized for it ({listed})" if fits else "a smaller profile"
    bound = "" if plan["complete"] else "at least "
    return (f"plan: stopped before the first job: profile {plan['profile']} needs {bound}"
            f"{duration(worst_seconds(plan))} of training and evaluation on this machine, which has no GPU; run "
            f"{sized}, run on a GPU, or go ahead anyway with `--config allow_long=true`")


@functools.lru_cache(maxsize=1)
def _gpu_here() -> bool:
    return has_gpu()


def _recorded(records_dir: str):
    from ran.records import load_records

    gpu = _gpu_here()
    records = load_records(records_dir)
    return gpu, recorded_speeds(records, gpu), recorded_overheads(records, gpu)


def announce(params: dict, profile: str, records_dir: str, allow_long: bool = False) -> None:
    """Print the plan to stderr, one line per network when it has many runs (the Snakefile calls this once per
    `snakemake` call, dry runs and --lint included); never stops the workflow (`guard` does, before the first job)."""
    try:
        gpu, speeds, overheads = _recorded(records_dir)
        source = f"recorded runs on a {'GPU' if gpu else 'CPU'}"
        plan = build_plan(params, profile, speeds, overheads)
        text = plan_text(plan, gpu, source, full=False)
        if allow_long and too_long(plan, gpu):
            text = text.rsplit("\n", 1)[0] + (f"\nplan: allow_long is set: going ahead with "
                                              f"{duration(worst_seconds(plan))} of training and evaluation on a "
                                              f"machine without GPU")
        print(text, file=sys.stderr)
    except Exception as error:  # noqa: BLE001 (an estimate must never cost a run)
        print(f"plan: no estimate ({type(error).__name__}: {error})", file=sys.stderr)


def guard(params: dict, profile: str, records_dir: str, runs=None, allow_long: bool = False) -> str | None:
    """The line to stop with when the runs about to train (`runs`; None: every selected run) need more than a day
    on this machine and it has no GPU; None to go ahead (a GPU, a short plan, `allow_long`, or no estimate)."""
    if allow_long:
        return None
    try:
        gpu, speeds, overheads = _recorded(records_dir)
        plan = build_plan(params, profile, speeds, overheads, runs=runs)
        return stop_line(params, plan, speeds, overheads) if too_long(plan, gpu) else None
    except Exception as error:  # noqa: BLE001 (a broken estimate is announced, never a reason to stop)
        print(f"plan: no estimate, so no check of the plan's length ({type(error).__name__}: {error})",
              file=sys.stderr)
        return None


def probe_cache_path() -> Path:
    """Probes measured on this machine: `$XDG_CACHE_HOME/ran/plan-probes.json` (default ~/.cache)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ran" / "plan-probes.json"


def probe_key(network: str, batch: int, precision: str) -> str:
    """What a probe depends on: this machine (host, ISA, whether it has a GPU), the network, batch and precision."""
    from ran.runtime import cpu_isa

    host = f"{platform.node()}|{platform.machine()}|{cpu_isa()}|gpu={has_gpu()}"
    return f"{host}|{network}|{batch}|{precision}"


def steady_step_seconds(step, clock=time.perf_counter, min_wall_s: float = PROBE_MIN_WALL_S,
                        min_steps: int = PROBE_MIN_STEPS, max_steps: int = PROBE_MAX_STEPS) -> dict:
    """Time `step(index)`: one warm-up call (index 0; it traces and compiles) timed apart, then calls 1, 2, ...
    until `min_wall_s` of them have passed and at least `min_steps` ran, or `max_steps` ran. Returns the median
    step's seconds (robust to a step slowed by other work), the steps timed, their seconds and the warm-up's."""
    tick = clock()
    step(0)
    warmup = clock() - tick
    times: list[float] = []
    while len(times) < max_steps and (len(times) < min_steps or sum(times) < min_wall_s):
        tick = clock()
        step(len(times) + 1)
        times.append(clock() - tick)
    return {"step_s": statistics.median(times), "steps": len(times), "timed_s": sum(times), "warmup_s": warmup,
            "step_times_s": times}


def probe_worker(network: str, batch: int, precision: str, out: str) -> None:
    """One probe, in a process of its own as each training job is: the model `ran train` trains (built and compiled
    by the trainer's functions, as `ran bench` does), fed from in-memory uint8 arrays one step a call; the steps are
    timed by `steady_step_seconds`; writes the result as JSON to `out`."""
    import json

    from ran.runtime import load_framework, prepare_runtime

    prepare_runtime(1, training_precision=precision)  # the train job's runtime settings (threads, oneDNN, GPU)
    load_framework()
    import keras
    import numpy as np

    from ran.bench import bench_config, parser_and_args
    from ran.models import build_network
    from ran.train import provenance
    from ran.train.loop import (
        build_trained_model,
        compile_for_training,
        resolve_jit,
        resolve_precision,
        training_inputs,
        use_deterministic_ops,
    )

    gpu = bool(provenance.accelerators())
    _, args = parser_and_args(["--network", network, "--batch-size", str(batch), "--precision", precision,
                               "--steps", str(PROBE_MAX_STEPS)])
    config = bench_config(args)
    keras.utils.set_random_seed(0)
    use_deterministic_ops(gpu)  # as the trainer: TF op determinism and one inter-op thread on a CPU
    tick = time.perf_counter()
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(resolve_precision(precision, gpu))
    try:
        built = build_network(network, 10, attention=args.attention, learning=args.learning, mask=args.mask)
        model, _ = build_trained_model(built, np.full((32, 32, 3), 120.0, dtype=np.float32), config.pad)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
    build_s = time.perf_counter() - tick
    compile_for_training(model, config, resolve_jit(config.jit, gpu))
    count = PROBE_MAX_STEPS + 1
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count * batch, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, count * batch).astype(np.int64)
    inputs = training_inputs(images, 0, 0, count, batch, config)

    def step(index: int) -> None:
        rows = slice(index * batch, (index + 1) * batch)
        model.train_on_batch({key: value[rows] for key, value in inputs.items()}, labels[rows])

    timing = steady_step_seconds(step)
    result = {"probe": PROBE_VERSION, "network": network, "batch_size": batch, "precision": precision,
              "images_per_s": batch / timing["step_s"], "build_s": build_s, **timing,
              "load_average": list(os.getloadavg()), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_text_atomic(Path(out), json.dumps(result, indent=1) + "\n")


PROBE_COMMAND = ("import sys; from ran.plan import probe_worker; "
                 "probe_worker(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])")


def usable_probe(entry) -> bool:
    """A cache entry of this probe (an older kind, or anything unreadable, is measured again)."""
    return (isinstance(entry, dict) and entry.get("probe") == PROBE_VERSION
            and isinstance(entry.get("images_per_s"), (int, float)) and entry["images_per_s"] > 0
            and isinstance(entry.get("warmup_s"), (int, float)))


def probe_speeds(params: dict, profile: str | None, fresh: bool = False) -> tuple[dict[str, float], dict[str, float]]:
    """Training images/s of each selected network measured here (`probe_worker`: the median of timed steps after a
    warm-up), and the seconds of its warm-up (tracing and compiling) step as its overhead (its build is counted by
    KERAS_LAYERS, as for recorded speeds); each probe is kept per machine and reused unless `fresh`."""
    import json
    import tempfile

    training = resolve_profile(params, profile)
    cache_path = probe_cache_path()
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    if not isinstance(cache, dict):
        cache = {}
    speeds, overheads = {}, {}
    networks = sorted({run_config(params, run_id)["network"] for run_id in selected_runs(params, training["name"])})
    for position, network in enumerate(networks, start=1):
        key = probe_key(network, int(training["batch_size"]), training["mixed_precision"])
        entry = cache.get(key)
        if usable_probe(entry) and not fresh:
            result = entry
            print(f"plan: {network} ({position}/{len(networks)}): probed here before ({result['measured_at']}; "
                  f"--fresh measures again)", file=sys.stderr)
        else:
            older = " (the probe kept for it is of an older kind)" if entry is not None and not fresh else ""
            print(f"plan: probing {network} ({position}/{len(networks)}){older}: a build, a warm-up step that "
                  f"compiles, then at least {PROBE_MIN_STEPS} steps and {PROBE_MIN_WALL_S:.0f} s of them; a minute "
                  f"or more on a CPU ...", file=sys.stderr, flush=True)
            with tempfile.TemporaryDirectory() as folder:
                out = Path(folder) / "probe.json"
                subprocess.run([sys.executable, "-c", PROBE_COMMAND, network, str(training["batch_size"]),
                                training["mixed_precision"], str(out)], check=True, capture_output=True)
                result = json.loads(out.read_text())
            cache[key] = result
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(cache_path, json.dumps(cache, indent=1) + "\n")
        speeds[network], overheads[network] = float(result["images_per_s"]), float(result["warmup_s"])
        print(f"plan: probed {network}: {speeds[network]:.1f} images/s (median of {result.get('steps', '?')} steps), "
              f"warm-up step {overheads[network]:.0f} s", file=sys.stderr)
    return speeds, overheads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ran plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    parser.add_argument("--profile", help="profile to plan (default: the file's `profile` key)")
    parser.add_argument("--records", default="workflow/resources/records", help="recorded runs (speeds)")
    parser.add_argument("--probe", action="store_true",
                        help="measure each network here instead (median step after a warm-up; kept per machine in "
                             "~/.cache/ran)")
    parser.add_argument("--fresh", action="store_true", help="with --probe: measure again what was probed before")
    args = parser.parse_args(argv)
    from ran.records import RecordError, load_records

    gpu = has_gpu()
    try:
        params = load_params(args.params)
        if args.probe:
            (speeds, overheads), source = probe_speeds(params, args.profile, args.fresh), "probed here"
        else:
            records = load_records(args.records)
            speeds, overheads = recorded_speeds(records, gpu), recorded_overheads(records, gpu)
            source = f"recorded runs on a {'GPU' if gpu else 'CPU'} ({args.records})"
        print(plan_text(build_plan(params, args.profile, speeds, overheads), gpu, source))
    except (ConfigError, RecordError) as error:
        parser.exit(1, f"ran plan: {error}\n")
    return 0
