"""ruff is part of the test suite, so `pytest` (the README's test command) is also the lint gate."""

import shutil
import subprocess

import pytest


def test_ruff_is_clean(root):
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: `pip install -e '.[test]'` installs it")
    result = subprocess.run([ruff, "check", "src", "tests"], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_are_formatted_with_snakefmt(root):
    """The Snakefile and rules as snakefmt writes them (its settings: pyproject.toml, [tool.snakefmt])."""
    snakefmt = shutil.which("snakefmt")
    if snakefmt is None:
        pytest.fail("snakefmt is not installed: `pip install -e '.[test]'` installs it")
    files = ["Snakefile", *sorted(str(p.relative_to(root)) for p in (root / "workflow" / "rules").glob("*.smk"))]
    result = subprocess.run([snakefmt, "--check", "--diff", *files], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, "run `snakefmt Snakefile workflow/rules`:\n" + result.stdout + result.stderr
