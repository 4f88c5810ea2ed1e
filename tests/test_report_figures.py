"""Figures: every function writes real PNG + PDF files, missing runs become placeholders, names match outputs()."""

from __future__ import annotations

import copy
import itertools

import matplotlib.pyplot as plt
import numpy as np
import pytest

from ran.config import all_runs
from ran.report import outputs
from ran.report.curves import panel_of, training_curves
from ran.report.figures import compare_chart, make_figures, noise_chart, params_error_chart, params_error_figure
from ran.report.io import load_history, load_paper, read_tsv_series
from ran.report.masks import mask_grid, normalise, stage_keys, value_range
from ran.report.plotting import DPI, marker_boxes
from ran.report.tables import build_tables
from test_report_fakes import cut_matrix, fake_masks, fake_metrics, write_history, write_results

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMALL_MATRIX = ("c10_a56_arl_mixed", "c10_r164_noise10", "c10_a92_arl_mixed_noise10", "c10_r164")


def assert_images(paths):
    by_suffix = {p.suffix: p.read_bytes() for p in paths}
    assert by_suffix[".png"][:8] == PNG_MAGIC and len(by_suffix[".png"]) > 1000
    assert by_suffix[".pdf"][:5] == b"%PDF-" and len(by_suffix[".pdf"]) > 1000


@pytest.fixture(scope="module")
def paper(root):
    return load_paper(root / "workflow" / "resources" / "paper_results.yaml")


@pytest.fixture(scope="module")
def small_params(params):
    """The shipped matrix cut to four runs, so the whole figure set draws in seconds."""
    small = cut_matrix(params, SMALL_MATRIX)
    return small


def test_dvclive_history_is_read_by_logged_name(tmp_path):
    write_history(tmp_path / "seed0", steps=5)
    history = load_history(tmp_path / "seed0" / "live")
    assert sorted(history) == ["lr", "train/accuracy", "train/loss"]
    steps, values = read_tsv_series(tmp_path / "seed0" / "live" / "plots" / "metrics" / "train" / "loss.tsv")
    assert steps == [0, 1, 2, 3, 4] and values[0] == pytest.approx(2.3)
    assert [panel_of(n) for n in ("train/loss", "train/accuracy", "train/lr", "epoch")] == [
        "loss", "accuracy / error", "learning rate", None]


def test_training_curves_and_placeholder(tmp_path):
    write_history(tmp_path / "seed0")
    assert_images(training_curves("run", {0: load_history(tmp_path / "seed0" / "live")}, tmp_path / "curves"))
    assert_images(training_curves("missing", {}, tmp_path / "missing"))


def test_mask_grid_draws_one_row_per_image(tmp_path):
    masks = fake_masks(count=2)
    assert stage_keys({**masks, "stage10": None, "stage1_module0": None}) == ["stage1", "stage2", "stage3", "stage10"]
    assert_images(mask_grid("run", masks, tmp_path / "masks", labels=["cat", "ship"]))
    assert_images(mask_grid("resnet", {"images": np.zeros((0, 32, 32, 3), np.uint8)}, tmp_path / "none"))
    scaled = normalise(np.array([[2.0, 4.0], [3.0, 4.0]]))
    assert scaled.min() == 0.0 and scaled.max() == 1.0
    assert not normalise(np.full((2, 2), 0.7)).any()  # a flat mask stays flat instead of dividing by zero


def test_mask_ranges_stay_legible_with_negative_bounds():
    assert value_range(-0.031, -0.001) == "[\u22120.03, \u22120.00]"  # was "-0.03--0.00"
    assert value_range(0.2, 0.9) == "[0.20, 0.90]"


def test_table_charts_draw_with_and_without_our_runs(tmp_path, params, paper):
    for found in ({}, {"c10_r164_noise10": None}):
        tables = {t.name: t for t in build_tables(params, paper, found, "smoke")}
        for name in ("table1", "table6"):
            assert_images(compare_chart(tables[name], tmp_path / f"{name}-{len(found)}"))
        assert_images(noise_chart(tables["table5"], tmp_path / f"noise-{len(found)}"))
        assert_images(params_error_chart(tables["table6"], tmp_path / f"params-{len(found)}"))


@pytest.mark.parametrize("ours_error", [None, 5.0, 90.0])  # paper points only; ours among them; ours far above
def test_table6_scatter_labels_stay_apart_and_inside_the_axes(params, paper, ours_error):
    found = {} if ours_error is None else {run["run"]: fake_metrics(run, "smoke", [ours_error, ours_error + 0.4])
                                           for run in all_runs(params)}
    table6 = next(t for t in build_tables(params, paper, found, "smoke") if t.name == "table6")
    fig = params_error_figure(table6)
    try:
        for dpi in (fig.dpi, DPI):  # as drawn, and at the DPI the PNG is saved with
            fig.set_dpi(dpi)
            fig.canvas.draw()
            renderer = fig.canvas.get_renderer()
            panels = [ax for ax in fig.axes if ax.texts]
            assert len(panels) == 2
            for ax in panels:
                assert sorted(t.get_text() for t in ax.texts) == sorted(row["model"] for row in table6.rows)
                boxes, frame = [t.get_window_extent(renderer) for t in ax.texts], ax.get_window_extent(renderer)
                assert not [(a, b) for a, b in itertools.combinations(boxes, 2) if a.overlaps(b)]
                assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1
                           for b in boxes)
                markers = marker_boxes(ax, [t.xy for t in ax.texts])
                assert not [(b, m) for b in boxes for m in markers if b.overlaps(m)]
    finally:
        plt.close(fig)


def test_make_figures_writes_exactly_the_declared_outputs(tmp_path, small_params, paper):
    runs = all_runs(small_params)
    results = write_results(tmp_path, runs, "smoke", skip={"c10_r164"})
    notes = make_figures(small_params, paper, "smoke", results / "eval", results / "models", None, tmp_path / "fig")
    written = sorted(p.relative_to(tmp_path / "fig").as_posix() for p in (tmp_path / "fig").rglob("*") if p.is_file())
    assert written == sorted(outputs(small_params)["figures"])
    assert notes == ["c10_r164: no training history (placeholder curves)"]
    assert_images([tmp_path / "fig" / "masks" / f"c10_a56_arl_mixed{s}" for s in (".png", ".pdf")])


def test_output_names_are_a_pure_function_of_params(params):
    names = outputs(params)
    assert names == outputs(copy.deepcopy(params))
    assert len(names["tables"]) == 8 * 3 and names["report"] == ["report.html"]
    attention = [r for r in params["runs"] if params["runs"][r]["network"].startswith("attention")]
    assert len(names["figures"]) == 2 * (10 + len(params["runs"]) + len(attention))
    assert "masks/c10_a56_arl_mixed.png" in names["figures"] and "masks/c10_r164.png" not in names["figures"]
