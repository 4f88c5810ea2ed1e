"""`ran tables`: paper-vs-ours tables (Tables 1, 3, 4, 5, 6, the seed project, parameter counts) from run outputs.

Every paper number comes from paper_results.yaml and every "ours" number from a run's eval/metrics.json; rows are
matched to runs by their attributes (ran.report.matching). A run without metrics.json reads "not run", a paper row
with no run in the matrix reads "quoted, not in matrix": neither ever shows a number.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ran.config import ConfigError, all_runs, load_params, resolve_profile
from ran.data import DATASET_LABELS
from ran.records import RECORDS_DIR, load_records
from ran.report.comparison import REFERENCE_PROFILE, TOLERANCE_PP, protocol_gap, verdict
from ran.report.formats import Column, Table, write_table
from ran.report.io import load_metrics, load_paper
from ran.report.matching import match_run, paper_criteria
from ran.report.outputs import TABLE_NAMES
from ran.report.recorded import README_BLOCKS, readme_table, recorded_table, trials_table, update_readme

PARAMS_TOLERANCE = 0.05  # relative; decision 1 holds the default networks to Table 6 within 5%
NOT_RUN = "not run"
NOT_IN_MATRIX = "quoted, not in matrix"
NO_VERDICT = "no verdict"  # the profile does not follow the paper's protocol: a difference says nothing

# Presentation only: which paper attributes describe a row of each single-dataset table.
ERROR_TABLES = {
    1: ("Table 1", "Attention-56 on CIFAR-10 with different attention types",
        [("model", "model"), ("attention", "attention"), ("activation", "activation")]),
    3: ("Table 3", "Attention residual learning (ARL) vs naive attention learning (NAL) on CIFAR-10",
        [("model", "model"), ("learning", "learning")]),
    4: ("Table 4", "Mask structure: local convolutions vs encoder-decoder, Attention-56 on CIFAR-10",
        [("model", "model"), ("mask", "mask")]),
    5: ("Table 5", "Training with noisy labels on CIFAR-10", [("model", "model"), ("noise_level", "noise level")]),
}


def fmt_error(value: float | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def fmt_ours(top1: dict) -> str:
    mean, std, n = top1["mean"], top1.get("std") or 0.0, int(top1.get("n", 1))
    return f"{mean:.2f} ± {std:.2f} (n={n})" if n > 1 else f"{mean:.2f} (n=1)"


def compare(paper_value: float | None, run_id: str | None, metrics: dict | None, prefix: str = "",
            judged: bool = True) -> dict:
    """The 'ours' cells of one comparison: formatted text, raw mean/std/n, difference and verdict."""
    cells = {f"{prefix}paper": fmt_error(paper_value), f"{prefix}run": run_id or ""}
    if run_id is None or metrics is None:
        if run_id is None:  # said once per row, in the verdict
            return {**cells, f"{prefix}ours": "—", f"{prefix}verdict": NOT_IN_MATRIX}
        return {**cells, f"{prefix}ours": NOT_RUN, f"{prefix}verdict": NOT_RUN}
    top1 = metrics["top1_error_pct"]
    cells.update({f"{prefix}ours": fmt_ours(top1), f"{prefix}ours_mean": top1["mean"],
                  f"{prefix}ours_std": top1.get("std") or 0.0, f"{prefix}ours_n": int(top1.get("n", 1))})
    if paper_value is not None:
        diff = top1["mean"] - paper_value
        cells.update({f"{prefix}diff": f"{diff:+.2f}", f"{prefix}diff_pp": round(diff, 4),
                      f"{prefix}verdict": verdict(diff) if judged else NO_VERDICT})
    return cells


def comparison_columns(prefix: str = "", label: str = "") -> list[Column]:
    head = f"{label} " if label else ""
    return [
        Column(f"{prefix}paper", f"{head}paper (%)"),
        Column(f"{prefix}ours", f"{head}ours (%)"),
        Column(f"{prefix}ours_mean", f"{head}ours mean", text=False),
        Column(f"{prefix}ours_std", f"{head}ours std", text=False),
        Column(f"{prefix}ours_n", f"{head}ours n", text=False),
        Column(f"{prefix}diff", f"{head}diff (pp)"),
        Column(f"{prefix}diff_pp", f"{head}diff pp", text=False),
        Column(f"{prefix}verdict", f"{head}verdict"),
    ]


def error_caption(profile: str, gaps: list[str] = ()) -> str:
    judged = (f"verdict 'matches' when |diff| ≤ {TOLERANCE_PP:.1f} pp, else 'differs'" if not gaps else
              f"no verdict: profile '{profile}' departs from the paper's protocol ({'; '.join(gaps)})")
    return (f"Top-1 test error in %. Ours: mean ± sample std over seeds (n seeds), final weights, profile "
            f"'{profile}'. diff = ours − paper in percentage points; {judged}.")


def realised_noise(metrics: dict | None) -> str | None:
    """Mean realised label-noise fraction over seeds (decision 4: reported beside the nominal level)."""
    values = [s.get("noise_realised") for s in (metrics or {}).get("seeds") or []]
    values = [v for v in values if v is not None]
    return f"{sum(values) / len(values):.3f}" if values else None


def error_table(number: int, paper_rows: list[dict], runs: list[dict], metrics: dict, profile: str,
                gaps: list[str] = ()) -> Table:
    title, what, descriptors = ERROR_TABLES[number]
    columns = [Column(key, label) for key, label in descriptors]
    if number == 5:
        columns.append(Column("noise_realised", "realised noise (ours)"))
    columns += comparison_columns() + [Column("run", "run")]
    table = Table(f"table{number}", title, f"{what}. {error_caption(profile, gaps)}", columns)
    for row in (r for r in paper_rows if r.get("table") == number):
        run_id = match_run(runs, paper_criteria(row))
        described = {key: row.get(key) for key, _ in descriptors}
        if number == 5:
            described["noise_realised"] = realised_noise(metrics.get(run_id))
        table.rows.append({**described, **compare(row["error_pct"], run_id, metrics.get(run_id), judged=not gaps)})
    return table


def fmt_params(count: float | None) -> str | None:
    return None if count is None else f"{count / 1e6:.2f}"


def fmt_paper_params(millions: float | None) -> str | None:
    return None if millions is None else f"{millions:.1f}"


def params_cells(paper_m: float | None, metrics: dict | None, run_id: str | None) -> dict:
    if run_id is None or metrics is None:
        if run_id is None:
            return {"params_paper": fmt_paper_params(paper_m), "params_ours": "—", "params_verdict": "—"}
        return {"params_paper": fmt_paper_params(paper_m), "params_ours": NOT_RUN, "params_verdict": NOT_RUN}
    ours = metrics.get("params")
    cells = {"params_paper": fmt_paper_params(paper_m), "params_ours": fmt_params(ours), "params_ours_count": ours}
    if paper_m and ours:
        rel = ours / (paper_m * 1e6) - 1.0
        cells.update({"params_diff": f"{100 * rel:+.1f}%",
                      "params_verdict": "matches" if abs(rel) <= PARAMS_TOLERANCE else "differs"})
    return cells


def table6(paper_rows: list[dict], runs: list[dict], metrics: dict, profile: str, gaps: list[str] = ()) -> Table:
    columns = [Column("model", "model"), Column("params_paper", "params paper (M)"),
               Column("params_ours", "params ours (M)"), Column("params_ours_count", "params ours", text=False),
               Column("params_diff", "params diff"), Column("params_verdict", "params verdict")]
    for dataset, label in DATASET_LABELS.items():
        # the run ids stay in the CSV: 15 text columns do not fit a printed page
        columns += comparison_columns(f"{dataset}_", label) + [Column(f"{dataset}_run", f"{label} run", text=False)]
    caption = (f"Comparison with the state of the art on CIFAR-10 and CIFAR-100 (Attention-N: mixed attention, ARL, "
               f"encoder-decoder mask, clean labels). {error_caption(profile, gaps)} Our parameter count is the "
               f"CIFAR-10 model's; 'matches' within {100 * PARAMS_TOLERANCE:.0f}% of the paper's.")
    table = Table("table6", "Table 6", caption, columns)
    for row in (r for r in paper_rows if r.get("table") == 6):
        cells = {"model": row["model"]}
        for dataset in DATASET_LABELS:
            run_id = match_run(runs, paper_criteria(row, dataset))
            cells.update(compare(row.get(f"{dataset}_error_pct"), run_id, metrics.get(run_id), f"{dataset}_",
                                 judged=not gaps))
        c10_run = cells["cifar10_run"] or None
        cells.update(params_cells(row.get("params_m"), metrics.get(c10_run), c10_run))
        table.rows.append(cells)
    return table


def paper_error_by_run(paper_rows: list[dict], runs: list[dict]) -> dict[str, float]:
    """The paper's error for each run it prints one for (Tables 1-6 agree where they repeat a configuration)."""
    found: dict[str, float] = {}
    for row in paper_rows:
        datasets = [row["dataset"]] if "dataset" in row else list(DATASET_LABELS)
        for dataset in datasets:
            value = row.get("error_pct", row.get(f"{dataset}_error_pct"))
            run_id = match_run(runs, paper_criteria(row, dataset))
            if run_id is not None and value is not None:
                found.setdefault(run_id, value)
    return found


