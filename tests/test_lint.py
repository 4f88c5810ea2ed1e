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
