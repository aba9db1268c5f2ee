"""The effzoo command line: list and info, exit codes, stdout vs stderr."""

from __future__ import annotations

import os
import subprocess
import sys

import effzoo


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "effzoo", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )


def test_list_prints_a_table_of_every_variant():
    out = run("list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:5] == ["name", "params(P3-P5)", "P3", "P4", "P5"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert sorted(rows) == effzoo.list_models()
    assert rows["efficientnet_v2_s"][2:5] == ["64", "160", "256"]
    assert rows["efficientnet_b0"][1] == "3.60M" and rows["efficientnet_b0"][5] == "224"


def test_list_pattern_and_info():
    out = run("list", "*v2_b*")
    assert [ln.split()[0] for ln in out.stdout.splitlines()[1:]] == [
        f"efficientnet_v2_b{i}" for i in range(4)
    ]
    info = run("info", "efficientnet-b0")
    assert info.returncode == 0, info.stderr
    assert "efficientnet_b0" in info.stdout
    assert "P3/8: 40ch, P4/16: 112ch, P5/32: 320ch" in info.stdout
    assert "5.29M classifier (paper 5.3M)" in info.stdout


def test_errors_go_to_stderr_with_nonzero_exit():
    out = run("info", "efficientnet-b9")
    assert out.returncode == 1
    assert out.stdout == ""
    assert "unknown model 'efficientnet-b9'" in out.stderr and "efficientnet_b8" in out.stderr
    assert run("list", "resnet*").returncode == 1
    bad = run("frobnicate")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    assert run().returncode == 2
    assert run("--help").returncode == 0


def test_python_dash_m_effzoo_is_the_command():
    out = subprocess.run(
        [sys.executable, "-m", "effzoo", "list", "*lite0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1].split()[0] == "efficientnet_lite0"


def test_a_closed_pipe_ends_quietly():
    # `effzoo list | head -1`: the reader is gone before the table is written
    r, w = os.pipe()
    os.close(r)
    proc = subprocess.run(
        [sys.executable, "-m", "effzoo", "list"],
        stdout=w,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
    )
    os.close(w)
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 141


def test_a_bad_destination_is_one_line_through_the_real_entry_point(tmp_path):
    """`python -m effzoo`: the checks of --to run before any fetch, and no traceback."""
    (tmp_path / "afile").write_text("x")
    out = run("download", "efficientnet_lite0", "--to", str(tmp_path / "afile"))
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.splitlines() == [
        f"effzoo download: error: --to {tmp_path / 'afile'} is a file, not a directory; "
        "give a directory (it is created if missing), e.g. --to ./weights"
    ]