def seed_project_table(paper: dict, runs: list[dict], metrics: dict, profile: str) -> Table:
    columns = [Column("dataset", "dataset"), Column("model", "model"), Column("attention", "attention"),
               Column("learning", "learning"), Column("seed_project", "seed project (%)"),
               Column("paper", "paper (%)"), Column("ours", "ours (%)"), Column("ours_mean", "ours mean", text=False),
               Column("ours_std", "ours std", text=False), Column("ours_n", "ours n", text=False),
               Column("diff", "ours − seed project (pp)"), Column("run", "run")]
    caption = (f"The seed course project's six configurations: its reported test error, the paper's where it prints "
               f"the configuration, and ours (profile '{profile}'). The seed project's 'Attention-92' is 80 layers "
               f"deep and its 'spatial' attention normalises across channels (docs/decisions.md, known departures).")
    table = Table("seed_project", "Seed project", caption, columns)
    paper_values = paper_error_by_run(paper["cifar"], runs)
    for row in paper["seed_project"]:
        criteria = {"dataset": row["dataset"], "network": row["network"], "attention": row["attention"],
                    "learning": row["learning"], "mask": "encoder_decoder", "noise": 0.0}
        run_id = match_run(runs, criteria)
        cells = compare(row["error_pct"], run_id, metrics.get(run_id))
        cells.pop("verdict", None)  # the seed project is a starting point, not a target: no verdict
        cells["seed_project"] = cells.pop("paper")
        cells["paper"] = fmt_error(paper_values.get(run_id))
        described = {"dataset": DATASET_LABELS[row["dataset"]], "model": row["model"],
                     "attention": row["attention"], "learning": row["learning"]}
        table.rows.append({**described, **cells})
    return table


