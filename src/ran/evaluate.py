"""`ran evaluate`: test error of each seed's final model, per-class error, confusion matrix, soft masks.

    ran evaluate --params params.yaml --profile P --run R --models results/P/models/R \
        --prepared data/P/prepared/D --out results/P/eval/R

The reported error is that of the final weights after the last iteration; the test set never picks a checkpoint
(decision 3). Writes `metrics.json` (format in docs/architecture.md), `masks.npz` (Fig. 1-style masks) and
`score.json`, the few numbers `dvc metrics show` lists (so that its table fits a terminal). For a run the profile does
not select (params.yaml says, not a file in the model folder), they say so ("status": "not selected", no masks, zero
seeds) and nothing is loaded.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import zipfile
from pathlib import Path

import numpy as np

from ran.atomic import write_bytes_atomic

MASK_IMAGES = 8
MODULE_KEY = re.compile(r"stage(\d+)_module(\d+)")


def classification_metrics(logits: np.ndarray, labels: np.ndarray, num_classes: int, top5: bool) -> dict:
    """Top-1 (and top-5) error in %, per-class top-1 error in % (None for an absent class), confusion[true][pred].

    Top-5 counts a sample right when fewer than 5 classes score strictly above its true class (ties favour it).
    A sample whose logits are not all finite counts as an error at top-1 and top-5 (it names no class) and is
    counted in `nonfinite_samples`; the confusion matrix holds the finite samples only. A barely trained network
    (the smoke profile's few steps, whose batch-norm statistics are still the initial ones) can overflow at
    inference; that must show as an error rate, not abort the workflow.
    """
    logits, labels = np.asarray(logits), np.asarray(labels, dtype=np.int64)
    if logits.shape != (len(labels), num_classes):
        raise ValueError(f"logits have shape {logits.shape}, expected ({len(labels)}, {num_classes})")
    finite = np.all(np.isfinite(logits), axis=1)
    predictions = np.where(finite, np.nan_to_num(logits).argmax(axis=1), -1)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels[finite], predictions[finite]), 1)
    counts = np.bincount(labels, minlength=num_classes)
    correct = np.bincount(labels[predictions == labels], minlength=num_classes)
    per_class = [100.0 * (count - correct[c]) / count if count else None for c, count in enumerate(counts)]
    true_scores = logits[np.arange(len(labels)), labels]
    within_top5 = finite & ((logits > true_scores[:, None]).sum(axis=1) < 5)  # < 5 classes score above the truth
    return {
        "top1_error_pct": 100.0 * float(np.mean(predictions != labels)),
        "top5_error_pct": 100.0 * float(np.mean(~within_top5)) if top5 else None,
        "per_class_error_pct": per_class,
        "confusion_matrix": confusion.tolist(),
        "num_test": len(labels),
        "nonfinite_samples": int(np.sum(~finite)),
    }


def predict_logits(model, images: np.ndarray, batch_size: int) -> np.ndarray:
    """Logits of the final weights, through one compiled inference function at one fixed batch shape.

    Called eagerly, JAX compiles every primitive of the network on first use (a 2-step Attention-56 took 70 s to
    evaluate on JAX, 4 s on TensorFlow), and a TensorFlow GPU without machine code for the card JIT-compiles each
    eager kernel. `predict_on_batch` runs Keras's predict function instead (jit on JAX and on a GPU, a TF graph on
    a CPU: Keras's auto jit, as `ran train`'s), traced once and cached on the model: every batch, the last one
    padded to the same shape and its padding dropped, and the flip view's pass, reuse it.
    """
    if len(images) == 0:
        raise ValueError("predict_logits got no images: the test split is empty; rerun `ran prepare`")
    fixed = min(batch_size, len(images))  # a smaller set is one batch of its own size, not padded to the batch
    outputs = []
    for start in range(0, len(images), fixed):
        batch = images[start:start + fixed]
        padding = fixed - len(batch)
        if padding:  # inference mode: a padded row changes no other row's logits
            batch = np.concatenate([batch, np.zeros((padding, *batch.shape[1:]), dtype=batch.dtype)])
        outputs.append(np.asarray(model.predict_on_batch(batch))[:fixed - padding])
    return np.concatenate(outputs)


def flip_tta_logits(model, images: np.ndarray, batch_size: int, single_view: np.ndarray) -> np.ndarray:
    """Log of the mean softmax of the image and its mirror image: the flip test-time augmentation reported beside
    the single view (never compared with the paper, whose numbers are single-view)."""
    mirrored = predict_logits(model, np.ascontiguousarray(images[:, :, ::-1, :]), batch_size)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        probabilities = [np.exp(z - z.max(axis=1, keepdims=True)) for z in (single_view, mirrored)]
        mean = sum(p / p.sum(axis=1, keepdims=True) for p in probabilities) / 2
        return np.log(mean)


def summarise(values: list[float]) -> dict:
    """Mean, sample standard deviation (0 for one value) and count over seeds."""
    values = np.asarray(values, dtype=np.float64)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "n": len(values)}


def load_trained_model(path: str | Path):
    """A `ran train` model.keras (its custom layers registered first), uncompiled."""
    import keras

    import ran.train.layers  # noqa: F401  (registers PixelMeanSubtraction, PadCropFlip)

    try:
        import ran.models  # noqa: F401  (registers the network's layers)
    except ImportError:
        pass
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} not found: run `ran train` first")
    try:
        return keras.saving.load_model(path, compile=False)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, OSError, EOFError,
            zipfile.BadZipFile) as error:
        # Keras says "File not found" of a damaged archive and TypeError of an edited config: tell them apart by
        # the archive's own CRCs, and a safe-mode refusal by Keras's wording (it has no exception class of its own).
        try:
            with zipfile.ZipFile(path) as archive:
                damaged = archive.testzip() is not None
        except (OSError, EOFError, zipfile.BadZipFile):
            damaged = True
        chain, cause = [], error
        while cause is not None:
            chain.append(str(cause))
            cause = cause.__cause__ or cause.__context__
        innermost = str(error).rsplit("Exception encountered:", 1)[-1].strip()  # Keras nests its TypeErrors
        reason = f"{type(error).__name__}: {(innermost.splitlines() or [''])[0][:160]}"
        if damaged:
            raise ValueError(f"{path} cannot be read as a Keras model ({reason}); it is truncated or corrupt: "
                             f"delete its seed folder and rerun `ran train` for this run") from error
        if any("safe_mode" in text for text in chain):
            raise ValueError(f"{path} was refused as unsafe by Keras safe mode: its config asks to load Python code "
                             f"(e.g. a Lambda layer), which would run arbitrary code; `ran train` never writes such "
                             f"layers, so do not load it: replace it with a model you trained (rerun `ran train` for "
                             f"this run)") from error
        raise ValueError(f"{path}: its model config (config.json) does not match this project's layers ({reason}); "
                         f"it was edited or written by other code: retrain (delete its seed folder and rerun "
                         f"`ran train` for this run) or restore the original file") from error


def inner_network(model):
    """The network inside the trained model (the one nested keras.Model between input layers and logits)."""
    import keras

    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(nested) != 1:
        raise ValueError(f"{model.name} holds {len(nested)} nested networks, expected exactly 1")
    return nested[0]


def mask_arrays(model, images: np.ndarray, soft_masks, has_attention: bool = True) -> dict[str, np.ndarray]:
    """`images` plus every module's channel-mean soft mask `stage{s}_module{m}` (K, h, w), and `stage{s}` = the
    first module of stage s; K = 0 and no masks for a network without attention modules (ResNet-164)."""
    if not has_attention:
        return {"images": np.zeros((0, *images.shape[1:]), dtype=np.uint8)}
    masks = {key: np.asarray(value, dtype=np.float32) for key, value in soft_masks(model, images).items()}
    if not masks:
        return {"images": np.zeros((0, *images.shape[1:]), dtype=np.uint8)}
    arrays = {"images": np.asarray(images, dtype=np.uint8), **masks}
    firsts = {}
    for key in masks:
        match = MODULE_KEY.fullmatch(key)
        if match and int(match[2]) < firsts.get(match[1], (10**9, ""))[0]:
            firsts[match[1]] = (int(match[2]), key)
    arrays |= {f"stage{stage}": masks[key] for stage, (_, key) in firsts.items()}
    return arrays


def read_json_object(path: Path, remedy: str) -> dict:
    """A JSON object from `path`; a truncated or wrong file is an error naming it and the remedy."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} cannot be read as JSON ({error}): {remedy}") from error
    if not isinstance(value, dict):
        raise ValueError(f"{path} holds a JSON {type(value).__name__}, not an object: {remedy}")
    return value


