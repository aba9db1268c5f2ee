"""The code blocks of README.md and docs/ run as written (issue 27, item 5).

Every fenced block is one of:

- ``python``: the blocks of a page run in order in one fresh process, in an empty
  working directory, with the Hub unreachable; a line ``EXPR  # LITERAL`` (the sample
  value a page shows, ``m.out_channels   # [64, 160, 256]``) is checked: EXPR must equal
  it. A block that needs the Hub, a GPU, a trained checkpoint, or trains for minutes
  says so in a marker on the line before its fence,
  ``<!-- docs-test: parsed only: WHY -->``, and is compiled only.
- ``bash``: parsed (``bash -n``); its ``effzoo list|info|yaml`` lines run, each as
  written (``python -m effzoo`` with this checkout), in the page's working directory,
  unless the block is marked parsed only. ``pip`` lines: tests/test_install.py.
- ``yaml``: parsed, unless marked (an excerpt with ``...``).
- no language or ``text``: a sample output or a diagram; not run.

A block (or a bash line) naming a family the installed Ultralytics does not ship yet
(YOLO26 before 8.4.0, at the floor of ``scripts/compat.sh --floor``) is what a user of
that release meets: it must fail with effzoo's one-line error naming the release that
ships the family, never a traceback from inside Ultralytics; the page's other blocks
run in order without it.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARK = re.compile(r"<!-- docs-test: parsed only: (.+?) -->")
#: effzoo sub-commands a bash block's line runs as written (quick, offline)
RUN = ("list", "info", "yaml")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    text: str
    parsed_only: str  # why, or "" when it runs

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    out = []
    for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = MARK.fullmatch(before.strip())
        line = text[: m.start()].count("\n") + 1
        out.append(Block(page, line, m.group(1), m.group(2), mark.group(1) if mark else ""))
    return out


ALL = [b for page in PAGES for b in blocks(page)]


def _missing_families(text: str) -> list[str]:
    """The families ``text`` names that the installed Ultralytics does not ship yet."""
    try:
        from ultralytics import __version__
        from ultralytics.utils.checks import check_version

        from effzoo.yolo.templates import FAMILIES
    except ImportError:
        return []
    named = {m.lower() for m in re.findall(r"\b(yolo(?:11|12|26)|rtdetr)", text, flags=re.I)}
    return sorted(
        f"{name.upper()} from {fam.since}"
        for name, fam in FAMILIES.items()
        if name in named and not check_version(__version__, f">={fam.since}")
    )


def _says_which_release(out: subprocess.CompletedProcess, missing: list[str]) -> None:
    """A user of an older Ultralytics gets effzoo's error naming the release, no more."""
    assert out.returncode != 0, out.stdout[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert any(f"ships {m} on" in last for m in missing), (missing, out.stderr[-3000:])
    assert "UltralyticsContractError" in last or last.startswith("effzoo "), last


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env.update(
        PYTHONPATH=str(ROOT),
        HF_HUB_OFFLINE="1",
        YOLO_OFFLINE="true",
        YOLO_CONFIG_DIR=str(tmp / "ultralytics"),
    )
    return env


def _checked(source: str) -> str:
    """``source`` with each ``EXPR  # LITERAL`` line turned into an assertion."""
    lines = []
    for line in source.splitlines():
        code, _, comment = line.partition("  #")
        try:
            want = ast.literal_eval(comment.strip()) if comment.strip() else None
            ast.parse(code.strip(), mode="eval")
        except (SyntaxError, ValueError):
            want = None
        if want is not None and code and not code[0].isspace():
            lines.append(f"assert ({code.strip()}) == {want!r}, ({code.strip()!r}, {code.strip()})")
        else:
            lines.append(line)
    return "\n".join(lines)


def test_every_block_is_run_or_says_why_not():
    langs = {b.lang for b in ALL}
    assert langs <= {"python", "bash", "yaml", "text", ""}, langs
    assert sum(1 for b in ALL if b.lang == "python" and not b.parsed_only) >= 4


@pytest.mark.parametrize("block", [b for b in ALL if b.lang == "python"], ids=lambda b: b.id)
def test_python_blocks_compile(block):
    compile(block.text, block.id, "exec")


PY_PAGES = sorted({b.page for b in ALL if b.lang == "python" and not b.parsed_only})


@pytest.mark.slow
@pytest.mark.parametrize("page", PY_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run_in_order(page, tmp_path):
    runnable = [b for b in blocks(page) if b.lang == "python" and not b.parsed_only]
    newer = [b for b in runnable if _missing_families(b.text)]

    def run(source: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", source],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            env=_env(tmp_path),
        )

    ordered = [b for b in runnable if b not in newer]
    out = run("\n".join(f"# {b.id}\n{_checked(b.text)}" for b in ordered))
    assert out.returncode == 0, f"{[b.id for b in ordered]}:\n{out.stderr[-4000:]}"
    for b in newer:  # alone: effzoo's error naming the release that ships the family
        _says_which_release(run(f"# {b.id}\n{b.text}"), _missing_families(b.text))


@pytest.mark.parametrize("block", [b for b in ALL if b.lang == "bash"], ids=lambda b: b.id)
def test_bash_blocks_parse_and_their_effzoo_lines_run(block, tmp_path):
    parsed = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True)
    assert parsed.returncode == 0, parsed.stderr
    if block.parsed_only:
        return
    for line in block.text.replace("\\\n", " ").splitlines():  # continued lines, as bash
        argv = shlex.split(line, comments=True)
        if argv[:1] != ["effzoo"] or len(argv) < 2 or argv[1] not in RUN:
            continue
        out = subprocess.run(
            [sys.executable, "-m", "effzoo", *argv[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            env=_env(tmp_path),
        )
        missing = _missing_families(line)
        if missing:
            _says_which_release(out, missing)
        else:
            assert out.returncode == 0, (line, out.stderr[-3000:])


@pytest.mark.parametrize("block", [b for b in ALL if b.lang == "yaml"], ids=lambda b: b.id)
def test_yaml_blocks_parse(block):
    if not block.parsed_only:
        assert yaml.safe_load(block.text) is not None


def test_the_demo_data_one_liner_in_the_docs_is_the_one_the_error_prints():
    pytest.importorskip("ultralytics")
    from effzoo.cli.yolo import DEMO_DATA

    command = DEMO_DATA.split(" writes ")[0]
    assert command in (ROOT / "docs" / "yolo.md").read_text()


def test_effzoo_help_names_every_family():
    pytest.importorskip("ultralytics")
    from effzoo.yolo.templates import FAMILIES

    out = subprocess.run(
        [sys.executable, "-m", "effzoo", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout
    text = " ".join(out.split())
    for family in FAMILIES:
        shown = "RT-DETR" if family == "rtdetr" else family.upper()
        assert shown in text, (shown, text)


def test_the_int8_tables_live_on_one_page():
    """deploy.md holds the INT8 measurements; which-backbone.md links to them (they
    were on both pages, the same numbers twice). The compare report which-backbone.md
    shows (its own run, with int8 columns) is not a copy of them."""

    def text(page: Path) -> str:
        s = page.read_text()
        if WB_START in s:
            s = s.split(WB_START, 1)[0] + s.split(WB_END, 1)[1]
        return s

    pages = {
        page.name
        for page in PAGES
        for header in re.findall(r"^\|.*\|$", text(page), flags=re.M)
        if "int8" in header.lower() and "---" not in header and header.count("|") > 3
    }
    assert pages == {"deploy.md"}, pages


WB_START = "<!-- effzoo compare report: benchmarks/results/which-backbone/compare.md -->"
WB_END = "<!-- end of the effzoo compare report -->"


def test_which_backbone_page_is_the_output_of_its_command():
    """docs/which-backbone.md shows `effzoo compare`'s report verbatim (issue 30): the
    report committed with the run, its table the run's CSV rendered by effzoo's own
    report code, and the page's command line the run's settings."""
    pytest.importorskip("ultralytics")
    import csv

    from effzoo.compare.report import _md_table

    page = (ROOT / "docs" / "which-backbone.md").read_text(encoding="utf-8")
    results = ROOT / "benchmarks" / "results" / "which-backbone"
    report = (results / "compare.md").read_text(encoding="utf-8")
    shown = page.split(WB_START, 1)[1].split(WB_END, 1)[0].strip("\n")
    demoted = re.sub(r"^#", "##", report, flags=re.M).strip("\n")
    assert shown == demoted

    with (results / "compare.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))

    def value(v: str) -> object:
        if v == "":
            return None
        try:
            return int(v)
        except ValueError:
            try:
                return float(v)
            except ValueError:
                return v

    columns = [k[: -len(" x lo")] for k in rows[0] if k.endswith(" x lo")]
    table = _md_table([{k: value(v) for k, v in r.items()} for r in rows], columns)
    assert "\n".join(table) in report

    command = " ".join(
        b.text.replace("\\\n", " ") for b in blocks(ROOT / "docs" / "which-backbone.md")
    )
    argv = shlex.split(command[command.index("effzoo compare") :])
    opts = dict(zip(argv[2::2], argv[3::2]))
    models = opts["--models"].split(",")
    assert len(rows) == len(models)
    assert f"{len(rows)} candidates trained on the demo data" in report
    assert all(r["epochs"] == opts["--epochs"] and r["seeds"] == opts["--seeds"] for r in rows)
    sizes = opts["--deploy-imgsz"].split(",")
    want = [f"{rt}@{size}" for rt in opts["--runtime"].split(",") for size in sizes]
    assert columns == want
    assert f"timed at {', '.join(sizes)} px" in report
    assert "/work" not in report and "/tmp" not in report  # no path of the machine
    assert (ROOT / "docs" / "which-backbone.png").is_file()
