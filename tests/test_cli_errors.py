"""Every command-line mistake: a non-zero exit and one line naming the fix, no traceback,
before any network, training or timing; valid edge values work.

The ``effzoo`` cases run in-process through ``effzoo.cli.main``; ``benchmarks/bench.py``'s
error cases run in-process through its ``main`` (they stop before torch is configured),
its valid edge case in a subprocess.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import effzoo.cli
from effzoo.cli import DEBUG_ENV, main

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``effzoo ARGV`` in-process: (exit code, stdout, stderr)."""
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, prefix: str, *words: str) -> str:
    """A non-zero exit, no traceback, and a last stderr line that starts with ``prefix``
    and holds each of ``words`` (the fix it names). Returns that line."""
    assert code != 0, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert lines, "nothing on stderr"
    last = lines[-1]
    assert last.startswith(prefix), last
    for w in words:
        assert w in last, (w, last)
    return last


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory with ``afile`` (a regular file) and ``ro`` (a directory that
    cannot be written, for root too), HOME pointed at ``home``; nothing leaves it."""
    (tmp_path / "afile").write_text("x")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.access(ro, os.W_OK):  # root writes anywhere: deny it as a user would be denied
        real = os.access

        def access(path: Any, mode: int, *a: Any, **k: Any) -> bool:
            if mode & os.W_OK and Path(path).absolute() == ro:
                return False
            return real(path, mode, *a, **k)

        monkeypatch.setattr(os, "access", access)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("EFFZOO_WEIGHTS", str(tmp_path / "nowhere"))
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    yield tmp_path
    ro.chmod(0o755)


@pytest.fixture
def no_fetch(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """``effzoo download``'s fetch replaced by a recorder: a case that reaches it fails."""
    calls: list[Any] = []
    monkeypatch.setattr("effzoo.cli.download.from_hub", lambda info: calls.append(info))
    return calls


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """``effzoo demo``'s run replaced by a recorder: nothing is written or trained."""
    calls: list[Any] = []
    monkeypatch.setattr("effzoo.demo.run", lambda args: calls.append(args) or {})
    return calls


# -- effzoo download -----------------------------------------------------------------------

DOWNLOAD_CASES = {
    "to-a-file": (["--to", "afile"], "is a file, not a directory", "give a directory"),
    "to-dev-null": (["--to", "/dev/null"], "is a device, not a directory", "give a directory"),
    "to-empty": (["--to", ""], "needs a directory", "e.g. --to ./weights"),
    "to-empty-equals": (["--to="], "needs a directory", "e.g. --to ./weights"),
    "to-read-only": (["--to", "ro"], "is not writable", "choose a directory you can write"),
    "to-under-read-only": (["--to", "ro/sub"], "ro is not writable", "choose a directory"),
    "to-under-a-file": (["--to", "afile/sub"], "afile is a file", "choose another path"),
    "to-unknown-user": (["--to", "~no_such_user_x/w"], "cannot expand", "give the full path"),
}


