"""HTML pieces of the report notebook (workflow/notebooks/report.ipynb): banner, tables, figures, lists.

The notebook stays a thin sequence of calls to these functions, so what it shows is tested here, and it reads
nothing but params.yaml and the tables/figures under the results folder.
"""

from __future__ import annotations

import base64
import csv
import html
import os
from pathlib import Path

from ran.config import load_params, resolve_profile
from ran.report.comparison import REFERENCE_PROFILE, TOLERANCE_PP
from ran.report.decisions import DECISIONS, SEED_PROJECT_DEPARTURES
from ran.report.outputs import attention_runs
from ran.report.tables import NOT_RUN

_BANNER_COLOURS = {True: ("#1b5e20", "#e8f5e9"), False: ("#b71c1c", "#ffebee")}
# Per-run pictures travel inside report.html when small, so a copied page keeps them; the cap on their total keeps
# the page a few MB (mask grids are ~450 kB each, curves ~50 kB). The rest are linked from the figures folder.
EMBED_MAX_BYTES = 150_000
EMBED_BUDGET_BYTES = 3_000_000
OPEN_MASKS = 3  # shown unfolded, so always embedded (counted in the budget)


def load_context(params_path: str | Path, profile: str | None, results_dir: str | Path,
                 report_dir: str | Path | None = None) -> dict:
    """What the notebook shows; `report_dir` is where the HTML goes (linked figures are relative to it)."""
    params = load_params(params_path)
    return {"params": params, "profile": resolve_profile(params, profile), "results": Path(results_dir),
            "reference": params["profiles"].get(REFERENCE_PROFILE),
            "report_dir": Path(report_dir) if report_dir else Path(results_dir) / "report",
            "root": Path(params_path).resolve().parent}


def shown_path(context: dict, path: str | Path) -> str:
    """`path` as the report prints it: from the repository (params.yaml's folder) when inside it, else from the
    results folder's own name; never the machine's absolute path, which means nothing to whoever is sent the page."""
    path = Path(path).resolve()
    for anchor in (context.get("root"), Path(context["results"]).resolve().parent):
        if anchor is not None and path.is_relative_to(anchor):
            return path.relative_to(anchor).as_posix()
    return path.name


def is_replication(context: dict) -> bool:
    """Only the paper's protocol (official data, the paper profile's iterations) counts as a replication."""
    profile, reference = context["profile"], context["reference"]
    return (profile["data"] == "official" and reference is not None
            and profile["iterations"] >= reference["iterations"])


def banner_text(context: dict) -> str:
    profile = context["profile"]
    data = "official CIFAR data" if profile["data"] == "official" else "synthetic data"
    head = f"{profile['name'].upper()} PROFILE — {data}, {profile['iterations']} iterations"
    return head if is_replication(context) else f"{head}: NOT a replication"


def runs_with_results(context: dict) -> str:
    """'n of N' runs that have metrics, from the parameters table (one row per run of the matrix)."""
    path = context["results"] / "tables" / "params.csv"
    if not path.is_file():
        return "unknown (tables not built)"
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return f"{sum(row['params_ours'] != NOT_RUN for row in rows)} of {len(rows)}"


def banner_html(context: dict) -> str:
    """The profile every number came from, in large type; red unless it is the paper's protocol."""
    ink, paper = _BANNER_COLOURS[is_replication(context)]
    seeds = ", ".join(str(s) for s in context["params"]["seeds"])
    note = ("" if is_replication(context) else
            "<div style='font-size:18px;margin-top:8px'>These numbers test the pipeline, not the paper: "
            "compare nothing below with the paper's results.</div>")
    return (f"<div style='border:6px solid {ink};background:{paper};color:{ink};padding:18px 24px;"
            f"margin:8px 0 20px 0;font-family:sans-serif'>"
            f"<div style='font-size:40px;font-weight:bold;line-height:1.2'>{html.escape(banner_text(context))}</div>"
            f"<div style='font-size:18px;margin-top:8px'>runs with results: {runs_with_results(context)}; "
            f"{len(context['params']['seeds'])} seed(s) per run ({html.escape(seeds)}); results folder: "
            f"<code>{html.escape(shown_path(context, context['results']))}</code>{linked_note(context)}</div>"
            f"{note}</div>")


def table_markdown(context: dict, name: str) -> str:
    path = context["results"] / "tables" / f"{name}.md"
    if not path.is_file():
        return f"*Table `{name}` missing: `{shown_path(context, path)}` was not built (run `ran tables`).*"
    return path.read_text()


def figure_png(context: dict, stem: str) -> Path:
    return context["results"] / "figures" / f"{stem}.png"


