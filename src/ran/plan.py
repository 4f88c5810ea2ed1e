"""`ran plan`: what a profile will cost before it runs: images per run and in all, and the time it takes here.

    ran plan --profile paper          # every `snakemake` call prints a short form of this before any job

Speeds come from the recorded runs (workflow/resources/records) on the same kind of device (GPU or CPU); a network
without a record there is estimated from the recorded network closest in forward MACs (images/s scaled by the MACs
ratio; the row says so), and the build time of each seed's model (a record's total minus training wall time) is
counted too. `--probe` measures each network here instead (`ran bench`: a build, a compile and a few steps each;
minutes on a CPU), saying so before each, and keeps each probe per machine in ~/.cache/ran (`--fresh` measures
again). A profile that would take more than a day on a machine without a GPU is announced with a
warning, and the workflow stops before its first job unless `--config allow_long=true` (Snakefile, `guard`).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

from ran.atomic import write_text_atomic
from ran.config import ConfigError, load_params, resolve_profile, run_config, selected_runs
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
    """Median seconds per seed outside the training loop (model build, data loading) per network, where recorded."""
    found: dict[str, list[float]] = {}
    for record in records:
        total, train = record["summary"].get("total_wall_s"), record["summary"].get("train_wall_s")
        if total is not None and train is not None and total >= train and _on_gpu(record) == gpu:
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
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"


def build_plan(params: dict, profile: str | None, speeds: dict[str, float], overheads: dict[str, float] | None = None,
               runs=None) -> dict:
    """Per selected run (only those of `runs` if given): images to process and the estimated seconds.

    `seconds` is None for a run whose network can be neither measured nor estimated; `estimated_from` names the
    network whose speed was scaled by MACs, None for a measured one.
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
        rows.append({"run": run_id, "network": run["network"], "images": images, "images_per_s": speed,
                     "estimated_from": base, "overhead_s": seeds * overhead,
                     "seconds": images / speed + seeds * overhead if speed else None})
    total = sum(row["images"] for row in rows)
    known = [row["seconds"] for row in rows if row["seconds"] is not None]
    fastest = max(speeds.values()) if speeds else None
    return {"profile": training["name"], "iterations": training["iterations"], "batch_size": training["batch_size"],
            "seeds": seeds, "rows": rows, "images": total, "known_seconds": sum(known),
            "complete": len(known) == len(rows), "estimated": sum(1 for row in rows if row["estimated_from"]),
            "lower_bound_seconds": total / fastest if fastest else None}


def worst_seconds(plan: dict) -> float | None:
    """The plan's time: the sum when every run has one, else the lower bound (None without any speed)."""
    return plan["known_seconds"] if plan["complete"] else plan["lower_bound_seconds"]


def too_long(plan: dict, gpu: bool) -> bool:
    """More than a day of training on a machine without a GPU."""
    worst = worst_seconds(plan)
    return not gpu and worst is not None and worst > DAY_S


def _when(row: dict, each: str = "") -> str:
    if row["seconds"] is None:
        return "no speed known for this network here"
    estimated = f" (estimated from {row['estimated_from']} by MACs)" if row["estimated_from"] else ""
    return f"{row['images_per_s']:.0f} images/s -> {duration(row['seconds'])}{each}{estimated}"


