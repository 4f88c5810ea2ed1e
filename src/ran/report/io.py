"""Small file helpers shared by the report commands: atomic writes and reading run outputs."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import yaml


def load_paper(path: str | Path) -> dict:
    """The project's copy of the paper's numbers (workflow/resources/paper_results.yaml)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"paper results file not found: {path}")
    paper = yaml.safe_load(path.read_text())
    for key in ("cifar", "seed_project"):
        if not isinstance(paper.get(key), list):
            raise ValueError(f"{path}: expected a list under {key!r}")
    return paper


def load_metrics(eval_dir: str | Path, run_id: str, profile: str | None = None) -> dict | None:
    """A run's eval metrics.json, or None when the run has not been evaluated.

    A metrics file written under another profile is an error: a smoke number must never land in a paper table. A run
    the profile does not select (`"status": "not selected"`) has no results either.
    """
    path = Path(eval_dir) / run_id / "metrics.json"
    if not path.is_file():
        return None
    remedy = f"rerun `ran evaluate` for {run_id}"
    try:
        metrics = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} cannot be read as JSON ({error}): {remedy}") from error
    if not isinstance(metrics, dict):
        raise ValueError(f"{path} holds a JSON {type(metrics).__name__}, not an object: {remedy}")
    if profile is not None and metrics.get("profile") not in (None, profile):
        raise ValueError(f"{path} was written by profile {metrics.get('profile')!r}, not {profile!r}")
    if metrics.get("status") == "not selected":
        return None
    top1 = metrics.get("top1_error_pct")
    if not isinstance(top1, dict):
        raise ValueError(f"{path}: field 'top1_error_pct' must be an object with mean, std and n, found "
                         f"{type(top1).__name__}: {remedy}")
    for field in ("mean", "std"):
        value = top1.get(field, 0.0 if field == "std" else None)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{path}: field 'top1_error_pct.{field}' must be a finite number, found {value!r}: "
                             f"{remedy}")
    if not isinstance(top1.get("n", 1), int) or top1.get("n", 1) < 1:
        raise ValueError(f"{path}: field 'top1_error_pct.n' must be a positive integer, found {top1.get('n')!r}")
    return metrics


def read_tsv_series(path: str | Path) -> tuple[list[float], list[float]]:
    """One DVCLive history file: columns `step`, optionally `timestamp`, and the metric (named by its basename)."""
    steps, values = [], []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        value_columns = [c for c in reader.fieldnames or [] if c not in ("step", "timestamp")]
        if "step" not in (reader.fieldnames or []) or len(value_columns) != 1:
            raise ValueError(f"{path}: expected columns 'step' and one metric, found {reader.fieldnames}")
        for row in reader:
            steps.append(float(row["step"]))
            values.append(float(row[value_columns[0]]))
    return steps, values


def load_history(live_dir: str | Path) -> dict[str, tuple[list[float], list[float]]]:
    """Every metric DVCLive logged for one seed, keyed by its logged name (e.g. 'train/loss')."""
    metrics_dir = Path(live_dir) / "plots" / "metrics"
    if not metrics_dir.is_dir():
        return {}
    return {
        path.relative_to(metrics_dir).with_suffix("").as_posix(): read_tsv_series(path)
        for path in sorted(metrics_dir.rglob("*.tsv"))
    }


def seed_dirs(models_dir: str | Path, run_id: str) -> dict[int, Path]:
    """`models/{run}/seed{S}` folders that exist, keyed by seed."""
    run_dir = Path(models_dir) / run_id
    found = {}
    for path in sorted(run_dir.glob("seed*")) if run_dir.is_dir() else []:
        suffix = path.name[len("seed"):]
        if path.is_dir() and suffix.isdigit():
            found[int(suffix)] = path
    return dict(sorted(found.items()))
