"""`ran record`: copy finished runs of a profile into the repository's recorded results, after validating them.

    ran record --profile cpu                     # every selected run of the profile, from results/cpu
    ran record --profile quick --runs c10_a56_arl_mixed --allow-dirty

Records are the project's real results, versioned with the code: small text files, never weights, one folder per
(profile, run, seed) under `workflow/resources/records/` (docs/workflow.md, "Recording results"):

    {profile}/{run}/seed{S}/record.json    provenance and result, checked against workflow/schemas/record.schema.yaml
    {profile}/{run}/seed{S}/train.json     the run's own train.json
    {profile}/{run}/seed{S}/metrics.json   this seed's entry of eval/{run}/metrics.json (confusion matrix included)
    {profile}/{run}/seed{S}/history/...    the DVCLive training history (train/loss.tsv, train/accuracy.tsv, ...)

Refused: a profile on synthetic data (smoke), a run trained on synthetic data, a run that has not finished training
and evaluation for every seed, and code that was not a clean commit (uncommitted changes other than params.yaml, or
an unknown commit) unless `--allow-dirty`, in which case the record says so, and a record that would replace one
trained with other settings unless `--replace` (a trial of new settings is a profile of its own).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import yaml

from ran.atomic import write_text_atomic
from ran.config import ConfigError, load_params, resolve_profile, run_config, selected_runs

ROOT = Path(__file__).resolve().parents[2]
RECORDS_DIR = Path("workflow/resources/records")
SCHEMA_PATH = ROOT / "workflow" / "schemas" / "record.schema.yaml"
RECORD_VERSION = 1
CONFIG_KEYS = ("dataset", "network", "attention", "learning", "mask", "noise")
TRAINING_SUMMARY = ("iterations", "dtype_policy", "jit", "deterministic_ops", "train_wall_s", "total_wall_s",
                    "images_per_s", "images_per_s_steady", "resumes", "final_train_loss", "final_train_accuracy",
                    "params", "depth", "started_at", "finished_at", "train_images", "weights")


class RecordError(ValueError):
    """A run cannot be recorded; the message names the file and what to do."""


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise RecordError(f"{path} cannot be read as JSON ({error}); rerun the step that writes it") from error
    if not isinstance(value, dict):
        raise RecordError(f"{path} holds a {type(value).__name__}, expected a JSON object")
    return value


def _unfinished(models: Path, evaluation: Path, seeds: list[int]) -> list[str]:
    problems = []
    for seed in seeds:
        if not (models / f"seed{seed}" / "train.json").is_file():
            problems.append(f"seed {seed} has no {models / f'seed{seed}' / 'train.json'} (training not finished)")
    metrics_path = evaluation / "metrics.json"
    if not metrics_path.is_file():
        return problems + [f"{metrics_path} is missing (not evaluated)"]
    metrics = _read_json(metrics_path)
    if metrics.get("status", "evaluated") != "evaluated":
        return problems + [f"{metrics_path} says {metrics.get('status')!r}"]
    evaluated = {entry.get("seed") for entry in metrics.get("seeds", [])}
    problems += [f"seed {seed} is not in {metrics_path}" for seed in seeds if seed not in evaluated]
    return problems


def build_record(profile: str, run: dict, seed: int, train: dict, metrics: dict, allow_dirty: bool) -> dict:
    """record.json of one (profile, run, seed) from its train.json and the run's metrics.json."""
    where = f"{run['run']} seed {seed}"
    data = train.get("data") or {}
    if data.get("synthetic") is not False:
        state = "synthetic data" if data.get("synthetic") else "data of unknown origin (no manifest)"
        raise RecordError(f"{where} was trained on {state}; records hold results on the official CIFAR only")
    if train.get("training", {}).get("name") != profile or metrics.get("profile") != profile:
        raise RecordError(f"{where}: train.json says profile {train.get('training', {}).get('name')!r} and "
                          f"metrics.json {metrics.get('profile')!r}, not {profile!r}")
    code = train.get("code") or {"commit": None, "code_dirty": None, "unknown_because": "train.json predates it"}
    if code.get("code_dirty") is not False and not allow_dirty:
        detail = (f"uncommitted changes to {', '.join(code.get('dirty_paths') or [])}" if code.get("code_dirty")
                  else f"an unknown commit ({code.get('unknown_because', 'no git checkout')})")
        raise RecordError(f"{where} was trained with {detail}; commit and rerun, or pass --allow-dirty to record it "
                          f"anyway (the record then says so)")
    entry = next(s for s in metrics["seeds"] if s.get("seed") == seed)
    return {
        "record_version": RECORD_VERSION,
        "profile": profile,
        "run": run["run"],
        "seed": seed,
        "config": {key: run.get(key) for key in CONFIG_KEYS},
        "result": {"top1_error_pct": entry["top1_error_pct"], "top5_error_pct": entry.get("top5_error_pct"),
                   "num_test": entry["num_test"], "nonfinite_samples": entry.get("nonfinite_samples", 0),
                   "noise_realised": entry.get("noise_realised"),
                   "top1_error_pct_flip_tta": entry.get("top1_error_pct_flip_tta"),
                   "validation_error_pct": entry.get("validation_error_pct")},
        "training": train["training"],
        "summary": {key: train.get(key) for key in TRAINING_SUMMARY},
        "code": {**code, "allowed_dirty": bool(allow_dirty and code.get("code_dirty") is not False)},
        "device": train.get("device"),
        "libraries": train.get("libraries", {}),
        "data": {"verified": data.get("verified"), "train_npz_sha256": data.get("train_npz_sha256"),
                 "test_npz_sha256": metrics.get("test_npz_sha256"), "source_sha256": data.get("source_sha256")},
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def validate_record(record: dict, where: str = "record") -> dict:
    import jsonschema

    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(record), key=lambda e: list(e.path))
    if errors:
        lines = [f"  {'.'.join(map(str, e.absolute_path)) or '<top level>'}: {e.message}" for e in errors]
        raise RecordError(f"{where} does not satisfy {SCHEMA_PATH.name}:\n" + "\n".join(lines))
    return record


