"""The report's output file names: a pure function of params.yaml, so Snakemake and DVC can declare them.

Every name is always written (a run without results gets a placeholder figure saying so), hence the set below is
exactly what `ran tables`, `ran figures` and `ran report` produce.
"""

from __future__ import annotations

TABLE_NAMES = ("table1", "table3", "table4", "table5", "table6", "seed_project", "params", "recorded")
TABLE_SUFFIXES = (".csv", ".md", ".tex")
FIGURE_SUFFIXES = (".png", ".pdf")
# One chart per paper table with CIFAR numbers, then the cross-table figures.
SUMMARY_FIGURES = ("compare_table1", "compare_table3", "compare_table4", "compare_table5", "compare_table6",
                   "noise_robustness", "params_vs_error", "training_curves", "recorded_curves",
                   "recorded_error_vs_images")


def attention_runs(params: dict) -> list[str]:
    """Runs with attention modules (hence soft masks to draw), in params.yaml order."""
    return [run_id for run_id, row in params["runs"].items() if row["network"].startswith("attention")]


def figure_stems(params: dict) -> list[str]:
    """Figure paths relative to the figures folder, without suffix."""
    stems = list(SUMMARY_FIGURES)
    stems += [f"curves/{run_id}" for run_id in params["runs"]]
    stems += [f"masks/{run_id}" for run_id in attention_runs(params)]
    return stems


def outputs(params: dict) -> dict[str, list[str]]:
    """{'tables': [...], 'figures': [...], 'report': [...]}: paths relative to the tables, figures and report folders.

    tables:  table{1,3,4,5,6}, seed_project, params, recorded, each as .csv, .md and .tex
    figures: compare_table{1,3,4,5,6}, noise_robustness, params_vs_error, training_curves, recorded_curves,
             recorded_error_vs_images, curves/{run} for every run and masks/{run} for every attention run, each as
             .png and .pdf
    report:  report.html
    """
    return {
        "tables": [f"{name}{suffix}" for name in TABLE_NAMES for suffix in TABLE_SUFFIXES],
        "figures": [f"{stem}{suffix}" for stem in figure_stems(params) for suffix in FIGURE_SUFFIXES],
        "report": ["report.html"],
    }
