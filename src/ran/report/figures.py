"""`ran figures`: per-table charts (ours vs paper), noisy-label robustness, parameters vs error, training curves
and attention-mask pictures, as PNG + PDF. A run without results gets a placeholder saying so, never a gap.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

from ran.config import ConfigError, all_runs, load_params, resolve_profile
from ran.data import DATASET_LABELS
from ran.records import RECORDS_DIR, load_records
from ran.report.comparison import REFERENCE_PROFILE
from ran.report.curves import error_vs_images, recorded_curves, training_curves, training_overview
from ran.report.formats import Table
from ran.report.io import load_history, load_paper, seed_dirs
from ran.report.masks import mask_grid
from ran.report.outputs import attention_runs
from ran.report.plotting import OURS_STYLE, PAPER_STYLE, marker_boxes, new_figure, place_labels, save_figure
from ran.report.tables import build_tables, collect_metrics, paper_error_by_run

PARAMS_TICKS_M = (0.5, 1, 2, 5, 10, 20, 50)


def _float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def row_label(table: Table, row: dict) -> str:
    """The row's descriptive cells (the text columns before the first comparison column)."""
    parts = []
    for column in table.text_columns():
        if column.key.endswith("paper"):
            break
        if column.key == "noise_realised":  # an outcome of our run, not a description of the row
            continue
        parts.append(str(row.get(column.key, "")))
    return " ".join(parts)


def _dot_panel(ax, labels: list[str], rows: list[dict], prefix: str = "") -> None:
    """Paper (hollow diamonds) and ours (dots with std bars) per row; rows without ours say why."""
    ys = np.arange(len(rows))[::-1]
    paper = [_float(r.get(f"{prefix}paper")) for r in rows]
    ax.plot([p if p is not None else np.nan for p in paper], ys, **PAPER_STYLE)
    done = [(y, r) for y, r in zip(ys, rows, strict=True) if r.get(f"{prefix}ours_mean") is not None]
    if done:
        ax.errorbar([r[f"{prefix}ours_mean"] for _, r in done], [y for y, _ in done],
                    xerr=[r.get(f"{prefix}ours_std") or 0.0 for _, r in done], **OURS_STYLE)
    for y, r in zip(ys, rows, strict=True):
        if r.get(f"{prefix}ours_mean") is None:
            # outside the axes on the right, so the note never covers a paper marker
            ax.annotate(str(r.get(f"{prefix}ours")), (1.02, y), xycoords=("axes fraction", "data"), ha="left",
                        va="center", fontsize=7, color="0.45", annotation_clip=False)
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("top-1 test error (%)")
    ax.grid(axis="x", alpha=0.3)


def compare_chart(table: Table, stem: str | Path) -> list[Path]:
    """One dot chart per paper table: the paper's error and ours for each row."""
    labels = [row_label(table, row) for row in table.rows]
    prefixes = [f"{d}_" for d in DATASET_LABELS] if table.name == "table6" else [""]
    fig, axes = new_figure(ncols=len(prefixes), width=5.2 * len(prefixes), height=1.2 + 0.38 * len(table.rows))
    for ax, prefix in zip(axes[0], prefixes, strict=True):
        _dot_panel(ax, labels, table.rows, prefix)
        if prefix:
            ax.set_title(DATASET_LABELS[prefix.rstrip("_")], fontsize=9)
    fig.suptitle(f"{table.title}: ours vs paper")
    fig.tight_layout()
    # below the panels, so it never hides a marker
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2,
               fontsize=8, frameon=False)
    return save_figure(fig, stem)


def noise_chart(table5: Table, stem: str | Path) -> list[Path]:
    """Error against label-noise level, one colour per model: paper dashed, ours solid with std bars."""
    fig, axes = new_figure(width=5.5, height=3.8)
    ax = axes[0, 0]
    for index, model in enumerate(dict.fromkeys(r["model"] for r in table5.rows)):
        rows = sorted((r for r in table5.rows if r["model"] == model), key=lambda r: r["noise_level"])
        color = f"C{index}"
        ax.plot([r["noise_level"] for r in rows], [_float(r["paper"]) for r in rows], "--", marker="D",
                markerfacecolor="white", color=color, label=f"{model}, paper")
        ours = [r for r in rows if r.get("ours_mean") is not None]
        if ours:
            ax.errorbar([r["noise_level"] for r in ours], [r["ours_mean"] for r in ours],
                        yerr=[r.get("ours_std") or 0.0 for r in ours], fmt="-o", color=color, capsize=3,
                        label=f"{model}, ours")
        else:
            ax.plot([], [], "-o", color=color, label=f"{model}, ours: not run")
    ax.set_xlabel("label noise level (1 − r)")
    ax.set_ylabel("top-1 test error (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Table 5: robustness to noisy labels (CIFAR-10)")
    return save_figure(fig, stem)


