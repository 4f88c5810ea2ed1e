"""Report file helpers: atomic writes leave ordinary files, DVCLive files with odd columns are refused."""

import os
import re
import stat
import subprocess
import sys

import pytest

from ran.atomic import write_text_atomic
from ran.report.io import load_metrics, read_tsv_series, seed_dirs


def test_atomic_write_leaves_an_ordinary_readable_file(tmp_path):
    previous = os.umask(0o022)
    try:
        path = write_text_atomic(tmp_path / "a" / "t.md", "hello")
    finally:
        os.umask(previous)
    assert path.read_text() == "hello" and os.listdir(path.parent) == ["t.md"]  # no temporary left behind
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # as umask 022 asks, not mkstemp's 0600


def test_tsv_needs_a_step_and_one_metric(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("step\ta\tb\n1\t2\t3\n")
    with pytest.raises(ValueError, match="one metric"):
        read_tsv_series(bad)


def test_seed_dirs_are_sorted_by_seed_number(tmp_path):
    for name in ("seed10", "seed2", "seedx", "other"):
        (tmp_path / "run" / name).mkdir(parents=True)
    assert list(seed_dirs(tmp_path, "run")) == [2, 10]
    assert seed_dirs(tmp_path, "absent") == {}


def test_report_commands_never_import_tensorflow_or_keras():
    code = ("import sys; import ran.report.tables, ran.report.figures, ran.report.render, ran.report.sections; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("content, message", [
    ('{"run": "r", "top1_error_pct": {"mean": 5', "cannot be read as JSON"),
    ('[1, 2]', "holds a JSON list, not an object"),
    ('{"top1_error_pct": {"mean": "5.5", "std": 0, "n": 1}}', "field 'top1_error_pct.mean' must be a finite number"),
    ('{"top1_error_pct": {"std": 0, "n": 1}}', "field 'top1_error_pct.mean' must be a finite number, found None"),
    ('{"top1_error_pct": {"mean": NaN, "std": 0, "n": 1}}', "field 'top1_error_pct.mean' must be a finite number"),
    ('{"top1_error_pct": 5.5}', "field 'top1_error_pct' must be an object"),
])
def test_malformed_metrics_name_the_file_and_the_field(tmp_path, content, message):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "metrics.json").write_text(content)
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        load_metrics(tmp_path, "r")
    assert str(tmp_path / "r" / "metrics.json") in str(caught.value)
