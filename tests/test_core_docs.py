"""The generated docs are generated: docs/models.md matches the registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_model_table_is_up_to_date():
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_model_table.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr


def test_readme_gives_the_two_commands_and_ci_calls_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "./dev demo" in readme and "./dev test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./dev test" in ci
