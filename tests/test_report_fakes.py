"""Hand-made run outputs in the layouts of docs/architecture.md, shared by the report tests."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

SEEDS = (0, 1)


def fake_metrics(run: dict, profile: str, errors: list[float], params_count: int = 1_900_000) -> dict:
    mean = float(np.mean(errors))
    std = float(np.std(errors, ddof=1)) if len(errors) > 1 else 0.0
    seeds = [{"seed": seed, "top1_error_pct": err, "top5_error_pct": None, "num_test": 40, "noise_realised": None,
              "train_images_per_s": 250.0 + seed, "train_wall_s": 3600.0} for seed, err in enumerate(errors)]
    config = {k: run.get(k) for k in ("dataset", "network", "attention", "learning", "mask", "noise")}
    return {"run": run["run"], "profile": profile, "config": config, "params": params_count, "depth": 92,
            "top1_error_pct": {"mean": mean, "std": std, "n": len(errors)}, "top5_error_pct": None, "seeds": seeds}


def fake_masks(count: int = 3) -> dict:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
    masks = {"images": images}
    for stage, size in ((1, 32), (2, 16), (3, 8)):
        grid = np.linspace(0, 1, size, dtype=np.float32)
        blob = np.exp(-((grid[None, :, None] - 0.5) ** 2 + (grid[None, None, :] - 0.3) ** 2) * 8)
        masks[f"stage{stage}"] = np.repeat(blob, count, axis=0).astype(np.float32)
    return masks


def cut_matrix(params: dict, run_ids) -> dict:
    """A copy of `params` whose matrix holds only `run_ids`; profile selections keep the runs that remain."""
    small = copy.deepcopy(params)
    small["runs"] = {run_id: params["runs"][run_id] for run_id in run_ids}
    for profile in small["profiles"].values():
        if profile["runs"] != "all":
            profile["runs"] = [run_id for run_id in profile["runs"] if run_id in small["runs"]] or "all"
    return small


def write_history(seed_dir: Path, steps: int = 20) -> None:
    metrics_dir = seed_dir / "live" / "plots" / "metrics"
    series = {"train/loss": lambda s: 2.3 * np.exp(-s / 8), "train/accuracy": lambda s: 1 - np.exp(-s / 6),
              "lr": lambda s: 0.1 if s < 10 else 0.01}
    for name, value in series.items():
        path = metrics_dir / f"{name}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [f"{1000 + s}\t{s}\t{value(s):.6f}" for s in range(steps)]
        path.write_text(f"timestamp\tstep\t{name.rsplit('/', 1)[-1]}\n" + "\n".join(rows) + "\n")
    (seed_dir / "train.json").write_text(json.dumps({"wall_s": 3600.0, "images_per_s": 250.0}))


def write_results(results: Path, runs: list[dict], profile: str, skip: set[str] = frozenset()) -> Path:
    """results/{profile}-like folder: eval/{run}/metrics.json + masks.npz and models/{run}/seed{S}/live/ for
    every run not in `skip`; errors grow with the run's position so the charts have something to show."""
    for index, run in enumerate(runs):
        if run["run"] in skip:
            continue
        eval_dir = results / "eval" / run["run"]
        eval_dir.mkdir(parents=True, exist_ok=True)
        errors = [5.0 + 0.1 * index + 0.2 * seed for seed in SEEDS]
        (eval_dir / "metrics.json").write_text(json.dumps(fake_metrics(run, profile, errors)))
        masks = fake_masks() if run["network"].startswith("attention") else {"images": np.zeros((0, 32, 32, 3))}
        np.savez(eval_dir / "masks.npz", **masks)
        for seed in SEEDS:
            write_history(results / "models" / run["run"] / f"seed{seed}")
    return results


def test_fake_results_follow_the_contract(tmp_path, params):
    from ran.config import all_runs

    runs = all_runs(params)[:2]
    write_results(tmp_path, runs, "smoke", skip={runs[1]["run"]})
    metrics = json.loads((tmp_path / "eval" / runs[0]["run"] / "metrics.json").read_text())
    assert metrics["top1_error_pct"]["n"] == len(SEEDS) and metrics["top1_error_pct"]["std"] > 0
    live = tmp_path / "models" / runs[0]["run"] / "seed1" / "live"
    assert (live / "plots" / "metrics" / "train" / "loss.tsv").is_file()
    assert not (tmp_path / "eval" / runs[1]["run"]).exists()