def write_entry(target: Path, record: dict, train: dict, seed_metrics: dict, live_dir: Path) -> Path:
    """Fill a staging folder beside `target`, then swap it in, so an entry is never half written."""
    staging = target.with_name(f".{target.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    write_text_atomic(staging / "record.json", json.dumps(record, indent=2) + "\n")
    write_text_atomic(staging / "train.json", json.dumps(train, indent=2) + "\n")
    write_text_atomic(staging / "metrics.json", json.dumps(seed_metrics, indent=2) + "\n")
    history = live_dir / "plots" / "metrics"
    if history.is_dir():
        shutil.copytree(history, staging / "history")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def changed_settings(target: Path, record: dict) -> list[str]:
    """The training settings in which `record` differs from the record already at `target` ([] when none is)."""
    if not (target / "record.json").is_file():
        return []
    before = _read_json(target / "record.json").get("training", {})
    after = record["training"]
    return [f"{key} {before.get(key)!r} -> {after.get(key)!r}" for key in sorted(set(before) | set(after))
            if before.get(key) != after.get(key)]


def record_profile(params: dict, profile: str, results: Path, into: Path, runs: list[str] | None = None,
                   allow_dirty: bool = False, replace: bool = False) -> list[dict]:
    """Validate every (run, seed) first, then write them all; return the records written. A record trained with
    other settings than the one it would replace is refused unless `replace`: a trial of new settings is a profile
    of its own, so the tuning table keeps every trial."""
    training = resolve_profile(params, profile)
    if training["data"] != "official":
        raise RecordError(f"profile {profile!r} trains on {training['data']} data: records hold results on the "
                          f"official CIFAR only (the smoke profile tests the pipeline, it measures nothing)")
    selected = selected_runs(params, profile)
    chosen = runs or selected
    outside = [run_id for run_id in chosen if run_id not in selected]
    if outside:
        raise RecordError(f"profile {profile!r} does not select {outside}; it selects {selected}")
    seeds = list(params["seeds"])
    unfinished = {run_id: _unfinished(results / "models" / run_id, results / "eval" / run_id, seeds)
                  for run_id in chosen}
    unfinished = {run_id: problems for run_id, problems in unfinished.items() if problems}
    if unfinished:
        lines = [f"  {run_id}: {'; '.join(problems)}" for run_id, problems in unfinished.items()]
        raise RecordError(f"{len(unfinished)} run(s) of profile {profile!r} are not finished in {results}:\n"
                          + "\n".join(lines) + "\nfinish them (rerun the workflow) or choose the finished ones "
                          "with --runs")
    staged = []
    for run_id in chosen:
        metrics = _read_json(results / "eval" / run_id / "metrics.json")
        for seed in seeds:
            seed_dir = results / "models" / run_id / f"seed{seed}"
            train = _read_json(seed_dir / "train.json")
            record = build_record(profile, run_config(params, run_id), seed, train, metrics, allow_dirty)
            validate_record(record, f"the record of {run_id} seed {seed}")
            seed_metrics = {**{k: v for k, v in metrics.items() if k != "seeds"},
                            "seeds": [s for s in metrics["seeds"] if s.get("seed") == seed]}
            target = into / profile / run_id / f"seed{seed}"
            changed = changed_settings(target, record)
            if changed and not replace:
                raise RecordError(f"{target} holds a record trained with other settings ({', '.join(changed)}); "
                                  f"record the new settings under a profile of their own (a trial), or pass "
                                  f"--replace to overwrite it")
            staged.append((target, record, train, seed_metrics, seed_dir / "live"))
    for target, record, train, seed_metrics, live in staged:
        write_entry(target, record, train, seed_metrics, live)
    return [record for _, record, *_ in staged]


def load_records(into: str | Path) -> list[dict]:
    """Every record.json under `into` (validated; none when the folder is missing), each with its `history` folder
    path attached as `_history`."""
    records = []
    for path in sorted(Path(into).glob("*/*/seed*/record.json")):
        record = validate_record(_read_json(path), str(path))
        records.append({**record, "_history": str(path.parent / "history")})
    return records


def code_note(code: dict) -> str:
    """'code 12aeb55 (params.yaml modified)', 'code 12aeb55 (DIRTY, allowed: src/x.py)' or 'code unknown (why)'."""
    if not code.get("commit"):
        return f"code unknown ({code.get('unknown_because', 'no commit recorded')})"
    notes = [f"DIRTY, allowed: {', '.join(code.get('dirty_paths') or [])}"] if code.get("allowed_dirty") else []
    notes += ["params.yaml modified"] if code.get("params_modified") else []
    return f"code {code['commit'][:7]}" + (f" ({'; '.join(notes)})" if notes else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ran record", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    parser.add_argument("--profile", required=True, help="the profile whose runs are recorded")
    parser.add_argument("--results", help="the profile's results folder (default: results/PROFILE)")
    parser.add_argument("--runs", nargs="+", help="record only these runs (default: every run the profile selects)")
    parser.add_argument("--into", default=str(RECORDS_DIR), help="records folder (default: %(default)s)")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="record runs whose code was not a clean commit (the record says so)")
    parser.add_argument("--replace", action="store_true",
                        help="overwrite a record although it was trained with other settings (losing that trial)")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
        results = Path(args.results or f"results/{args.profile}")
        records = record_profile(params, args.profile, results, Path(args.into), args.runs, args.allow_dirty,
                                 args.replace)
    except (ConfigError, RecordError) as error:
        parser.exit(1, f"ran record: {error}\n")
    for record in records:
        summary = record["summary"]
        print(f"record: {record['profile']}/{record['run']}/seed{record['seed']}: top-1 error "
              f"{record['result']['top1_error_pct']:.2f}% after {summary['iterations']} iterations on "
              f"{record['device']} ({summary['images_per_s'] or 0:.1f} images/s), {code_note(record['code'])}",
              file=sys.stderr)
    print(f"ran record: {len(records)} record(s) written under {Path(args.into) / args.profile}")
    return 0