def _bar_boxes(ax, ours: list[tuple[float, float, float]]) -> list:
    """Display-space boxes of our points with their std bars, which paper labels must not cover."""
    from matplotlib.transforms import Bbox

    markers, bars = marker_boxes(ax, [(x, mean) for x, mean, _ in ours]), []
    for (x, mean, std), box in zip(ours, markers, strict=True):
        (_, low), (_, high) = ax.transData.transform([(x, mean - std), (x, mean + std)])
        bars.append(Bbox.from_extents(box.x0, min(low, box.y0), box.x1, max(high, box.y1)))
    return markers + bars


def params_error_figure(table6: Table):
    """The open figure of params_error_chart, so tests can measure where its labels went."""
    fig, axes = new_figure(ncols=2, width=10, height=4)
    panels = []
    for ax, (dataset, label) in zip(axes[0], DATASET_LABELS.items(), strict=True):
        paper, names, ours = [], [], []
        for row in table6.rows:
            paper_m, paper_err = _float(row.get("params_paper")), _float(row.get(f"{dataset}_paper"))
            if paper_m is not None and paper_err is not None:
                ax.plot(paper_m, paper_err, **{**PAPER_STYLE, "label": None})
                paper.append((paper_m, paper_err))
                names.append(row["model"])
            count, mean = row.get("params_ours_count"), row.get(f"{dataset}_ours_mean")
            if count and mean is not None:
                std = row.get(f"{dataset}_ours_std") or 0.0
                ax.errorbar(count / 1e6, mean, yerr=std, **{**OURS_STYLE, "label": None})
                ours.append((count / 1e6, mean, std))
                if paper_m is not None and paper_err is not None:
                    ax.plot([paper_m, count / 1e6], [paper_err, mean], ":", color="0.6", linewidth=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(PARAMS_TICKS_M))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("parameters (millions, log scale)")
        ax.set_ylabel("top-1 test error (%)")
        ax.set_title(f"{label} (Table 6)")
        ax.grid(alpha=0.3)
        panels.append((ax, paper, names, ours))
    axes[0, 0].plot([], [], **PAPER_STYLE)
    axes[0, 0].errorbar([], [], **OURS_STYLE)
    fig.tight_layout()
    # below the panels, where it covers neither a marker nor a label
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2,
               fontsize=8, frameon=False)
    # Labels last, on the final layout: neighbours (ResNet-164 1.7M and Attention-92 1.9M, ResNet-1001 10.3M and
    # WRN-16-8 11.0M) would otherwise collide, and points at the frame would push theirs outside it.
    fig.canvas.draw()
    for ax, paper, names, ours in panels:
        place_labels(ax, paper, names, obstacles=_bar_boxes(ax, ours))
    return fig


def params_error_chart(table6: Table, stem: str | Path) -> list[Path]:
    """Parameters against error per dataset: every Table 6 row from the paper, ours where we ran it."""
    return save_figure(params_error_figure(table6), stem)


def class_labels(prepared_dir: str | Path | None, dataset: str, count: int) -> list[str] | None:
    """Class names of the first `count` test images, when the prepared data is at hand (optional)."""
    if prepared_dir is None:
        return None
    folder = Path(prepared_dir) / dataset
    test, manifest = folder / "test.npz", folder / "manifest.json"
    if not (test.is_file() and manifest.is_file()):
        return None
    names = next((v for k, v in json.loads(manifest.read_text()).items() if "class" in k and isinstance(v, list)
                  and v and all(isinstance(x, str) for x in v)), None)
    with np.load(test) as data:
        labels = data["labels"][:count]
    return [names[i] if names and i < len(names) else str(i) for i in labels]


