"""Training curves from DVCLive histories (`models/{run}/seed{S}/live/plots/metrics/**.tsv`)."""

from __future__ import annotations

from pathlib import Path

from ran.report.plotting import new_figure, placeholder, save_figure

# Panels by what a metric's logged name contains; metrics matching none are left out.
PANELS = (("loss", ("loss",)), ("accuracy / error", ("acc", "error")), ("learning rate", ("lr", "learning_rate")))

History = dict[str, tuple[list[float], list[float]]]


def panel_of(name: str) -> str | None:
    leaf = name.rsplit("/", 1)[-1].lower()
    for title, needles in PANELS:
        if any(needle in leaf for needle in needles):
            return title
    return None


def training_curves(run_id: str, histories: dict[int, History], stem: str | Path) -> list[Path]:
    """Loss, accuracy/error and learning rate against the DVCLive step, one line per metric and seed."""
    used = [title for title, _ in PANELS
            if any(panel_of(name) == title for history in histories.values() for name in history)]
    if not used:
        return placeholder(stem, f"{run_id}: no training history",
                           "no DVCLive metrics under models/{run}/seed*/live/plots/metrics (run not trained yet)")
    fig, axes = new_figure(ncols=len(used), width=4.2 * len(used), height=3.2)
    for ax, title in zip(axes[0], used, strict=True):
        for seed, history in histories.items():
            for name, (steps, values) in sorted(history.items()):
                if panel_of(name) == title:
                    label = name if len(histories) == 1 else f"{name} (seed {seed})"
                    # the learning rate is piecewise constant: draw it as steps, not ramps between log points
                    style = "steps-pre" if title == "learning rate" else "default"
                    ax.plot(steps, values, label=label, linewidth=1.2, drawstyle=style)
        ax.set_title(title)
        ax.set_xlabel("iteration (DVCLive step)")
        if title == "learning rate":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{run_id}: training history")
    fig.tight_layout()
    return save_figure(fig, stem)


def _train_loss(history: History) -> tuple[list[float], list[float]] | None:
    losses = sorted(name for name in history if panel_of(name) == "loss")
    preferred = [name for name in losses if "train" in name] or losses
    return history[preferred[0]] if preferred else None


def training_overview(histories_by_run: dict[str, dict[int, History]], stem: str | Path) -> list[Path]:
    """One small panel per run with its training loss, so the whole matrix fits on one page."""
    run_ids = list(histories_by_run)
    ncols = 5
    nrows = max(1, -(-len(run_ids) // ncols))
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=3.0 * ncols, height=2.1 * nrows)
    for index, ax in enumerate(axes.flat):
        if index >= len(run_ids):
            ax.axis("off")
            continue
        run_id = run_ids[index]
        curves = [(seed, _train_loss(h)) for seed, h in histories_by_run[run_id].items()]
        curves = [(seed, curve) for seed, curve in curves if curve is not None]
        for seed, (steps, values) in curves:
            ax.plot(steps, values, linewidth=1.0, label=f"seed {seed}")
        if not curves:
            ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes, color="0.4")
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_title(run_id, fontsize=8)
        ax.tick_params(labelsize=6)
    fig.suptitle("Training loss against iteration, every run")
    fig.tight_layout()
    return save_figure(fig, stem)


def recorded_curves(records: list[dict], paper_error: dict[str, float], stem: str | Path) -> list[Path]:
    """One row per recorded run: training loss, and training error beside the recorded and the paper's test error.

    `records` are ran.records.load_records entries (their `_history` folder holds the DVCLive tables);
    `paper_error` maps run id -> the paper's top-1 test error in %.
    """
    runs = sorted({record["run"] for record in records})
    if not runs:
        return placeholder(stem, "no recorded runs yet",
                           "workflow/resources/records is empty: `ran record --profile P` adds finished real runs")
    fig, axes = new_figure(ncols=2, nrows=len(runs), width=10.0, height=3.0 * len(runs))
    for (loss_ax, error_ax), run_id in zip(axes, runs, strict=True):
        for record in (r for r in records if r["run"] == run_id):
            label = f"{record['profile']} seed {record['seed']}"
            history = _history_folder(record)
            loss, accuracy = history.get("train/loss"), history.get("train/accuracy")
            if loss:
                loss_ax.plot(*loss, linewidth=1.2, label=label)
            if accuracy:
                steps, values = accuracy
                line, = error_ax.plot(steps, [100 * (1 - v) for v in values], linewidth=1.2,
                                      label=f"{label}: train error")
                error_ax.plot([record["summary"]["iterations"]], [record["result"]["top1_error_pct"]], "o",
                              color=line.get_color(), label=f"{label}: test error "
                              f"{record['result']['top1_error_pct']:.2f}%")
        if run_id in paper_error:
            error_ax.axhline(paper_error[run_id], color="0.3", linestyle="--",
                             label=f"paper: test error {paper_error[run_id]:.2f}% (160k iterations)")
        loss_ax.set_title(f"{run_id}: training loss (incl. weight decay)", fontsize=9)
        error_ax.set_title(f"{run_id}: error %", fontsize=9)
        for ax in (loss_ax, error_ax):
            ax.set_xlabel("iteration")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle("Recorded runs (workflow/resources/records)")
    fig.tight_layout()
    return save_figure(fig, stem)


def _history_folder(record: dict) -> History:
    """A record's DVCLive tables, read from its `history` folder (laid out like live/plots/metrics)."""
    from ran.report.io import read_tsv_series

    folder = Path(record.get("_history", ""))
    if not folder.is_dir():
        return {}
    return {path.relative_to(folder).with_suffix("").as_posix(): read_tsv_series(path)
            for path in sorted(folder.rglob("*.tsv"))}


def error_vs_images(records: list[dict], paper_error: dict[str, float], paper_images: int,
                    stem: str | Path) -> list[Path]:
    """Test error against training images (log scale) for every recorded run, one colour per run and one marker per
    profile, with the paper's error for the same run at its protocol's budget (`paper_images`)."""
    runs = sorted({record["run"] for record in records})
    if not runs:
        return placeholder(stem, "no recorded runs yet",
                           "workflow/resources/records is empty: `ran record --profile P` adds finished real runs")
    profiles = sorted({record["profile"] for record in records})
    # filled markers only (the hollow diamond is the paper's), one a profile; they repeat past the 13th profile
    markers = {profile: "osv^<>PX*hp8H"[i % 13] for i, profile in enumerate(profiles)}
    fig, axes = new_figure(width=9.0, height=4.2)
    ax = axes[0][0]
    for colour, run_id in enumerate(runs):
        colour = f"C{colour % 10}"
        for record in (r for r in records if r["run"] == run_id):
            images = record["summary"]["iterations"] * record["training"]["batch_size"]
            ax.plot([images], [record["result"]["top1_error_pct"]], markers[record["profile"]],
                    color=colour, label=f"{run_id}, {record['profile']}")
        if run_id in paper_error:
            ax.plot([paper_images], [paper_error[run_id]], "D", markerfacecolor="none", color=colour,
                    label=f"{run_id}, paper")
    ax.set_xscale("log")
    ax.set_xlabel("training images (iterations x batch)")
    ax.set_ylabel("top-1 test error (%)")
    ax.set_title("Recorded runs against the paper's budget (hollow diamonds: the paper's protocol)", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # beside: never on a point
    fig.tight_layout()
    return save_figure(fig, stem)