def _distinct(values) -> str | None:
    """The distinct non-empty values, joined (one device for all seeds is the usual case)."""
    found = sorted({str(value) for value in values if value})
    return "; ".join(found) or None


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def paper_params_by_run(paper_rows: list[dict], runs: list[dict]) -> dict[str, float]:
    """Table 6's parameter count for the runs that stand for its rows (either dataset; the classifier's share of
    the count is small)."""
    found = {}
    for row in (r for r in paper_rows if r.get("table") == 6 and r.get("params_m") is not None):
        for dataset in DATASET_LABELS:
            run_id = match_run(runs, paper_criteria(row, dataset))
            if run_id is not None:
                found[run_id] = row["params_m"]
    return found


def params_table(paper: dict, runs: list[dict], metrics: dict, profile: str) -> Table:
    columns = [Column("run", "run"), Column("dataset", "dataset"), Column("network", "network"),
               Column("depth", "depth"), Column("params_paper", "paper (M)"), Column("params_ours", "ours (M)"),
               Column("params_ours_count", "ours", text=False), Column("params_diff", "diff"),
               Column("params_verdict", "verdict"), Column("seeds", "seeds"), Column("precision", "precision"),
               Column("wall_h", "train wall (h)"), Column("images_per_s", "train images/s"),
               Column("device", "device")]
    caption = (f"Every run of the matrix: parameter count against Table 6 where it prints the configuration "
               f"('matches' within {100 * PARAMS_TOLERANCE:.0f}%), seeds evaluated, training precision (dtype "
               f"policy), mean training wall time and throughput, device (profile '{profile}').")
    paper_m = paper_params_by_run(paper["cifar"], runs)
    table = Table("params", "Parameters and cost", caption, columns)
    for run in runs:
        found = metrics.get(run["run"])
        cells = {"run": run["run"], "dataset": DATASET_LABELS[run["dataset"]], "network": run["network"]}
        cells.update(params_cells(paper_m.get(run["run"]), found, run["run"]))
        if found is not None:
            seeds = found.get("seeds") or []
            wall = _mean([s.get("train_wall_s") for s in seeds])
            speed = _mean([s.get("train_images_per_s") for s in seeds])
            cells.update({"depth": found.get("depth"), "seeds": found["top1_error_pct"].get("n", len(seeds)),
                          "precision": _distinct(s.get("train_precision") for s in seeds),
                          "device": _distinct(s.get("train_device") for s in seeds),
                          "wall_h": None if wall is None else f"{wall / 3600:.2f}",
                          "images_per_s": None if speed is None else f"{speed:.0f}"})
        table.rows.append(cells)
    return table


