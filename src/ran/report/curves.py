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
