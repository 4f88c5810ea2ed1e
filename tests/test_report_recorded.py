"""The recorded view: committed records against the paper, a verdict only under the paper's protocol, README block."""

from __future__ import annotations

import copy

import pytest

from ran.config import all_runs, resolve_profile
from ran.records import RECORDS_DIR, build_record, load_records
from ran.report.curves import recorded_curves
from ran.report.io import load_paper
from ran.report.recorded import (
    README_BLOCKS,
    readme_block,
    readme_section,
    readme_table,
    recorded_table,
    standard_error_pp,
    trials_table,
    update_readme,
)
from ran.report.tables import paper_error_by_run
from test_records import train_json


@pytest.fixture(scope="module")
def paper(root):
    return load_paper(root / "workflow" / "resources" / "paper_results.yaml")


def make_record(params, run_id, seed, error, profile="cpu", training=None):
    train = train_json(run_id, seed, profile=profile)
    train["training"] = training or {**train["training"], "name": profile}
    metrics = {"profile": profile, "test_npz_sha256": "ab" * 32,
               "seeds": [{"seed": seed, "top1_error_pct": error, "num_test": 10000}]}
    from ran.config import run_config

    return build_record(profile, run_config(params, run_id), seed, train, metrics, allow_dirty=False)


def test_rows_per_paper_row_and_profile_with_verdict_only_under_the_paper_protocol(params, paper):
    paper_protocol = {**resolve_profile(params, "paper")}
    records = [make_record(params, "c10_a56_nal_mixed", 0, 40.0), make_record(params, "c10_a56_nal_mixed", 1, 42.0),
               make_record(params, "c10_a92_arl_mixed", 0, 5.5, profile="paper", training=paper_protocol)]
    table = recorded_table(params, paper, records)
    rows = {(row["table"], row["run"], row["profile"]): row for row in table.rows}
    assert set(rows) == {("Table 3", "c10_a56_nal_mixed", "cpu"), ("Table 3", "c10_a92_arl_mixed", "paper"),
                         ("Table 6", "c10_a92_arl_mixed", "paper")}
    short = rows["Table 3", "c10_a56_nal_mixed", "cpu"]
    assert short["ours"] == "41.00 ± 1.41 (n=2)" and short["paper"] == "5.89" and short["diff"] == "+35.11"
    assert short["verdict"] == "no verdict: 20 of 160000 iterations"
    assert rows["Table 6", "c10_a92_arl_mixed", "paper"]["verdict"] == "matches"  # 5.5 vs 4.99
    assert "26 of 29 paper rows have no record yet" in table.caption  # 3 rows have records


def test_readme_block_is_what_ran_tables_writes_from_the_committed_records(root, params, paper):
    """README's results table is generated: rerun `ran tables --update-readme README.md` after `ran record`."""
    records = load_records(root / RECORDS_DIR)
    table = readme_table(recorded_table(params, paper, records), records)
    section = readme_section((root / "README.md").read_text())
    assert section is not None, "README.md lost its recorded-results markers"
    assert section == readme_block(table), "README's recorded results are stale: run `ran tables ... " \
        "--update-readme README.md --update-recipe docs/recipe.md` (docs/workflow.md, 'Recording results')"
    trials = readme_section((root / "docs" / "recipe.md").read_text(), README_BLOCKS["recipe"])
    assert trials == readme_block(trials_table(records), README_BLOCKS["recipe"]), "docs/recipe.md's trials are stale"


def test_readme_table_has_one_row_per_run_and_profile(params, paper):
    records = [make_record(params, "c10_a56_arl_mixed", 0, 30.0)]
    records[0]["result"]["top1_error_pct_flip_tta"] = 29.0
    table = readme_table(recorded_table(params, paper, records), records)
    assert len(table.rows) == 1  # the run stands in Tables 1, 3 and 4
    row = table.rows[0]
    assert row["tables"] == "Table 1, 3, 4" and row["ours"] == "30.00 (n=1)" and row["tta"] == "29.00"
    assert row["images"] == f"{20 * 64:,}" and row["verdict"] == "no verdict"


def test_readme_rows_of_the_fast_recipe_say_so(params, paper):
    recipe = {**resolve_profile(params, "cpu_fast"), "name": "cpu_fast"}
    records = [make_record(params, "c10_a56_arl_mixed", 0, 30.0),
               make_record(params, "c10_a56_arl_mixed", 0, 20.0, profile="cpu_fast", training=recipe)]
    rows = readme_table(recorded_table(params, paper, records), records).rows
    assert {row["profile"]: row["verdict"] for row in rows} == {
        "cpu": "no verdict", "cpu_fast": "no verdict (fast recipe, not the paper's protocol)"}