def build_tables(params: dict, paper: dict, metrics: dict[str, dict | None], profile: str,
                 records: list[dict] = ()) -> list[Table]:
    """All report tables; `metrics` maps run id -> its metrics.json content (None or absent: not run); `records`
    are the committed recorded runs (ran.records.load_records) for the recorded view."""
    runs = all_runs(params)
    gaps = protocol_gap(resolve_profile(params, profile), resolve_profile(params, REFERENCE_PROFILE)) \
        if REFERENCE_PROFILE in params["profiles"] else []
    tables = [error_table(number, paper["cifar"], runs, metrics, profile, gaps) for number in (1, 3, 4, 5)]
    tables += [table6(paper["cifar"], runs, metrics, profile, gaps), seed_project_table(paper, runs, metrics, profile),
               params_table(paper, runs, metrics, profile), recorded_table(params, paper, list(records))]
    assert tuple(t.name for t in tables) == TABLE_NAMES
    return tables


def collect_metrics(params: dict, eval_dir: str | Path, profile: str) -> dict[str, dict | None]:
    return {run["run"]: load_metrics(eval_dir, run["run"], profile) for run in all_runs(params)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ran tables", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    parser.add_argument("--profile", help="profile the runs were made under (default: the file's `profile`)")
    parser.add_argument("--paper", required=True, help="paper_results.yaml")
    parser.add_argument("--eval", required=True, help="results/{profile}/eval (one folder per run)")
    parser.add_argument("--out", required=True, help="output folder for table*.csv/.md/.tex")
    parser.add_argument("--records", default=str(RECORDS_DIR),
                        help="recorded runs for the recorded view (default: %(default)s; a missing folder: none)")
    parser.add_argument("--update-readme", metavar="README", help="also rewrite README's recorded-results block")
    parser.add_argument("--update-recipe", metavar="DOC", help="also rewrite docs/recipe.md's trials block")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
        profile = resolve_profile(params, args.profile)["name"]
        paper = load_paper(args.paper)
        metrics = collect_metrics(params, args.eval, profile)
        records = load_records(args.records)
        tables = build_tables(params, paper, metrics, profile, records)
        changed = args.update_readme and update_readme(args.update_readme, readme_table(tables[-1], records))
        changed_recipe = args.update_recipe and update_readme(args.update_recipe, trials_table(records),
                                                              README_BLOCKS["recipe"])
    except (ConfigError, FileNotFoundError, ValueError) as error:
        parser.exit(2, f"ran tables: {error}\n")
    for table in tables:
        write_table(table, args.out)
    for path, updated in ((args.update_readme, changed), (args.update_recipe, changed_recipe)):
        if path:
            print(f"ran tables: {path} {'updated' if updated else 'already up to date'}")
    found = sum(m is not None for m in metrics.values())
    print(f"ran tables: {len(tables)} tables from {found}/{len(metrics)} evaluated runs -> {args.out}")
    return 0
