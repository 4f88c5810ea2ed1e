"""`ran train`: train every seed of one run of params.yaml into `OUT/seed{S}/` (Sec. 4.1 protocol, resumable).

    ran train --params params.yaml --profile P --run R --prepared data/P/prepared/D \
        --noisy data/P/noisy/D --out results/P/models/R --checkpoints results/P/checkpoints/R

Seeds run one after another (`--seeds S` trains one: Snakemake's job per seed); a seed whose `train.json` already
records the same configuration is skipped, and an interrupted seed resumes from `--checkpoints DIR/seed{S}/`. A run
that the profile does not select (`profiles.P.runs`) trains nothing: OUT gets only `not_selected.json`, a note for a
reader, so both engines keep a train job for every run of the matrix whatever the selection.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from ran.data import NUM_CLASSES

NO_TRAINING = "RAN_NO_TRAINING"  # set (to anything but "" or 0): a seed without a trained model is an error


class TrainingRefused(RuntimeError):
    """A seed would train while RAN_NO_TRAINING is set (a rebuild from stored models)."""


def no_training() -> bool:
    """Whether this process rebuilds from stored models only (`RAN_NO_TRAINING`, docs/workflow.md)."""
    return os.environ.get(NO_TRAINING, "").strip() not in ("", "0")


def refuse_training(run_id: str, seed: int, seed_dir: Path) -> None:
    """Stop in one line naming the run, where its model should be, and the ways out."""
    raise TrainingRefused(f"{run_id} seed {seed} has no trained model in {seed_dir} and {NO_TRAINING} is set "
                          f"(rebuild without training): fetch it (`dvc pull`, docs/workflow.md), or unset "
                          f"{NO_TRAINING} to train it with this same command")


def network_factory(run: dict, weight_decay: float):
    """A zero-argument builder of the run's network (called under the training dtype policy)."""
    from ran.models import build_network

    def build():
        return build_network(run["network"], NUM_CLASSES[run["dataset"]], attention=run["attention"],
                             learning=run["learning"], mask=run["mask"], weight_decay=weight_decay)

    return build


def describe_network(network) -> dict:
    """Parameter count and depth of the bare network (not the input layers around it)."""
    from ran.models import count_params, network_depth

    return {"params": int(count_params(network)), "depth": int(network_depth(network))}


def training_labels(run: dict, labels, noisy_dir: str | None, seed: int):
    """Clean labels, or the noisy labels of (noise level, seed) with their realised fraction (decision 4)."""
    if not run["noise"]:
        return labels, None
    from ran.data.noise import load_noisy_labels, noisy_labels_path

    if noisy_dir is None:
        raise ValueError(f"run {run['run']!r} has label noise {run['noise']}: pass --noisy with `ran noise`'s folder")
    noisy = load_noisy_labels(noisy_dir, run["noise"], seed)
    if len(noisy) != len(labels):
        raise ValueError(f"noisy labels for seed {seed} hold {len(noisy)} entries, the training set {len(labels)}")
    summary = json.loads(noisy_labels_path(noisy_dir, run["noise"], seed).with_suffix(".json").read_text())
    return noisy, float(summary["realised_fraction"])


def data_provenance(prepared: str | Path) -> dict:
    """What the run trains on: sha256 of the prepared training split, and the record files it came from."""
    from ran.data.archive import sha256_file
    from ran.data.prepare import MANIFEST

    path = Path(prepared) / MANIFEST
    manifest = json.loads(path.read_text()) if path.is_file() else {}
    return {"dataset": manifest.get("dataset"), "synthetic": manifest.get("synthetic"),
            "verified": manifest.get("verified", f"unknown ({path} holds no verification)"),
            "train_npz_sha256": sha256_file(Path(prepared) / "train.npz"),
            "source_sha256": manifest.get("source_sha256")}


def without_cadence(training: dict) -> dict:
    """The training keys that change the weights: how often a run logs or checkpoints does not."""
    from ran.train.checkpoint import CADENCE_KEYS

    return {key: value for key, value in training.items() if key not in CADENCE_KEYS}


def is_finished(seed_dir: Path, run: dict, training: dict) -> bool:
    """True when `train.json` exists and records this very run and training configuration."""
    path = seed_dir / "train.json"
    if not (path.is_file() and (seed_dir / "model.keras").is_file()):
        return False
    done = json.loads(path.read_text())
    same_run = all(done.get(key) == value for key, value in run.items())
    return same_run and without_cadence(done.get("training") or {}) == without_cadence(json.loads(json.dumps(training)))


