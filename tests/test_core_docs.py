"""The generated docs are generated: docs/models.md matches the registry; the docs
page an error message names for the longer explanation exists, with that heading."""

from __future__ import annotations

import ast
import re
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


#: how a message names the page that explains more: (docs/weights.md, "Local files")
DOCS_REF = re.compile(r'\(docs/([\w-]+\.md), "([^"]+)"\)')


def test_every_docs_section_a_message_names_exists():
    named = []
    for path in sorted((ROOT / "effzoo").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                named += [(path.name, *m) for m in DOCS_REF.findall(node.value)]
    assert len(named) >= 15, named  # the messages that send the user to a page
    for where, page, heading in named:
        text = (ROOT / "docs" / page).read_text(encoding="utf-8")
        headings = {h.strip() for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
        assert heading in headings, f"{where} names docs/{page}, {heading!r}: no such heading"