def load_masks(eval_dir: str | Path, run_id: str) -> dict:
    path = Path(eval_dir) / run_id / "masks.npz"
    if not path.is_file():
        return {}
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def paper_budget(params: dict) -> int:
    """Training images of one run under the paper's protocol (160k iterations x batch 64 = 10.24M)."""
    reference = resolve_profile(params, REFERENCE_PROFILE)
    return int(reference["iterations"]) * int(reference["batch_size"])


def recorded_figures(params: dict, paper: dict, records: list[dict], out) -> list[Path]:
    """The figures of the recorded runs (the report's recorded section and the README)."""
    paper_error = paper_error_by_run(paper["cifar"], all_runs(params))
    return (recorded_curves(list(records), paper_error, Path(out) / "recorded_curves")
            + error_vs_images(list(records), paper_error, paper_budget(params), Path(out) / "recorded_error_vs_images"))


def make_figures(params: dict, paper: dict, profile: str, eval_dir, models_dir, prepared_dir, out,
                 records: list[dict] = ()) -> list[str]:
    """Draw every figure of ran.report.outputs(params) into `out`; return notes on what was missing."""
    out, notes = Path(out), []
    metrics = collect_metrics(params, eval_dir, profile)
    tables = {t.name: t for t in build_tables(params, paper, metrics, profile)}
    recorded_figures(params, paper, records, out)
    for number in (1, 3, 4, 5, 6):
        compare_chart(tables[f"table{number}"], out / f"compare_table{number}")
    noise_chart(tables["table5"], out / "noise_robustness")
    params_error_chart(tables["table6"], out / "params_vs_error")
    histories = {}
    for run in all_runs(params):
        histories[run["run"]] = {seed: load_history(path / "live")
                                 for seed, path in seed_dirs(models_dir, run["run"]).items()}
        if not any(histories[run["run"]].values()):
            notes.append(f"{run['run']}: no training history (placeholder curves)")
        training_curves(run["run"], histories[run["run"]], out / "curves" / run["run"])
    training_overview(histories, out / "training_curves")
    datasets = {run["run"]: run["dataset"] for run in all_runs(params)}
    for run_id in attention_runs(params):
        masks = load_masks(eval_dir, run_id)
        if not masks:
            notes.append(f"{run_id}: no masks.npz (placeholder picture)")
        count = len(masks.get("images", []))
        mask_grid(run_id, masks, out / "masks" / run_id, class_labels(prepared_dir, datasets[run_id], count))
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ran figures", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    parser.add_argument("--profile", help="profile the runs were made under (default: the file's `profile`)")
    parser.add_argument("--paper", required=True, help="paper_results.yaml")
    parser.add_argument("--eval", help="results/{profile}/eval (metrics.json, masks.npz per run)")
    parser.add_argument("--models", help="results/{profile}/models (DVCLive history per seed)")
    parser.add_argument("--prepared", help="data/{profile}/prepared (optional: class names for the mask pictures)")
    parser.add_argument("--out", required=True, help="output folder for the PNG + PDF figures")
    parser.add_argument("--records", default=str(RECORDS_DIR),
                        help="recorded runs for the recorded curves (default: %(default)s; a missing folder: none)")
    parser.add_argument("--recorded-only", action="store_true",
                        help="draw only the error-against-images figure of the records (README: --out docs/figures)")
    args = parser.parse_args(argv)
    if not args.recorded_only and not (args.eval and args.models):
        parser.error("--eval and --models are required (or --recorded-only)")
    try:
        params = load_params(args.params)
        if args.recorded_only:
            paper = load_paper(args.paper)
            written = error_vs_images(load_records(args.records), paper_error_by_run(paper["cifar"], all_runs(params)),
                                      paper_budget(params), Path(args.out) / "recorded_error_vs_images")
            print(f"ran figures: {len(written)} file(s) written to {args.out}")
            return 0
        profile = resolve_profile(params, args.profile)["name"]
        notes = make_figures(params, load_paper(args.paper), profile, args.eval, args.models, args.prepared, args.out,
                             load_records(args.records))
    except (ConfigError, FileNotFoundError, ValueError) as error:
        parser.exit(2, f"ran figures: {error}\n")
    for note in notes:
        print(f"ran figures: note: {note}")
    print(f"ran figures: figures written to {args.out} ({len(notes)} placeholder(s))")
    return 0