def train_run(run: dict, training: dict, seeds: list[int], prepared: str, noisy: str | None, out: str,
              checkpoints: str, build=None, describe=None, progress: bool = True) -> list[dict]:
    """Train each seed of `run`; return the train.json records (finished seeds are read back, not retrained).

    `build(run, weight_decay) -> () -> network` and `describe(network) -> dict` default to the paper's networks.
    """
    from ran.data.prepare import load_split
    from ran.train.data import validation_split

    if run["dataset"] not in NUM_CLASSES:
        raise ValueError(f"dataset must be one of {sorted(NUM_CLASSES)}, got {run['dataset']!r}")
    build, describe = build or network_factory, describe or describe_network
    images, clean = load_split(prepared, "train")
    data = data_provenance(prepared)
    kept, held = validation_split(clean, int(training.get("validation", 0)))  # the held-out images never train
    validation = (images[held], clean[held]) if len(held) else None
    records = []
    for seed in seeds:
        seed_dir = Path(out) / f"seed{seed}"
        if is_finished(seed_dir, run, training):
            print(f"train: {run['run']} seed {seed} already finished in {seed_dir}; skipped", file=sys.stderr)
            records.append(json.loads((seed_dir / "train.json").read_text()))
            continue
        if no_training():
            refuse_training(run["run"], seed, seed_dir)
        from ran.runtime import load_framework

        load_framework()  # only when a seed trains: TensorFlow out of a JAX job; a GPU it cannot see stops here
        from ran.train.loop import train_seed

        labels, realised = training_labels(run, clean, noisy, seed)
        train_images, labels = (images[kept], labels[kept]) if len(held) else (images, labels)
        records.append(train_seed(build(run, training["weight_decay"]), train_images, labels, training, seed,
                                  seed_dir, Path(checkpoints) / f"seed{seed}",
                                  record={**run, "noise_realised": realised, "data": data},
                                  describe=describe, progress=progress, validation=validation))
    return records


@contextlib.contextmanager
def hold_seed_locks(checkpoints: str | Path, seeds: list[int]):
    """The lock of each seed's checkpoint folder, for the whole call: one trainer per seed, whichever engine started
    it (Snakemake trains each seed as a job of its own, DVC a run's seeds in one stage)."""
    from ran.locks import hold_lock

    with contextlib.ExitStack() as stack:
        for seed in seeds:
            stack.enter_context(hold_lock(Path(checkpoints) / f"seed{seed}"))
        yield


def interrupted(checkpoints: str) -> None:
    """Say where the checkpoint is and leave at once: a normal interpreter shutdown after a KeyboardInterrupt inside
    TensorFlow prints a hundred lines of tracebacks and 'Exception ignored' blocks that look like a crash."""
    print(f"ran train: interrupted; the last checkpoint is in {checkpoints}: rerun the same command to resume from "
          f"it", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(130)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ran train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    parser.add_argument("--profile", help="profile (default: the params file's `profile` key)")
    parser.add_argument("--run", required=True, help="run id, a key of `runs` in params.yaml")
    parser.add_argument("--prepared", required=True, help="prepared dataset folder (train.npz)")
    parser.add_argument("--noisy", help="`ran noise` output folder (needed by runs with label noise)")
    parser.add_argument("--out", required=True, help="run folder: seed{S}/model.keras, train.json, live/")
    parser.add_argument("--checkpoints", required=True, help="checkpoint folder (seed{S}/), removed when done")
    parser.add_argument("--seeds", type=int, nargs="+", help="override params.yaml `seeds`")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    from ran.config import ConfigError, load_params, not_selected_reason, resolve_profile, run_config, selected_runs
    from ran.data import DataError
    from ran.data.skipped import NOT_SELECTED_FILE, mark_not_selected
    from ran.locks import LockHeld
    from ran.train import TrainingDiverged

    try:
        params = load_params(args.params)
        training, run = resolve_profile(params, args.profile), run_config(params, args.run)
        reason = not_selected_reason(params, training["name"], run["run"])
        if reason is not None:
            path = mark_not_selected(args.out, run["run"], training["name"], selected_runs(params, training["name"]),
                                     reason)
            print(f"train: {run['run']} is not selected by profile {training['name']!r}: nothing to train ({path})")
            return 0
        from ran.runtime import prepare_runtime

        seeds = args.seeds or params["seeds"]
        with hold_seed_locks(args.checkpoints, seeds):  # a second engine on these seeds stops at once
            (Path(args.out) / NOT_SELECTED_FILE).unlink(missing_ok=True)
            # before Keras loads: a GPU slot, memory as needed, logs, the deterministic CPU path
            prepare_runtime(params.get("jobs_per_gpu", 1), training["mixed_precision"])
            records = train_run(run, training, seeds, args.prepared, args.noisy, args.out, args.checkpoints,
                                progress=not args.no_progress)
    except (ConfigError, DataError, ValueError, FileNotFoundError, TrainingDiverged, LockHeld,
            TrainingRefused) as error:
        parser.exit(1, f"ran train: {error}\n")
    except KeyboardInterrupt:  # Ctrl-C: one line, not TensorFlow's traceback and its shutdown noise
        interrupted(args.checkpoints)
    except OSError as error:  # e.g. the disk is full: one line, and the last checkpoint is still there
        parser.exit(1, f"ran train: cannot write {error.filename or 'a file'}: {error.strerror or error}. Free the "
                       f"space (or fix the permissions) and rerun the same command: training resumes from the last "
                       f"checkpoint in {args.checkpoints}.\n")
    for record in records:
        print(f"train: {run['run']} seed {record['seed']}: final train loss {record['final_train_loss']:.4f}, "
              f"{record['images_per_s'] or 0:.1f} images/s over {record['train_wall_s']:.0f} s")
    return 0
