"""`ran bench`: training and inference speed of one network, measured on the very model `ran train` trains.

    ran bench --network attention56 --batch-size 64 --precision float32 --steps 20 --repeats 3 --out bench.json

The model is built and compiled by the trainer's own functions (uint8 images -> mean subtraction -> pad/crop/flip ->
network, Nesterov SGD, the NaN-guard metric) and fed from in-memory uint8 arrays through `model.fit`, as a training
segment is. Rates are steady state: the first call (tracing, compilation, first step) is timed apart, then each
repeat is a timed block of `--steps` steps and the median repeat is reported. Useful work counts forward MACs only
(`ran.models.forward_macs`): training does 3 x 2 x MACs per image (forward, then backward at about twice the
forward), inference 2 x MACs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time
from pathlib import Path

# Optimizer settings do not change the cost of a step; these are the paper's (Sec. 4.1) so the graph is the same.
TRAINING = {"base_lr": 0.1, "lr_decay_at": [0.4, 0.6], "lr_decay_factor": 0.1, "momentum": 0.9, "nesterov": True,
            "weight_decay": 1e-4, "pad": 4, "flip": True, "iterations": 160000}
CHOICES = {"auto": "auto", "true": True, "false": False}


def rate(images: int, seconds: list[float]) -> float:
    """Images per second of the median timed block."""
    return images / statistics.median(seconds)


def work_rates(macs: int, train_ips: float, infer_ips: float, peak_tflops: float | None) -> dict:
    """Achieved TFLOP/s (a MAC is 2 FLOPs; training = forward + backward = 3 forward passes) and the fraction of
    `peak_tflops` (model FLOPs utilisation, MFU)."""
    train, infer = 6 * macs * train_ips / 1e12, 2 * macs * infer_ips / 1e12
    return {"train_tflops": train, "infer_tflops": infer,
            "train_mfu": train / peak_tflops if peak_tflops else None,
            "infer_mfu": infer / peak_tflops if peak_tflops else None}


def peak_memory() -> dict:
    """Peak host RSS of this process (Linux reports KiB, macOS bytes) and the accelerator's peak where exposed."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {"host_peak_rss_mib": rss / (2**20 if sys.platform == "darwin" else 2**10), "device_peak_mib": None}
    import keras

    try:
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            if tf.config.list_physical_devices("GPU"):
                out["device_peak_mib"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
        elif keras.backend.backend() == "jax":
            import jax

            stats = jax.devices()[0].memory_stats() or {}
            if "peak_bytes_in_use" in stats:
                out["device_peak_mib"] = stats["peak_bytes_in_use"] / 2**20
    except (RuntimeError, ValueError, KeyError):
        pass
    return out


def _timed(call, cpu: list | None = None) -> float:
    """Wall seconds of `call()`; appends this process's CPU seconds (user + system, all threads) to `cpu`."""
    tick, cpu_tick = time.perf_counter(), time.process_time()
    call()
    if cpu is not None:
        cpu.append(time.process_time() - cpu_tick)
    return time.perf_counter() - tick


def benchmark(args) -> dict:
    import keras
    import numpy as np

    from ran.models import build_network, forward_macs
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
    policy, jit = resolve_precision(args.precision, gpu), resolve_jit(CHOICES[args.jit], gpu)
    keras.utils.set_random_seed(0)
    # The trainer's choice unless overridden: TF op determinism is process-wide and cannot be switched off again.
    choice = determinism(args, gpu, keras.backend.backend())
    deterministic = use_deterministic_ops(gpu) if choice == "auto" else choice == "true"
    if choice == "true" and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()

    build = _timed_result(lambda: _build(keras, build_network, build_trained_model, policy, args))
    network, model, inference = build["value"]
    training = bench_config(args)
    compile_for_training(model, training, jit)
    if args.steps_per_execution > 1:
        model.steps_per_execution = args.steps_per_execution  # read when the train function is first made

    batch, steps = args.batch_size, args.steps
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (steps * batch, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, args.num_classes, steps * batch).astype(np.int64)
    inputs = training_inputs(images, 0, 0, steps, batch, training)  # the trainer's own augmentation draws
    per_fit = min(args.steps_per_fit or steps, steps)

    def fit(first: int, last: int) -> None:
        rows = slice(first * batch, last * batch)
        model.fit({key: value[rows] for key, value in inputs.items()}, labels[rows], batch_size=batch, epochs=1,
                  shuffle=False, verbose=0)

    def train_block():
        for first in range(0, steps, per_fit):
            fit(first, min(first + per_fit, steps))

    compile_s = _timed(lambda: fit(0, 1))
    train_cpu_s = []
    train_s = [_timed(train_block, train_cpu_s) for _ in range(args.repeats)]
    predict_compile_s = _timed(lambda: inference.predict(images[:batch], batch_size=batch, verbose=0))
    infer_s = [_timed(lambda: inference.predict(images, batch_size=batch, verbose=0)) for _ in range(args.repeats)]

    macs = forward_macs(network)
    train_ips, infer_ips = rate(steps * batch, train_s), rate(steps * batch, infer_s)
    return {
        "network": args.network, "num_classes": args.num_classes, "attention": args.attention,
        "learning": args.learning, "mask": args.mask, "backend": keras.backend.backend(),
        "batch_size": batch, "precision": args.precision, "dtype_policy": policy,
        "jit": bool(model.jit_compile),  # effective: Keras turns XLA off under TF op determinism
        "deterministic_ops": bool(deterministic), "augmentation": args.augment,
        "steps": steps, "repeats": args.repeats, "steps_per_fit": per_fit,
        "steps_per_execution": args.steps_per_execution,
        "build_s": build["seconds"], "compile_s": compile_s, "predict_compile_s": predict_compile_s,
        "train_block_s": train_s, "infer_block_s": infer_s,
        # CPU seconds are less disturbed than wall time when other jobs share the cores (not immune: caches, SMT).
        "train_cpu_block_s": train_cpu_s,
        "train_cpu_ms_per_image": 1e3 * statistics.median(train_cpu_s) / (steps * batch),
        "train_images_per_s": train_ips, "infer_images_per_s": infer_ips,
        # The fastest block: on a shared machine the least disturbed one, a bound on what the step can do.
        "train_images_per_s_best": steps * batch / min(train_s),
        "infer_images_per_s_best": steps * batch / min(infer_s),
        "forward_macs": int(macs),
        "flops_note": "train = 3 x 2 x MACs per image (forward + backward), infer = 2 x MACs",
        **work_rates(macs, train_ips, infer_ips, args.peak_tflops), "peak_tflops": args.peak_tflops,
        **peak_memory(),
        "device": provenance.device_description(), "cpu": provenance.cpu_model(),
        "libraries": provenance.library_versions(),
        "load_average": list(os.getloadavg()), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def determinism(args, gpu: bool, backend: str) -> str:
    """`--deterministic` as applied: TF op determinism (the CPU default) makes Keras drop XLA, so `--jit true` on a
    TensorFlow CPU turns the default off, and says so; asked for both, it warns that no XLA is measured."""
    if backend != "tensorflow" or gpu or args.jit != "true" or args.deterministic == "false":
        return args.deterministic
    if args.deterministic == "auto":
        print("ran bench: --jit true on a TensorFlow CPU: TF op determinism off (Keras drops XLA under it), as "
              "--deterministic false", file=sys.stderr)
        return "false"
    print("ran bench: warning: --deterministic true makes Keras run TensorFlow without XLA, so --jit true measures "
          "no XLA; drop --deterministic true to measure XLA", file=sys.stderr)
    return "true"


def bench_config(args):
    """The trainer's typed configuration for this benchmark (the fields that do not shape the step are nominal)."""
    from ran.train.settings import TrainingConfig

    return TrainingConfig.from_dict({**TRAINING, "pad": TRAINING["pad"] if args.augment else 0, "flip": args.augment,
                                     "batch_size": args.batch_size, "mixed_precision": args.precision,
                                     "jit": CHOICES[args.jit], "log_every": args.steps,
                                     "checkpoint_every": args.steps})


def _build(keras, build_network, build_trained_model, policy, args):
    """The network and the trainer's wrapper, built under the dtype policy exactly as `train_seed` does."""
    import numpy as np

    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        network = build_network(args.network, args.num_classes, attention=args.attention, learning=args.learning,
                                mask=args.mask)
        mean = np.full((32, 32, 3), 120.0, dtype=np.float32)
        model, inference = build_trained_model(network, mean, TRAINING["pad"] if args.augment else 0)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
    return network, model, inference


def _timed_result(call) -> dict:
    tick = time.perf_counter()
    value = call()
    return {"value": value, "seconds": time.perf_counter() - tick}


def _num(value, spec: str) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def table(result: dict) -> str:
    """A short human summary of `result`."""
    r = result
    work = {kind: f"({_num(r[f'{kind}_tflops'] * 1e3, '.1f')} GFLOP/s, MFU {_num(r[f'{kind}_mfu'], '.1%')})"
            for kind in ("train", "infer")}
    rows = [("variant", f"{r['network']} ({r['attention']}, {r['learning']}, {r['mask']})"),
            ("backend / policy", f"{r['backend']} / {r['dtype_policy']}, jit {r['jit']}, "
                                 f"deterministic {r['deterministic_ops']}, batch {r['batch_size']}"),
            ("train images/s", f"{_num(r['train_images_per_s'], '.1f')} {work['train']}, best block "
                               f"{_num(r['train_images_per_s_best'], '.1f')}"),
            ("infer images/s", f"{_num(r['infer_images_per_s'], '.1f')} {work['infer']}, best block "
                               f"{_num(r['infer_images_per_s_best'], '.1f')}"),
            ("train CPU ms/image", f"{r['train_cpu_ms_per_image']:.1f} (all threads)"),
            ("forward MACs/image", f"{r['forward_macs'] / 1e6:.1f} M"),
            ("build / compile s", f"{r['build_s']:.1f} / {r['compile_s']:.1f} (predict {r['predict_compile_s']:.1f})"),
            ("peak memory MiB", f"host {r['host_peak_rss_mib']:.0f}, device {_num(r['device_peak_mib'], '.0f')}"),
            ("device", f"{r['device']}, {r['cpu']}; load {' '.join(f'{x:.2f}' for x in r['load_average'])}")]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def parser_and_args(argv: list[str] | None = None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """`ran bench`'s parser and its checked arguments (also how `ran gpucheck` describes a measurement)."""
    parser = argparse.ArgumentParser(prog="ran bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", default="attention56", help="a key of ran.models.VARIANTS (default: %(default)s)")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--attention", help="mixed | channel | spatial (attention networks; default mixed)")
    parser.add_argument("--learning", help="ARL | NAL (default ARL)")
    parser.add_argument("--mask", help="encoder_decoder | local_conv (default encoder_decoder)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--precision", default="float32", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--jit", default="auto", choices=sorted(CHOICES), help="XLA/jit (auto: as `ran train`)")
    parser.add_argument("--deterministic", default="auto", choices=["auto", "true", "false"],
                        help="TF op determinism (auto: as `ran train`, i.e. on for TensorFlow on CPU)")
    parser.add_argument("--no-augment", dest="augment", action="store_false",
                        help="drop pad/crop/flip from the step (to measure its cost; `ran train` always augments)")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed block (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed blocks; the median is reported")
    parser.add_argument("--steps-per-fit", type=int, default=0,
                        help="steps per model.fit call inside a block (default: the whole block, one segment)")
    parser.add_argument("--steps-per-execution", type=int, default=1, help="Keras steps_per_execution (default 1)")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak TFLOP/s, for model FLOPs utilisation")
    parser.add_argument("--out", help="JSON file to write")
    args = parser.parse_args(argv)
    for name in ("batch_size", "steps", "repeats", "steps_per_execution"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.network != "resnet164":  # record the paper's defaults that build_network would pick
        args.attention, args.learning = args.attention or "mixed", args.learning or "ARL"
        args.mask = args.mask or "encoder_decoder"
    return parser, args


def main(argv: list[str] | None = None) -> int:
    parser, args = parser_and_args(argv)
    from ran.runtime import load_framework, prepare_runtime

    prepare_runtime(int(os.environ.get("RAN_JOBS_PER_GPU", "1")))  # before Keras: a GPU slot, memory, logs
    try:
        load_framework()
        result = benchmark(args)
    except ValueError as error:
        parser.exit(1, f"ran bench: {error}\n")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    return 0
