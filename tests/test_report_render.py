"""The HTML report: profile banner, hidden code, embedded images, every table; rendered from hand-made results."""

from __future__ import annotations

import re
import time

import pytest
import yaml

from ran.config import all_runs
from ran.report import figures, render, sections, tables
from test_report_fakes import cut_matrix, write_results

SMALL_MATRIX = ("c10_a56_arl_mixed", "c10_a56_arl_channel", "c10_r164_noise10", "c10_r164")


def context_for(params, profile, tmp_path):
    return {"params": params, "profile": {**params["training"], **params["profiles"][profile], "name": profile},
            "results": tmp_path, "reference": params["profiles"]["paper"]}


@pytest.mark.parametrize(("profile", "banner", "replication"), [
    ("smoke", "SMOKE PROFILE — synthetic data, {iterations} iterations: NOT a replication", False),
    ("quick", "QUICK PROFILE — official CIFAR data, {iterations} iterations: NOT a replication", False),
    ("paper", "PAPER PROFILE — official CIFAR data, {iterations} iterations", True),
])
def test_banner_names_the_profile_and_says_when_it_is_not_a_replication(params, tmp_path, profile, banner,
                                                                       replication):
    context = context_for(params, profile, tmp_path)
    assert sections.banner_text(context) == banner.format(iterations=params["profiles"][profile]["iterations"])
    assert sections.is_replication(context) is replication
    assert ("#b71c1c" in sections.banner_html(context)) is not replication  # red unless it is the paper's protocol


def test_banner_shows_the_results_folder_from_the_repository_never_the_machine_path(params, tmp_path):
    inside = {**context_for(params, "smoke", tmp_path / "repo" / "results" / "smoke"), "root": tmp_path / "repo"}
    assert "results folder: <code>results/smoke</code>" in sections.banner_html(inside)
    elsewhere = {**context_for(params, "smoke", tmp_path / "scratch" / "smoke"), "root": tmp_path / "repo"}
    banner = sections.banner_html(elsewhere)
    assert "results folder: <code>smoke</code>" in banner and str(tmp_path) not in banner
    assert str(tmp_path) not in sections.figure_html(elsewhere, "compare_table1")  # nor in what is missing
    assert str(tmp_path) not in sections.table_markdown(elsewhere, "table1")


def test_figures_are_embedded_or_reported_missing(params, tmp_path):
    context = context_for(params, "smoke", tmp_path)
    assert "was not built" in sections.figure_html(context, "compare_table1")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "compare_table1.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    assert "src='data:image/png;base64,iVBORw0KGgpmYWtl'" in sections.figure_html(context, "compare_table1")
    assert "ran tables" in sections.table_markdown(context, "table1")


@pytest.fixture(scope="module")
def small_results(tmp_path_factory, params, root):
    """A results/smoke-like folder for a four-run matrix (one run missing), with its tables and figures built."""
    folder = tmp_path_factory.mktemp("results")
    small = cut_matrix(params, SMALL_MATRIX)
    params_path = folder / "params.yaml"
    params_path.write_text(yaml.safe_dump(small, sort_keys=False))
    results = write_results(folder / "smoke", all_runs(small), "smoke", skip={"c10_a56_arl_channel"})
    common = ["--params", str(params_path), "--profile", "smoke", "--paper",
              str(root / "workflow" / "resources" / "paper_results.yaml"), "--eval", str(results / "eval")]
    assert tables.main([*common, "--out", str(results / "tables")]) == 0
    assert figures.main([*common, "--models", str(results / "models"), "--out", str(results / "figures")]) == 0
    return params_path, results


def test_report_renders_self_contained_html(small_results, root):
    params_path, results = small_results
    out = results / "report" / "report.html"
    started = time.perf_counter()
    assert render.main(["--params", str(params_path), "--profile", "smoke", "--notebook",
                        str(root / "workflow" / "notebooks" / "report.ipynb"), "--results", str(results),
                        "--out", str(out)]) == 0
    assert time.perf_counter() - started < 60
    html = out.read_text()
    smoke_iterations = yaml.safe_load(params_path.read_text())["profiles"]["smoke"]["iterations"]
    assert f"SMOKE PROFILE — synthetic data, {smoke_iterations} iterations: NOT a replication" in html
    assert "runs with results: 3 of 4" in html
    assert "results folder: <code>smoke</code>" in html and str(results.parent) not in html  # no machine path
    assert html.count("data:image/png;base64,") >= 5 + 2 + 1 + 2  # table charts, noise/params, overview, masks
    assert html.count("<table") >= 7 and "not run" in html and "quoted, not in matrix" in html
    assert "Decisions where the paper is silent" in html and "13.74" in html  # decisions, seed project
    assert "S.banner_html" not in html and "params_path" not in html  # code cells are hidden
    # Offline: nothing is fetched (no CDN script, stylesheet or module); per-run curves are linked beside the report.
    fetched = r"""(?:src|href)\s*=\s*["']https?:|import\s*\(?\s*["']https?:|@import\s+url\(\s*["']?https?:"""
    assert not re.search(fetched, html)
    linked = [src for src in re.findall(r"""<img[^>]*\ssrc=["']([^"']+)["']""", html) if not src.startswith("data:")]
    assert "../figures/curves/c10_r164.png" in linked and all((out.parent / href).is_file() for href in linked)
    assert "Recorded results" in html


def test_report_refuses_a_missing_results_folder(tmp_path, root):
    with pytest.raises(SystemExit) as exit_info:
        render.main(["--params", str(root / "params.yaml"), "--notebook", str(root / "workflow" / "notebooks" /
                     "report.ipynb"), "--results", str(tmp_path / "nope"), "--out", str(tmp_path / "r.html")])
    assert exit_info.value.code == 2


def test_the_decisions_the_report_lists_are_those_of_docs_decisions_md(root):
    from ran.report.decisions import DECISIONS, SEED_PROJECT_DEPARTURES

    text = (root / "docs" / "decisions.md").read_text()
    for number, (title, body) in enumerate(DECISIONS, 1):
        assert f"{number}. **{title}.** {body}" in text
    assert all(f"- {departure}" in text for departure in SEED_PROJECT_DEPARTURES)
    cited = {int(n) for path in (root / "src").rglob("*.py") for n in re.findall(r"decision (\d+)", path.read_text())}
    assert cited and cited <= set(range(1, len(DECISIONS) + 1)), "a 'decision N' cited in src/ is not in the list"
