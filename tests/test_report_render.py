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
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_png(path, size: int) -> None:
    """A file of `size` bytes that reads as a PNG to the report (only its size matters here)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(PNG_MAGIC + bytes(size - len(PNG_MAGIC)))


def context_for(params, profile, tmp_path):
    return {"params": params, "profile": {**params["training"], **params["profiles"][profile], "name": profile},
            "results": tmp_path, "reference": params["profiles"]["paper"], "report_dir": tmp_path / "report"}


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


def test_small_per_run_pictures_are_embedded_and_the_linked_ones_counted(params, tmp_path, monkeypatch):
    runs = ("c10_a56_arl_mixed", "c10_a56_arl_channel", "c10_a56_arl_spatial", "c10_a92_arl_mixed",
            "c10_a56_nal_mixed", "c10_r164")
    context = context_for(cut_matrix(params, runs), "smoke", tmp_path)
    big, small = 200_000, 1_000
    for run_id, size in zip(runs[:5], (big, big, big, big, small), strict=True):
        write_png(tmp_path / "figures" / "masks" / f"{run_id}.png", size)
    for run_id in runs[:5]:  # c10_r164's curves were not drawn
        write_png(tmp_path / "figures" / "curves" / f"{run_id}.png", small)
    monkeypatch.setattr(sections, "EMBED_BUDGET_BYTES", 3 * big + 3 * small)
    # the open masks even when big, then the small ones while the budget lasts; the big folded mask stays linked
    assert sections.linked_stems(context) == ["masks/c10_a92_arl_mixed", "curves/c10_a56_arl_spatial",
                                              "curves/c10_a92_arl_mixed", "curves/c10_a56_nal_mixed"]
    masks, curves = sections.mask_figures_html(context), sections.curve_figures_html(context)
    assert masks.count("data:image/png") == 4 and "src='../figures/masks/c10_a92_arl_mixed.png'" in masks
    assert curves.count("data:image/png") == 2 and curves.count("loading='lazy'") == 3 and "was not built" in curves
    assert "4 pictures are linked beside report.html: copy the folder, not the file." in sections.banner_html(context)
    monkeypatch.setattr(sections, "EMBED_BUDGET_BYTES", 10 * big)
    assert sections.linked_stems(context) == ["masks/c10_a92_arl_mixed"]
    assert "1 picture is linked beside" in sections.banner_html(context)


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
    curve = results / "figures" / "curves" / "c10_r164.png"  # padded past the embedding limit, so it stays linked
    curve.write_bytes(curve.read_bytes() + bytes(sections.EMBED_MAX_BYTES))
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
    # table charts, noise/params, overview, masks, and the per-run curves but the one padded past the limit
    assert html.count("data:image/png;base64,") >= 5 + 2 + 1 + 2 + 3
    assert "1 picture is linked beside report.html: copy the folder, not the file." in html
    assert html.count("<table") >= 7 and "not run" in html and "quoted, not in matrix" in html
    assert "Decisions where the paper is silent" in html and "13.74" in html  # decisions, seed project
    assert "S.banner_html" not in html and "params_path" not in html  # code cells are hidden
    # Offline: nothing is fetched (no CDN script, stylesheet or module); the large picture is linked beside the report.
    fetched = r"""(?:src|href)\s*=\s*["']https?:|import\s*\(?\s*["']https?:|@import\s+url\(\s*["']?https?:"""
    assert not re.search(fetched, html)
    linked = [src for src in re.findall(r"""<img[^>]*\ssrc=["']([^"']+)["']""", html) if not src.startswith("data:")]
    assert linked == ["../figures/curves/c10_r164.png"] and (out.parent / linked[0]).is_file()
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
