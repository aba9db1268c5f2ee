"""The training examples, offline (issue 27, item 4): a dataset Ultralytics cannot
download is one plain line from ``effzoo yolo`` (which dataset, where to put it, the
page that says what the offline settings do), never "unexpected ... report a bug"; the
fix it prints (the demo data's one-liner) works when followed, and the examples train on
what it writes."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yolo_helpers

pytest.importorskip("ultralytics")
pytest.importorskip("skimage")

from effzoo.cli.yolo import DEMO_DATA

#: a short training run on the CPU
TRAIN = ("epochs=1", "imgsz=64", "batch=16", "workers=0", "plots=False", "val=False", "device=cpu")
#: no download can succeed: every proxy is a closed local port
NO_NETWORK = {
    k: "http://127.0.0.1:9" for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
}


def _effzoo(args: list[str], cwd: Path, config: Path) -> subprocess.CompletedProcess:
    # without PYTEST_CURRENT_TEST: Ultralytics would take the run for its own tests and
    # write runs/ inside its package instead of its runs_dir
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env.update(yolo_helpers.HUB_OFFLINE, **NO_NETWORK)
    env.update(PYTHONPATH=yolo_helpers.pythonpath(), YOLO_CONFIG_DIR=str(config))
    return subprocess.run(
        [sys.executable, "-m", "effzoo", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


@pytest.fixture
def user(tmp_path) -> tuple[Path, Path]:
    """A working directory and Ultralytics settings whose datasets_dir is empty (set the
    way the README says: `effzoo yolo settings ...`)."""
    work, config = tmp_path / "work", tmp_path / "config"
    work.mkdir()
    out = _effzoo(
        ["yolo", "settings", f"datasets_dir={tmp_path / 'datasets'}", f"runs_dir={work / 'runs'}"],
        work,
        config,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return work, config


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["train", "val"])
def test_a_dataset_that_cannot_be_downloaded_is_one_plain_line(mode, user):
    work, config = user
    out = _effzoo(
        ["yolo", mode, "model=yolo11n-efflite0.yaml", "data=coco8.yaml", "imgsz=64", "epochs=1"],
        work,
        config,
    )
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("effzoo yolo: error: dataset 'coco8.yaml' is not on disk"), last
    for says in (
        "could not be downloaded",
        f"datasets_dir ({work.parent / 'datasets'})",
        DEMO_DATA,
        '(docs/yolo.md, "Offline")',  # what the offline settings do (and do not)
    ):
        assert says in last, last
    assert "unexpected" not in last and "report" not in last and "\x1b[" not in last, last
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_the_demo_data_one_liner_works_and_the_example_trains_on_it(user):
    """The command the error prints, as printed, then a training example on its data."""
    work, config = user
    command = re.fullmatch(r'python -c "(.*)" writes (\S+)', DEMO_DATA)
    assert command is not None, DEMO_DATA
    env = {**os.environ, "PYTHONPATH": yolo_helpers.pythonpath()}
    argv = shlex.split(DEMO_DATA.split(" writes ")[0])
    made = subprocess.run(
        [sys.executable, *argv[1:]], cwd=work, capture_output=True, text=True, env=env, timeout=300
    )
    assert made.returncode == 0, made.stderr[-2000:]
    assert (work / command[2]).is_file()
    out = _effzoo(
        ["yolo", "train", "model=yolo11n-efflite0.yaml", f"data={command[2]}", *TRAIN],
        work,
        config,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert list((work / "runs").rglob("last.pt")), "no checkpoint under the runs_dir set"


def test_errors_carry_no_terminal_colour_codes(capsys):
    """Ultralytics 8.3.x colours the argument its error names (``colorstr('red', 'bold',
    key)``); effzoo's error line and exception read plain. The key is given coloured here
    so that any installed Ultralytics puts the codes in its message."""
    from ultralytics.utils import colorstr

    from effzoo.cli import main as cli
    from effzoo.cli.yolo import yolo_main
    from effzoo.errors import InvalidArgumentError

    key = colorstr("red", "bold", "modle")
    assert "\x1b[" in key
    assert cli(["yolo", "train", f"{key}=yolo11n-efflite0.yaml"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("effzoo yolo: error: 'modle"), err  # Ultralytics' message, plain
    assert "(Ultralytics; `effzoo yolo help`)" in err and "\x1b" not in err, err
    with pytest.raises(InvalidArgumentError) as e:
        yolo_main(["train", f"{key}=x"])
    assert "'modle" in str(e.value) and "\x1b" not in str(e.value), str(e.value)


def test_where_runs_go_is_ultralytics_choice_as_the_readme_says(tmp_path):
    """README, "Where outputs go": Ultralytics computes runs_dir and weights_dir at its
    first import from where its own package lies (inside a git clone: the clone's runs/
    and weights/; elsewhere: runs/ under the working directory) and saves them in the
    user's settings file; building a model with an effzoo row changes none of it."""
    code = """
        import pathlib
        import ultralytics
        from ultralytics.utils import SETTINGS, SETTINGS_FILE
        before = pathlib.Path(SETTINGS_FILE).read_text()
        here = pathlib.Path(ultralytics.__file__).resolve()
        clone = next((d for d in here.parents if (d / ".git").exists()), None)
        want = (clone / "runs", clone / "weights") if clone else ("runs", "weights")
        got = (SETTINGS["runs_dir"], SETTINGS["weights_dir"])
        print("as documented:", got == tuple(map(str, want)))
        import warnings
        import effzoo.yolo
        from ultralytics import YOLO
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            YOLO("yolo11n-efflite0.yaml")
        print("unchanged:", pathlib.Path(SETTINGS_FILE).read_text() == before)
    """
    env = {"YOLO_CONFIG_DIR": str(tmp_path / "config")}
    out = yolo_helpers.run_fresh(code, env=env)
    assert "as documented: True" in out and "unchanged: True" in out, out


@pytest.mark.slow
def test_a_malformed_dataset_yaml_is_one_line_naming_it(user):
    work, config = user
    (work / "bad.yaml").write_text("path: .\ntrain: images\nval: images\n")  # no names
    out = _effzoo(["yolo", "val", "model=yolo11n-efflite0.yaml", "data=bad.yaml"], work, config)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("effzoo yolo: error: dataset 'bad.yaml': "), last
    assert "'names' or 'nc' are required" in last and "(Ultralytics)" in last, last
    assert "unexpected" not in last and "Traceback" not in out.stderr, out.stderr[-2000:]
