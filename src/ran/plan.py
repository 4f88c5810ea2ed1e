"""`ran plan`: what a profile will cost before it runs: images per run and in all, and the time it takes here.

    ran plan --profile paper          # also printed by every `snakemake` call (dry runs included) before any job

Speeds come from the recorded runs (workflow/resources/records) on the same kind of device (GPU or CPU); a network
without a record there gets no time, and the profile as a whole gets a lower bound at the fastest recorded speed.
`--probe` measures each network here instead (`ran bench`: a compile and a few steps each; minutes on a CPU). A
profile that would take more than a day on a machine without a GPU is announced with a warning.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from ran.config import ConfigError, load_params, resolve_profile, run_config, selected_runs
from ran.runtime import has_gpu

DAY_S = 86_400.0


def recorded_speeds(records: list[dict], gpu: bool) -> dict[str, float]:
    """Median training images/s per network over the records made on this kind of device."""
    found: dict[str, list[float]] = {}
    for record in records:
        speed = record["summary"].get("images_per_s")
        on_gpu = "CPU," not in record["device"]
        if speed and on_gpu == gpu:
            found.setdefault(record["config"]["network"], []).append(float(speed))
    return {network: sorted(values)[len(values) // 2] for network, values in found.items()}


def duration(seconds: float) -> str:
    if seconds >= 2 * DAY_S:
        return f"{seconds / DAY_S:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"


def build_plan(params: dict, profile: str | None, speeds: dict[str, float]) -> dict:
    """Per selected run: images to process and the estimated seconds (None without a speed for its network)."""
    training = resolve_profile(params, profile)
    seeds = len(params["seeds"])
    rows = []
    for run_id in selected_runs(params, training["name"]):
        run = run_config(params, run_id)
        images = int(training["iterations"]) * int(training["batch_size"]) * seeds
        speed = speeds.get(run["network"])
        rows.append({"run": run_id, "network": run["network"], "images": images, "images_per_s": speed,
                     "seconds": images / speed if speed else None})
    total = sum(row["images"] for row in rows)
    known = [row["seconds"] for row in rows if row["seconds"] is not None]
    fastest = max(speeds.values()) if speeds else None
    return {"profile": training["name"], "iterations": training["iterations"], "batch_size": training["batch_size"],
            "seeds": seeds, "rows": rows, "images": total, "known_seconds": sum(known),
            "complete": len(known) == len(rows), "lower_bound_seconds": total / fastest if fastest else None}


def plan_text(plan: dict, gpu: bool, source: str) -> str:
    device = "a GPU" if gpu else "no GPU"
    lines = [f"plan: profile {plan['profile']}: {len(plan['rows'])} run(s) x {plan['seeds']} seed(s) x "
             f"{plan['iterations']} iterations x batch {plan['batch_size']} = {plan['images']:,} training images "
             f"(this machine: {device}; speeds: {source})"]
    for row in plan["rows"]:
        when = (f"{row['images_per_s']:.0f} images/s -> {duration(row['seconds'])}" if row["seconds"] is not None
                else "no speed known for this network here")
        lines.append(f"plan:   {row['run']:<28} {row['network']:<12} {row['images']:>13,} images  {when}")
    if plan["complete"]:
        lines.append(f"plan: estimated training time {duration(plan['known_seconds'])} (one job at a time)")
    elif plan["lower_bound_seconds"] is not None:
        lines.append(f"plan: estimated training time at least {duration(plan['lower_bound_seconds'])} (every run at "
                     f"the fastest recorded speed; `ran plan --probe` measures each network)")
    worst = plan["known_seconds"] if plan["complete"] else plan["lower_bound_seconds"]
    if not gpu and worst is not None and worst > DAY_S:
        lines.append(f"plan: WARNING: profile {plan['profile']} is sized for GPUs: on this machine it needs "
                     f"{'at least ' if not plan['complete'] else ''}{duration(worst)}. Try `--config profile=cpu` "
                     f"(real data, minutes to hours) or `profile=smoke`, or run on a GPU.")
    return "\n".join(lines)


def probe_speeds(params: dict, profile: str | None) -> dict[str, float]:
    """Training images/s of each selected network measured here with `ran bench` (3 steps after compiling)."""
    import json
    import tempfile
    from pathlib import Path

    training = resolve_profile(params, profile)
    speeds = {}
    networks = sorted({run_config(params, run_id)["network"] for run_id in selected_runs(params, training["name"])})
    for network in networks:
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "bench.json"
            subprocess.run([sys.executable, "-m", "ran.cli", "bench", "--network", network, "--batch-size",
                            str(training["batch_size"]), "--precision", training["mixed_precision"], "--steps", "3",
                            "--repeats", "1", "--out", str(out)], check=True, capture_output=True)
            speeds[network] = json.loads(out.read_text())["train_images_per_s"]
        print(f"plan: probed {network}: {speeds[network]:.1f} images/s", file=sys.stderr)
    return speeds


def announce(params: dict, profile: str, records_dir: str) -> None:
    """Print the plan to stderr (the Snakefile calls this once per `snakemake` call); never stops the workflow."""
    from ran.records import load_records

    try:
        gpu = has_gpu()
        speeds = recorded_speeds(load_records(records_dir), gpu)
        source = f"recorded runs on a {'GPU' if gpu else 'CPU'}"
        print(plan_text(build_plan(params, profile, speeds), gpu, source), file=sys.stderr)
    except Exception as error:  # noqa: BLE001 (an estimate must never cost a run)
        print(f"plan: no estimate ({type(error).__name__}: {error})", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ran plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    parser.add_argument("--profile", help="profile to plan (default: the file's `profile` key)")
    parser.add_argument("--records", default="workflow/resources/records", help="recorded runs (speeds)")
    parser.add_argument("--probe", action="store_true", help="measure each network here instead (ran bench)")
    args = parser.parse_args(argv)
    from ran.records import RecordError, load_records

    gpu = has_gpu()
    try:
        params = load_params(args.params)
        if args.probe:
            speeds, source = probe_speeds(params, args.profile), "measured now by `ran bench`"
        else:
            speeds = recorded_speeds(load_records(args.records), gpu)
            source = f"recorded runs on a {'GPU' if gpu else 'CPU'} ({args.records})"
        print(plan_text(build_plan(params, args.profile, speeds), gpu, source))
    except (ConfigError, RecordError) as error:
        parser.exit(1, f"ran plan: {error}\n")
    return 0