def per_run_stems(params: dict) -> tuple[list[str], list[str]]:
    """The per-run pictures in the report's order: (mask grids of the attention runs, training curves of all)."""
    return [f"masks/{run_id}" for run_id in attention_runs(params)], [f"curves/{run_id}" for run_id in params["runs"]]


def embedded_stems(context: dict) -> set[str]:
    """Per-run pictures the page carries: the open masks, then, in report order, each one under EMBED_MAX_BYTES
    while the running total stays within EMBED_BUDGET_BYTES (one rule for the sections and the banner's count)."""
    masks, curves = per_run_stems(context["params"])
    chosen, total = set(), 0
    for stem in masks + curves:
        path = figure_png(context, stem)
        size = path.stat().st_size if path.is_file() else None
        if size is not None and (stem in masks[:OPEN_MASKS]
                                 or (size <= EMBED_MAX_BYTES and total + size <= EMBED_BUDGET_BYTES)):
            chosen.add(stem)
            total += size
    return chosen


def linked_stems(context: dict) -> list[str]:
    """Per-run pictures that exist but stay beside the page (a copied report.html loses these)."""
    embedded = embedded_stems(context)
    masks, curves = per_run_stems(context["params"])
    return [stem for stem in masks + curves if stem not in embedded and figure_png(context, stem).is_file()]


def linked_note(context: dict) -> str:
    """One line for whoever shares the page; empty when it stands alone."""
    count = len(linked_stems(context))
    if not count:
        return ""
    pictures = "1 picture is" if count == 1 else f"{count} pictures are"
    return f"<br/>{pictures} linked beside report.html: copy the folder, not the file."


def figure_html(context: dict, stem: str, width: str = "100%", embed: bool = True) -> str:
    """A figure as an <img>: embedded as base64 (the page stands alone), or linked from the figures folder beside
    the report (large per-run pictures, see embedded_stems), lazily loaded, with its PDF linked."""
    path = figure_png(context, stem)
    if not path.is_file():
        return (f"<p><em>Figure {html.escape(stem)} missing: {html.escape(shown_path(context, path))} was not "
                f"built.</em></p>")
    style = f"style='max-width:{width};height:auto'"
    if embed:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f"<img src='data:image/png;base64,{data}' alt='{html.escape(stem)}' {style}/>"
    href = html.escape(Path(os.path.relpath(path, context["report_dir"])).as_posix())
    return (f"<a href='{href}'><img src='{href}' alt='{html.escape(stem)}' loading='lazy' {style}/></a>"
            f"<div style='font-size:12px'>{html.escape(stem)}: <a href='{href[:-4]}.pdf'>PDF</a></div>")


def details_html(summary: str, body: str) -> str:
    return f"<details><summary>{html.escape(summary)}</summary>{body}</details>"


def mask_figures_html(context: dict) -> str:
    """Every attention run's mask picture: the first few open, the rest folded."""
    runs, embedded = attention_runs(context["params"]), embedded_stems(context)
    pictures = [figure_html(context, f"masks/{run_id}", "720px", embed=f"masks/{run_id}" in embedded)
                for run_id in runs]
    folded = "".join(f"<h4>{html.escape(run_id)}</h4>{pic}"
                     for run_id, pic in zip(runs[OPEN_MASKS:], pictures[OPEN_MASKS:], strict=True))
    return "".join(pictures[:OPEN_MASKS]) + (details_html(f"{len(runs) - OPEN_MASKS} more runs", folded)
                                             if folded else "")


def curve_figures_html(context: dict) -> str:
    runs, embedded = list(context["params"]["runs"]), embedded_stems(context)
    body = "".join(figure_html(context, f"curves/{run_id}", embed=f"curves/{run_id}" in embedded) for run_id in runs)
    return figure_html(context, "training_curves") + details_html(f"per-run curves ({len(runs)} runs)", body)


def list_html(items) -> str:
    return "<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>"


def decisions_html() -> str:
    items = "".join(f"<li><b>{html.escape(title)}.</b> {html.escape(text)}</li>" for title, text in DECISIONS)
    return f"<ol>{items}</ol><p>Numbered as in docs/decisions.md, which code and docs cite.</p>"


def departures_html() -> str:
    return list_html(html.escape(text) for text in SEED_PROJECT_DEPARTURES)


def reading_guide() -> str:
    return (f"Each table gives the paper's top-1 test error, ours (mean ± sample std over seeds, n seeds), the "
            f"difference ours − paper in percentage points, and a verdict: *matches* when |diff| ≤ "
            f"{TOLERANCE_PP:.1f} pp, otherwise *differs*. A configuration without results reads *not run*; a paper "
            f"baseline outside our matrix reads *quoted, not in matrix*. Every number is read from run outputs.")