def score(metrics: dict) -> dict:
    """The numbers of `metrics` worth a column in `dvc metrics show`: top-1 (and top-5) error mean and std over
    `seeds` evaluated seeds (0 for a run not evaluated)."""
    if metrics.get("status") != "evaluated":
        return {"seeds": 0}
    summary = {"top1_err": metrics["top1_error_pct"]["mean"], "top1_std": metrics["top1_error_pct"]["std"]}
    if metrics.get("top5_error_pct"):
        summary |= {"top5_err": metrics["top5_error_pct"]["mean"], "top5_std": metrics["top5_error_pct"]["std"]}
    return summary | {"seeds": metrics["top1_error_pct"]["n"]}


def write_outputs(out: str | Path, metrics: dict, masks: dict[str, np.ndarray]) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **masks)
    write_bytes_atomic(out / "masks.npz", buffer.getvalue())
    write_bytes_atomic(out / "metrics.json", (json.dumps(metrics, indent=2) + "\n").encode())
    write_bytes_atomic(out / "score.json", (json.dumps(score(metrics)) + "\n").encode())
    return metrics


def run_summary(run: dict) -> dict:
    return {key: run.get(key) for key in ("dataset", "network", "attention", "learning", "mask", "noise")}


def evaluate_run(run: dict, seeds: list[int], models_dir: str, prepared: str, out: str, profile: str | None = None,
                 describe=None, soft_masks=None, batch_size: int = 500, progress: bool = True,
                 not_selected: str | None = None) -> dict:
    """Evaluate each seed's `model.keras` on the test split; write `metrics.json`, `masks.npz` and `score.json`
    into `out`. `not_selected` (the reason a profile leaves the run out) writes the "not run" result instead."""
    from tqdm import tqdm

    from ran.data.archive import sha256_file
    from ran.data.prepare import load_split
    from ran.train.run import NUM_CLASSES, describe_network

    if not_selected is not None:
        metrics = {"run": run["run"], "profile": profile, "status": "not selected", "reason": not_selected,
                   "config": run_summary(run)}
        return write_outputs(out, metrics, {"images": np.zeros((0, 32, 32, 3), dtype=np.uint8)})

    describe = describe or describe_network
    if soft_masks is None:
        from ran.models import soft_masks
    images, labels = load_split(prepared, "test")
    num_classes, per_seed, masks, summary = NUM_CLASSES[run["dataset"]], [], None, {}
    for seed in tqdm(sorted(seeds), desc=f"evaluate {run['run']}", unit="seed", disable=not progress):
        seed_dir = Path(models_dir) / f"seed{seed}"
        for name in ("model.keras", "train.json"):
            if not (seed_dir / name).is_file():
                raise FileNotFoundError(f"{seed_dir / name} not found: run `ran train` for {run['run']} seed {seed}")
        record = read_json_object(seed_dir / "train.json", "rerun `ran train` for this run")
        model = load_trained_model(seed_dir / "model.keras")
        logits = predict_logits(model, images, batch_size)
        scores = classification_metrics(logits, labels, num_classes, top5=num_classes > 10)
        tta = classification_metrics(flip_tta_logits(model, images, batch_size, logits), labels, num_classes,
                                     top5=False)
        per_seed.append({"seed": seed, **scores, "top1_error_pct_flip_tta": tta["top1_error_pct"],
                         "validation_error_pct": (record.get("validation") or {}).get("error_pct"),
                         "noise_realised": record.get("noise_realised"),
                         "train_images_per_s": record.get("images_per_s"), "train_wall_s": record.get("train_wall_s"),
                         "train_precision": record.get("dtype_policy"), "train_device": record.get("device")})
        if masks is None:  # the first (smallest) seed
            summary = describe(inner_network(model))
            profile = profile or record.get("training", {}).get("name")
            masks = mask_arrays(model, images[:MASK_IMAGES], soft_masks, has_attention=run["attention"] is not None)
    metrics = {
        "run": run["run"], "profile": profile, "status": "evaluated", "config": run_summary(run),
        "test_npz_sha256": sha256_file(Path(prepared) / "test.npz"),
        "params": summary.get("params"), "depth": summary.get("depth"),
        "top1_error_pct": summarise([s["top1_error_pct"] for s in per_seed]),
        "top5_error_pct": summarise([s["top5_error_pct"] for s in per_seed]) if num_classes > 10 else None,
        "top1_error_pct_flip_tta": summarise([s["top1_error_pct_flip_tta"] for s in per_seed]),
        "seeds": per_seed,
    }
    return write_outputs(out, metrics, masks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ran evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    parser.add_argument("--run", required=True, help="run id, a key of `runs` in params.yaml")
    parser.add_argument("--models", required=True, help="`ran train` output folder (seed{S}/model.keras)")
    parser.add_argument("--prepared", required=True, help="prepared dataset folder (test.npz)")
    parser.add_argument("--out", required=True, help="folder for metrics.json, masks.npz and score.json")
    parser.add_argument("--profile", help="profile (default: the params file's `profile` key)")
    parser.add_argument("--seeds", type=int, nargs="+", help="override params.yaml `seeds`")
    parser.add_argument("--batch-size", type=int, default=500, help="inference batch (default: %(default)s)")
    args = parser.parse_args(argv)
    from ran.config import ConfigError, load_params, not_selected_reason, run_config
    from ran.data import DataError

    try:
        params = load_params(args.params)
        run, profile = run_config(params, args.run), args.profile or params["profile"]
        # The profile decides, never a marker left in the model folder by an earlier selection.
        reason = not_selected_reason(params, profile, run["run"])
        if reason is None:  # a run that trained: load Keras on a GPU slot of its own
            from ran.runtime import load_framework, prepare_runtime

            prepare_runtime(params.get("jobs_per_gpu", 1))
            load_framework()  # TensorFlow out of a JAX job; a GPU machine whose framework sees none stops here
        metrics = evaluate_run(run, args.seeds or params["seeds"], args.models, args.prepared, args.out,
                               profile=profile, batch_size=args.batch_size, not_selected=reason)
    except (ConfigError, DataError, ValueError, FileNotFoundError) as error:
        parser.exit(1, f"ran evaluate: {error}\n")
    if metrics["status"] == "not selected":
        print(f"evaluate: {run['run']}: not run ({metrics['reason']})")
        return 0
    for seed in metrics["seeds"]:
        if seed["nonfinite_samples"]:
            print(f"ran evaluate: warning: {run['run']} seed {seed['seed']}: {seed['nonfinite_samples']} of "
                  f"{seed['num_test']} test images gave NaN/Inf logits and count as errors", file=sys.stderr)
    top1 = metrics["top1_error_pct"]
    tta = metrics["top1_error_pct_flip_tta"]["mean"]
    print(f"evaluate: {run['run']}: top-1 error {top1['mean']:.2f}% ± {top1['std']:.2f} (n={top1['n']}); with flip "
          f"test-time augmentation {tta:.2f}%")
    return 0