def recipe_record(params, profile, test, validation, batch_size=128, iterations=20):
    training = {**resolve_profile(params, "cpu_fast"), "name": profile, "batch_size": batch_size}
    record = make_record(params, "c10_a56_arl_mixed", 0, test, profile=profile, training=training)
    record["summary"]["iterations"] = iterations
    record["result"]["validation_error_pct"] = validation
    return record


def test_readme_shows_of_the_trials_at_a_budget_the_one_chosen_on_validation(params, paper):
    records = [make_record(params, "c10_a56_arl_mixed", 0, 30.0),
               recipe_record(params, "cpu_fast", 20.0, 25.0),  # 2,560 images: its test error is lower ...
               recipe_record(params, "cpu_fast_b64", 22.0, 24.0, batch_size=64, iterations=40),  # ... not chosen by it
               recipe_record(params, "cpu_fast_budget", 28.0, 30.0, iterations=10)]  # alone at its budget
    shown = {row["profile"] for row in readme_table(recorded_table(params, paper, records), records).rows}
    assert shown == {"cpu", "cpu_fast_b64", "cpu_fast_budget"}
    assert {row["profile"]: row["chosen"] for row in trials_table(records).rows} == {
        "cpu_fast": "", "cpu_fast_b64": "yes", "cpu_fast_budget": "yes"}
    records[2]["result"]["validation_error_pct"] = None  # a trial without validation: nothing to choose by
    shown = {row["profile"] for row in readme_table(recorded_table(params, paper, records), records).rows}
    assert shown == {"cpu", "cpu_fast", "cpu_fast_b64", "cpu_fast_budget"}


def test_trials_table_lists_only_fast_recipe_records(params, paper):
    recipe = {**resolve_profile(params, "cpu_fast"), "name": "cpu_fast"}
    records = [make_record(params, "c10_a56_arl_mixed", 0, 30.0),
               make_record(params, "c10_a56_arl_mixed", 0, 20.0, profile="cpu_fast", training=recipe)]
    records[1]["result"]["validation_error_pct"] = 21.5
    rows = trials_table(records).rows
    assert [(row["profile"], row["test"], row["validation"]) for row in rows] == [("cpu_fast", "20.00",
                                                                                    "21.50 ± 0.58 (5,000)")]
    assert rows[0]["time"] == "0 min at 128/s" and rows[0]["decay"] == "0.0001"


def test_standard_error_of_a_validation_error():
    assert standard_error_pp(50.0, 10_000) == pytest.approx(0.5)  # sqrt(0.25 / 10,000) = 0.005
    assert standard_error_pp(0.0, 5_000) == 0.0


def test_update_readme_replaces_only_the_block(tmp_path, params, paper):
    readme = tmp_path / "README.md"
    table = recorded_table(params, paper, [make_record(params, "c10_a56_nal_mixed", 0, 40.0)])
    readme.write_text(f"# Title\n\nbefore\n\n{readme_block(recorded_table(params, paper, []))}\n\nafter\n")
    assert update_readme(readme, table) is True
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith("\n\nafter\n") and "40.00 (n=1)" in text
    assert update_readme(readme, table) is False
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="no generated block"):
        update_readme(readme, table)


def test_recorded_curves_draw_records_or_a_placeholder(tmp_path, params, paper):
    record = make_record(params, "c10_a56_nal_mixed", 0, 40.0)
    history = tmp_path / "history" / "train"
    history.mkdir(parents=True)
    (history / "loss.tsv").write_text("step\tloss\n10\t2.3\n20\t2.0\n")
    (history / "accuracy.tsv").write_text("step\taccuracy\n10\t0.2\n20\t0.3\n")
    record["_history"] = str(tmp_path / "history")
    drawn = recorded_curves([record], paper_error_by_run(paper["cifar"], []), tmp_path / "with")
    empty = recorded_curves([], {}, tmp_path / "without")
    assert all(path.stat().st_size > 1000 for path in drawn + empty)
    assert (tmp_path / "with.png").stat().st_size > (tmp_path / "without.png").stat().st_size


def test_recorded_table_without_records_counts_every_paper_row(params, paper):
    table = recorded_table(copy.deepcopy(params), paper, [])
    assert table.rows == [] and "have no record yet" in table.caption


def test_error_against_images_places_each_record_at_its_budget(tmp_path, params, paper):
    from ran.report.curves import error_vs_images
    from ran.report.figures import paper_budget

    assert paper_budget(params) == 160000 * 64
    records = [make_record(params, "c10_a56_nal_mixed", 0, 40.0)]
    paper_error = paper_error_by_run(paper["cifar"], all_runs(params))
    drawn = error_vs_images(records, paper_error, paper_budget(params), tmp_path / "with")
    empty = error_vs_images([], paper_error, paper_budget(params), tmp_path / "without")
    assert [path.suffix for path in drawn] == [".png", ".pdf"] and all(path.stat().st_size > 1000 for path in empty)
    assert (tmp_path / "with.png").stat().st_size > (tmp_path / "without.png").stat().st_size