@pytest.mark.parametrize("case", DOWNLOAD_CASES, ids=list(DOWNLOAD_CASES))
def test_download_destination_is_checked_before_any_fetch(
    case: str, place: Path, no_fetch: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    args, *words = DOWNLOAD_CASES[case]
    if "/dev/null" in args and not Path("/dev/null").exists():
        pytest.skip("no /dev/null")
    code, out, err = cli(["download", "efficientnet_lite0", *args], capsys)
    assert_one_line_error(code, err, "effzoo download: error: --to", *words)
    assert no_fetch == [] and out == ""
    assert not (place / "~").exists() and not (place / "ro" / "sub").exists()


def test_download_expands_tilde_in_to(
    place: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--to=~/w` (no shell expands it): the copy goes to $HOME/w, no folder named `~`."""
    import torch
    from safetensors.torch import save_file

    from effzoo.weights.files import WeightsFile

    src = place / "src.safetensors"
    save_file({"w": torch.zeros(2)}, str(src))
    got = WeightsFile(src, "hub", "timm/x", "main", "0" * 64)
    monkeypatch.setattr("effzoo.cli.download.from_hub", lambda info: got)
    code, out, err = cli(["download", "efficientnet_lite0", "--to=~/w"], capsys)
    assert code == 0, err
    want = place / "home" / "w" / "tf_efficientnet_lite0.in1k.safetensors"
    assert out.split() == [str(want)] and want.is_file()
    assert not (place / "~").exists()


def test_download_offline_fails_in_one_line_after_the_checks(
    place: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The one case that fetches: offline with nothing cached (and no PyPI copy: B0's
    weights ship in no package), the tag's own error (with its fix) is the last line;
    `~` was expanded and nothing was made for it."""
    code, out, err = cli(["download", "efficientnet_b0", "--to=~/w"], capsys)
    assert_one_line_error(code, err, "effzoo download: ", "HF_HUB_OFFLINE", "Fix")
    assert out == "" and not (place / "~").exists()


def test_download_write_failure_is_one_line(
    place: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The disk fills while writing a copy: that tag's error names the fix; with several
    tags a last line says which failed and how to fetch just those again."""
    from effzoo.weights.files import WeightsFile

    def full(src: Path, dst: Path, meta: dict[str, str]) -> str:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    got = WeightsFile(place / "afile", "hub", "timm/x", "main", "0" * 64)
    monkeypatch.setattr("effzoo.cli.download.from_hub", lambda info: got)
    monkeypatch.setattr("effzoo.cli.download.write_store_copy", full)
    code, _, err = cli(["download", "efficientnet_lite0", "--to", "w"], capsys)
    assert_one_line_error(code, err, "effzoo download: tf_efficientnet_lite0.in1k: error:", "free")
    code, _, err = cli(["download", "efficientnet_lite0", "efficientnet_b0", "--to", "w"], capsys)
    assert_one_line_error(
        code,
        err,
        "effzoo download: error: 2 of 2 failed",
        'effzoo download tf_efficientnet_lite0.in1k efficientnet_b0.ra_in1k --to "w"',  # any shell
    )


def test_download_cache_failure_is_one_line(
    place: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An OSError while fetching (an unwritable HF cache, say) is that tag's one line."""
    denied = PermissionError(errno.EACCES, "Permission denied", "/hf/hub")
    monkeypatch.setattr("effzoo.cli.download.from_hub", _raiser(denied))
    code, _, err = cli(["download", "efficientnet_lite0"], capsys)
    assert_one_line_error(
        code, err, "effzoo download: tf_efficientnet_lite0.in1k: error: /hf/hub", "permissions"
    )


# -- effzoo yaml ---------------------------------------------------------------------------

YAML_CASES = {
    "o-a-directory": (["-o", "."], "is a directory", "-o yolo11n-efflite0.yaml"),
    "o-a-missing-directory": (["-o", "new/"], "names a directory", "new/yolo11n-efflite0.yaml"),
    "o-empty": (["-o", ""], "needs a file name", "e.g. -o yolo11n-efflite0.yaml"),
    "o-under-a-file": (["-o", "afile/m.yaml"], "afile is a file", "choose another path"),
    "o-in-read-only": (["-o", "ro/m.yaml"], "ro is not writable", "choose a directory"),
    "o-dev-full": (["-o", "/dev/full"], "cannot write /dev/full", "free some space"),
    "width-nan": (["--width", "nan"], "--width must be a positive number", "1.0 keeps"),
    "width-inf": (["--width", "inf"], "--width must be a positive number", "1.0 keeps"),
    "width-0": (["--width", "0"], "--width must be a positive number", "1.0 keeps"),
    "depth-negative": (["--depth", "-1"], "--depth must be a positive number", "1.0 keeps"),
    "nc-0": (["--nc", "0"], "--nc must be an integer >= 1", "got 0"),
    "nc-negative": (["--nc", "-5"], "--nc must be an integer >= 1", "got -5"),
    "unknown-variant": (["--nc", "3", "-o", "afile"], "unknown model", "effzoo list"),
}


@pytest.mark.parametrize("case", YAML_CASES, ids=list(YAML_CASES))
def test_yaml_mistakes(case: str, place: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args, *words = YAML_CASES[case]
    if "/dev/full" in args and not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    variant = "efficientnet_b99" if case == "unknown-variant" else "efficientnet_lite0"
    code, out, err = cli(["yaml", variant, *args], capsys)
    assert_one_line_error(code, err, "effzoo yaml: error:", *words)
    assert "backbone:" not in out  # (Ultralytics may greet on stdout when first imported)
    assert (place / "afile").read_text() == "x"


def test_yaml_valid_edges(place: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`-o ~/...` is expanded and its folders made; `-o /dev/null`, `-o -`, `--nc 1` work."""
    code, _, err = cli(["yaml", "efficientnet_lite0", "--nc", "1", "-o", "~/m/y.yaml"], capsys)
    assert code == 0, err
    assert "nc: 1" in (place / "home" / "m" / "y.yaml").read_text()
    assert not (place / "~").exists()
    code, out, err = cli(["yaml", "efficientnet_lite0", "-o", "-"], capsys)
    assert code == 0 and "backbone:" in out, err
    if Path("/dev/null").exists():
        assert cli(["yaml", "efficientnet_lite0", "-o", "/dev/null"], capsys)[0] == 0


def test_yaml_says_what_a_width_shrunk_pretrained_backbone_starts_from(
    place: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from effzoo.yolo.rows import WIDTH_ADVICE

    for args, noted in (
        (["--width", "0.25"], True),
        (["--width", "0.5", "--depth", "0.5"], True),
        ([], False),
        (["--depth", "0.5"], False),
        (["--width", "0.25", "--scratch"], False),  # random init: nothing inherited
    ):
        code, out, err = cli(["yaml", "efficientnet_lite0", *args], capsys)
        assert code == 0 and "backbone:" in out, err
        notes = [ln for ln in err.splitlines() if ln.startswith("effzoo yaml: note:")]
        assert len(notes) == int(noted), (args, err)
        if noted:
            assert f"--width {args[1]} starts the backbone from a channel subset" in notes[0]
            assert WIDTH_ADVICE in notes[0]
    code, out, _ = cli(["yaml", "--help"], capsys)
    assert "Which backbone?" in " ".join(out.split()) and "docs/which-backbone.md" in out


# -- effzoo demo ---------------------------------------------------------------------------

DEMO_CASES = {
    "out-a-file": (["--out", "afile"], "is a file, not a directory", "give a directory"),
    "out-empty": (["--out", ""], "needs a directory", "e.g. --out ./effzoo-demo"),
    "out-under-a-file": (["--out", "afile/d"], "afile is a file", "choose another path"),
    "out-read-only": (["--out", "ro"], "is not writable", "choose a directory"),
    "epochs-0": (["--epochs", "0"], "--epochs must be an integer >= 1", "got 0"),
    "batch-negative": (["--batch", "-2"], "--batch must be an integer >= 1", "got -2"),
    "imgsz-odd": (["--imgsz", "100"], "multiple of 32", "e.g. 96 or 128"),
    "workers-negative": (["--workers", "-1"], "--workers must be an integer >= 0", "got -1"),
    "unknown-variant": (["--variant", "nope"], "unknown model 'nope'", "effzoo list"),
}


@pytest.mark.parametrize("case", DEMO_CASES, ids=list(DEMO_CASES))
def test_demo_mistakes_stop_before_training(
    case: str, place: Path, no_training: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    args, *words = DEMO_CASES[case]
    code, _, err = cli(["demo", *args], capsys)
    assert_one_line_error(code, err, "effzoo demo: error:", *words)
    assert no_training == []
    assert sorted(p.name for p in place.iterdir()) == ["afile", "home", "ro"]


def test_demo_valid_edges_reach_training(
    place: Path, no_training: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["demo", "--out", "~/d", "--epochs", "1", "--imgsz", "32", "--workers", "0"]
    code, _, err = cli([*argv, "--variant", "efficientnet-lite0"], capsys)
    assert code == 0, err
    (args,) = no_training
    assert args.out == place / "home" / "d" and args.variant == "efficientnet_lite0"


# -- the dispatcher ------------------------------------------------------------------------


def _raiser(exc: BaseException) -> Callable[[Any], Any]:
    def boom(argv: Any) -> Any:
        raise exc

    return boom


OS_ERRORS = {
    "permission": (PermissionError(errno.EACCES, "Permission denied", "/x/f"), "permissions"),
    "no-space": (OSError(errno.ENOSPC, "No space left on device", "/x/f"), "free some space"),
    "is-a-directory": (IsADirectoryError(errno.EISDIR, "Is a directory", "/x"), "file name"),
    "read-only-fs": (OSError(errno.EROFS, "Read-only file system", "/x/f"), "somewhere else"),
}


@pytest.mark.parametrize("case", OS_ERRORS, ids=list(OS_ERRORS))
def test_an_os_error_is_one_line_naming_the_fix(
    case: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    exc, fix = OS_ERRORS[case]
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    monkeypatch.setattr("effzoo.cli.info.list_main", _raiser(exc))
    code, _, err = cli(["list"], capsys)
    assert_one_line_error(code, err, "effzoo list: error: /x", exc.strerror, fix)
    assert err.count("\n") == 1, err


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    monkeypatch.setattr("effzoo.cli.info.info_main", _raiser(TypeError("bad operand\nmore")))
    code, _, err = cli(["info", "efficientnet_b0"], capsys)
    assert code == 1
    assert_one_line_error(
        code, err, "effzoo info: error: unexpected TypeError: bad operand", f"{DEBUG_ENV}=1"
    )
    assert err.count("\n") == 1, err
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(TypeError, match="bad operand"):
        main(["info", "efficientnet_b0"])


def test_help_documents_errors_and_the_debug_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = cli(["--help"], capsys)
    assert code == 0
    text = " ".join(out.split())
    assert f"{DEBUG_ENV}=1" in text and "effzoo COMMAND: error:" in text
    assert effzoo.cli.EPILOG.split()[0] in text


# -- benchmarks/bench.py -------------------------------------------------------------------


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``benchmarks/bench.py`` imported as its own script does (siblings on sys.path)."""
    monkeypatch.syspath_prepend(str(BENCH))
    import bench as module

    return module


BENCH_CASES = {
    "threads-0": (["--threads", "0"], "--threads must be an integer >= 1", "got 0"),
    "size-0": (["--size", "0"], "--size must be an integer >= 1", "got 0"),
    "size-negative": (["--size", "-32"], "--size must be an integer >= 1", "got -32"),
    "rounds-0": (["--rounds", "0"], "--rounds must be an integer >= 1", "got 0"),
    "per-round-0": (["--per-round", "0"], "--per-round must be an integer >= 1", "got 0"),
    "batch-0": (["--batch", "0"], "--batch must be an integer >= 1", "got 0"),
    "batch-negative": (["--batch", "-1"], "--batch must be an integer >= 1", "got -1"),
    "warmup-negative": (["--warmup", "-1"], "--warmup must be an integer >= 0", "got -1"),
    "peers-unknown": (["--peers", "fused,nope"], "unknown --peers entry 'nope'", "timm_cl"),
    "peers-empty": (["--peers", ","], "--peers names no runner", "onnxruntime"),
    "json-a-directory": (["--json", "."], "is a directory", "--json bench.json"),
    "json-under-a-file": (["--json", "afile/b.json"], "afile is a file", "choose another"),
}


@pytest.mark.parametrize("case", BENCH_CASES, ids=list(BENCH_CASES))
def test_bench_mistakes_stop_before_anything_runs(
    case: str,
    place: Path,
    bench: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args, *words = BENCH_CASES[case]
    ran: list[Any] = []
    monkeypatch.setattr(bench, "run", lambda a: ran.append(a) or 0)
    code = bench.main(["efficientnet_lite0", *args])
    _, err = capsys.readouterr()
    assert_one_line_error(code, err, "benchmarks/bench.py: error:", *words)
    assert ran == []


def test_bench_single_sample_runs_and_reports_no_spread(tmp_path: Path) -> None:
    """`--rounds 1 --per-round 1`: one call per runner has a median but no IQR ("-" in the
    table, null in the json), instead of statistics.StatisticsError."""
    out = tmp_path / "b.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    cmd = [sys.executable, str(BENCH / "bench.py"), "efficientnet_lite0", "--size", "32"]
    cmd += ["--rounds", "1", "--per-round", "1", "--warmup", "0", "--threads", "1"]
    cmd += ["--peers", "fused,timm", "--json", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    rows = [ln.split() for ln in proc.stdout.splitlines() if ln.startswith("efficientnet_lite0")]
    assert [r[1] for r in rows] == ["fused", "timm"] and all(r[3] == "-" for r in rows)
    results = json.loads(out.read_text())["results"]
    assert [r["iqr_ms"] for r in results] == [None, None]
    assert all(len(r["rounds"]) == 1 and r["median_ms"] > 0 for r in results)


_EFFZOO = [sys.executable, "-m", "effzoo"]


@pytest.mark.parametrize("argv", [["list"], ["yaml", "efficientnet_b0"]])
def test_a_closed_stdout_ends_with_one_line_and_a_non_zero_code(argv):
    """``effzoo list >&-`` exited 0 with the table lost; ``effzoo yaml`` said "unexpected"."""
    cmd = " ".join([*map(str, _EFFZOO), *argv]) + " >&-"
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc
    assert (
        proc.stderr.strip().splitlines()[-1]
        == f"effzoo {argv[0]}: error: standard output is closed"
    )


@pytest.mark.parametrize("encoding", ["cp1252", "ascii"])
def test_effzoo_yaml_to_a_stdout_that_cannot_encode_writes_utf8(encoding, tmp_path):
    """A Windows redirect (cp1252) failed with UnicodeEncodeError on the license line's emoji."""
    pytest.importorskip("ultralytics")
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    proc = subprocess.run(
        [*_EFFZOO, "yaml", "efficientnet_b0"], capture_output=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode("utf-8")  # the file a redirect writes: UTF-8, as Ultralytics reads
    # the first line is the installed Ultralytics' own (8.4: "# Ultralytics 🚀 AGPL-3.0 ...",
    # 8.3: "# Ultralytics YOLO 🚀, AGPL-3.0 ..."): its emoji must come out as UTF-8
    first = text.splitlines()[0]
    assert first.startswith("# Ultralytics") and "\U0001f680" in first, first
    assert "EfficientNet, [efficientnet_b0]" in text


#: `effzoo yolo` arguments Ultralytics itself refuses, and what its message says
ULTRALYTICS_ARGUMENT_ERRORS = {
    "bogus-mode": (["bogus-mode"], "'bogus-mode' is not a valid YOLO argument"),
    "empty-model": (["train", "model="], "'model=' is not a valid YOLO argument"),
    "missing-equals": (["train", "imgsz"], "'imgsz' is a valid YOLO argument but is missing"),
    "a-directory": (["predict", "model={dir}"], "is not a supported model format"),
}


@pytest.mark.parametrize("case", ULTRALYTICS_ARGUMENT_ERRORS)
def test_ultralytics_argument_errors_reach_the_user_as_themselves(
    case: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """They used to be labelled "unexpected SyntaxError ... report it if it is a bug"."""
    pytest.importorskip("ultralytics")
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    args, says = ULTRALYTICS_ARGUMENT_ERRORS[case]
    args = [a.format(dir=tmp_path) for a in args]
    code, _, err = cli(["yolo", *args], capsys)
    last = err.strip().splitlines()[-1]
    assert code == 1
    assert last.startswith("effzoo yolo: error: ") and says in last, err
    assert "unexpected" not in last and DEBUG_ENV not in last


def test_a_bug_inside_ultralytics_is_still_unexpected(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only errors raised by Ultralytics' argument checks count as the user's."""
    pytest.importorskip("ultralytics")
    import ultralytics.cfg

    def broken(*args: Any, **kwargs: Any) -> None:
        raise TypeError("unsupported operand type(s)")

    monkeypatch.delenv(DEBUG_ENV, raising=False)
    monkeypatch.setattr(ultralytics.cfg, "entrypoint", broken)
    code, _, err = cli(["yolo", "train"], capsys)
    assert code == 1 and "unexpected TypeError: unsupported operand" in err