def _network_lines(plan: dict) -> list[str]:
    """One line per network, the slowest first: the rows of one network differ only by their id."""
    groups: dict[str, list[dict]] = {}
    for row in plan["rows"]:
        groups.setdefault(row["network"], []).append(row)
    order = sorted(groups, key=lambda network: -(groups[network][0]["seconds"] or 0.0))
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
    builds = "model builds included; " if any(row["overhead_s"] for row in plan["rows"]) else ""
    if plan["complete"] and plan["rows"]:
        estimated = (f"; {plan['estimated']} of {len(plan['rows'])} run(s) estimated by MACs from measured networks"
                     if plan["estimated"] else "")
        lines.append(f"plan: estimated training time {duration(plan['known_seconds'])} ({builds}one job at a "
                     f"time{estimated})")
    elif plan["lower_bound_seconds"] is not None:
        lines.append(f"plan: estimated training time at least {duration(plan['lower_bound_seconds'])} (every run at "
                     f"the fastest recorded speed; `ran plan --probe` measures each network)")
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
            f"{duration(worst_seconds(plan))} of training on this machine, which has no GPU; run {sized}, run on a "
            f"GPU, or go ahead anyway with `--config allow_long=true`")


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
                                              f"{duration(worst_seconds(plan))} of training on a machine without GPU")
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


def probe_speeds(params: dict, profile: str | None, fresh: bool = False) -> tuple[dict[str, float], dict[str, float]]:
    """Training images/s of each selected network measured here with `ran bench` (3 steps after compiling), and
    the seconds of its build and first (compiling) step; each probe is kept per machine and reused unless `fresh`."""
    import json
    import tempfile

    training = resolve_profile(params, profile)
    cache_path = probe_cache_path()
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    speeds, overheads = {}, {}
    networks = sorted({run_config(params, run_id)["network"] for run_id in selected_runs(params, training["name"])})
    for position, network in enumerate(networks, start=1):
        key = probe_key(network, int(training["batch_size"]), training["mixed_precision"])
        if key in cache and not fresh:
            result = cache[key]
            print(f"plan: {network} ({position}/{len(networks)}): probed here before ({result['measured_at']}; "
                  f"--fresh measures again)", file=sys.stderr)
        else:
            print(f"plan: probing {network} ({position}/{len(networks)}): a build, a compile and 3 steps, a minute or "
                  f"more on a CPU ...", file=sys.stderr, flush=True)
            with tempfile.TemporaryDirectory() as folder:
                out = Path(folder) / "bench.json"
                subprocess.run([sys.executable, "-m", "ran.cli", "bench", "--network", network, "--batch-size",
                                str(training["batch_size"]), "--precision", training["mixed_precision"], "--steps",
                                "3", "--repeats", "1", "--out", str(out)], check=True, capture_output=True)
                bench = json.loads(out.read_text())
            result = {"images_per_s": bench["train_images_per_s"],
                      "overhead_s": float(bench.get("build_s", 0.0)) + float(bench.get("compile_s", 0.0)),
                      "measured_at": bench.get("measured_at", "")}
            cache[key] = result
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(cache_path, json.dumps(cache, indent=1) + "\n")
        speeds[network], overheads[network] = result["images_per_s"], result["overhead_s"]
        print(f"plan: probed {network}: {speeds[network]:.1f} images/s, build and compile "
              f"{overheads[network]:.0f} s", file=sys.stderr)
    return speeds, overheads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ran plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    parser.add_argument("--profile", help="profile to plan (default: the file's `profile` key)")
    parser.add_argument("--records", default="workflow/resources/records", help="recorded runs (speeds)")
    parser.add_argument("--probe", action="store_true",
                        help="measure each network here instead (ran bench; kept per machine in ~/.cache/ran)")
    parser.add_argument("--fresh", action="store_true", help="with --probe: measure again what was probed before")
    args = parser.parse_args(argv)
    from ran.records import RecordError, load_records

    gpu = has_gpu()
    try:
        params = load_params(args.params)
        if args.probe:
            (speeds, overheads), source = probe_speeds(params, args.profile, args.fresh), "probed here by `ran bench`"
        else:
            records = load_records(args.records)
            speeds, overheads = recorded_speeds(records, gpu), recorded_overheads(records, gpu)
            source = f"recorded runs on a {'GPU' if gpu else 'CPU'} ({args.records})"
        print(plan_text(build_plan(params, args.profile, speeds, overheads), gpu, source))
    except (ConfigError, RecordError) as error:
        parser.exit(1, f"ran plan: {error}\n")
    return 0
