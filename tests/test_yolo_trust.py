"""Every YOLO build says what its backbone started from, a checkpoint is its own start,
and bad rows, scales, sizes and inputs are refused naming the file and row."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
import yolo_helpers
from yolo_helpers import TRAIN, tiny_dataset

import effzoo
from effzoo.errors import InvalidArgumentError

pytest.importorskip("ultralytics")
from ultralytics import YOLO
from ultralytics.nn import tasks

import effzoo.yolo
from effzoo.yolo import rows, templates
from effzoo.yolo.modules import Provenance


@pytest.fixture(autouse=True)
def _hub_offline():
    with yolo_helpers.hub_offline():
        yield


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def _logged() -> Iterator[list[str]]:
    """The lines Ultralytics' LOGGER logs meanwhile, at INFO (the tests run with
    YOLO_VERBOSE=False; a user's run logs INFO)."""
    handler = _Lines()
    level = tasks.LOGGER.level
    tasks.LOGGER.addHandler(handler)
    tasks.LOGGER.setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        tasks.LOGGER.removeHandler(handler)
        tasks.LOGGER.setLevel(level)


def _build_logged(d: dict) -> tuple[tasks.DetectionModel, list[str]]:
    with _logged() as lines:
        model = tasks.DetectionModel(copy.deepcopy(d), nc=3, verbose=False)
    return model, [ln for ln in lines if ln.startswith("effzoo: ")]


def _dict(args: list, name: str = "my.yaml") -> dict:
    d = yaml.safe_load(templates.cfg_text("yolo11-effb0.yaml"))
    d["backbone"][0][3] = args
    d["yaml_file"] = name
    return d


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["efficientnet_lite0"], ["pretrained tf_efficientnet_lite0.in1k", "exact: all"]),
        (
            ["efficientnet_lite0", 0.5, 0.5],
            ["width x0.5 depth x0.5", "inherited: weight selection", "tensors sliced"],
        ),
        (["efficientnet_b0", {"pretrained": False}], ["random init: `pretrained: false`"]),
        (["efficientnet_b0"], ["random init: pretrained weights unavailable"]),
    ],
)
def test_each_build_logs_once_what_the_backbone_starts_from(monkeypatch, args, says):
    monkeypatch.setattr(rows, "_WARNED", {})
    with pytest.MonkeyPatch.context() as mp:  # the unavailable case warns too; not asserted here
        mp.setattr("warnings.warn", lambda *a, **k: None)
        model, lines = _build_logged(_dict(args))
    lines = [ln for ln in lines if ": note: " not in ln]  # the width note: tested below
    assert len(lines) == 1, lines
    assert lines[0].startswith("effzoo: my.yaml, backbone row 0: ")
    for text in says:
        assert text in lines[0]
    assert str(model.model[0].provenance) == lines[0].split("backbone row 0: ", 1)[1]
    tag = model.model[0].backbone.pretrained_cfg["tag"]
    assert (tag is None) == ("random init" in lines[0])  # never names weights not loaded


@pytest.mark.parametrize(
    ("args", "noted"),
    [
        (["efficientnet_lite0", 0.25], True),
        (["efficientnet_lite0", 0.5, 0.5], True),
        (["efficientnet_lite0"], False),  # full width: exact weights
        (["efficientnet_lite0", 1.0, 0.5], False),  # depth only
        (["efficientnet_lite0", 0.25, 1.0, False], False),  # random init: nothing inherited
    ],
)
def test_a_width_shrunk_pretrained_row_says_what_it_keeps_and_what_to_consider(args, noted):
    model, lines = _build_logged(_dict(args))
    notes = [ln for ln in lines if ": note: " in ln]
    if not noted:
        assert notes == []
        return
    assert len(notes) == 1
    assert notes[0].startswith(f"effzoo: my.yaml, backbone row 0: note: width x{args[1]:g} keeps")
    kept = sum(p.numel() for layer in model.model[:5] for p in layer.parameters())
    full = sum(p.numel() for p in effzoo.create("efficientnet_lite0").parameters())
    assert (
        f"keeps {kept / 1e6:.2f}M of the {full / 1e6:.2f}M ImageNet-trained parameters" in notes[0]
    )
    assert rows.WIDTH_ADVICE in notes[0] and "docs/which-backbone.md" in notes[0]


def test_random_init_pretrained_cfg_names_no_weights():
    assert effzoo.create("efficientnet_b0").pretrained_cfg["tag"] is None
    lite = effzoo.create("efficientnet_lite0", pretrained=True)
    assert lite.pretrained_cfg["tag"] == "tf_efficientnet_lite0.in1k"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The recipe's V1 file (b0 x0.25: ImageNet weights unavailable offline), one epoch."""
    project = tmp_path_factory.mktemp("trust")
    with yolo_helpers.hub_offline(), pytest.MonkeyPatch.context() as mp:
        mp.setattr("warnings.warn", lambda *a, **k: None)
        model = YOLO(str(yolo_helpers.recipe_path("yolo11-EfficientNetV1.yaml")))
        model.train(data=str(tiny_dataset()), project=str(project), name="v1", **TRAIN)
    return Path(model.trainer.save_dir) / "weights" / "best.pt"


def _run(code: str) -> str:
    env = {**os.environ, **yolo_helpers.HUB_OFFLINE, "PYTHONPATH": yolo_helpers.pythonpath()}
    env["YOLO_VERBOSE"] = "True"  # the log a user sees
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=str(yolo_helpers.session_root()),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_the_start_is_saved_in_the_checkpoint(trained):
    model = YOLO(str(trained))
    provenance = model.model.model[0].provenance
    assert isinstance(provenance, Provenance) and provenance.start == "random"  # data, not text
    assert provenance.backbone == "efficientnet_b0 width x0.25 depth x0.5"
    assert provenance.reason.startswith("pretrained weights unavailable")
    start = str(provenance)  # the build log's line
    assert start.startswith("efficientnet-b0".replace("-", "_") + " width x0.25 depth x0.5: ")
    assert "random init: pretrained weights unavailable" in start


@pytest.mark.slow
def test_fine_tuning_from_a_checkpoint_fetches_nothing_and_says_so(trained, tmp_path):
    out = _run(
        f"""
        from ultralytics import YOLO
        model = YOLO({str(trained)!r})
        model.train(data={str(tiny_dataset())!r}, project={str(tmp_path)!r}, name="ft",
                    epochs=1, imgsz=64, batch=4, workers=0, device="cpu", plots=False,
                    amp=False, val=False)
        print("NEW", model.trainer.best if model.trainer.best.exists() else model.trainer.last)
        """
    )
    assert "starts from random init" not in out  # no ImageNet warning: the checkpoint is the start
    assert "PretrainedUnavailableWarning" not in out
    assert f"weights from the checkpoint {trained}" in out and "nothing fetched" in out
    assert "Transferred" in out
    new = Path(out.split("NEW ")[-1].split()[0])
    provenance = YOLO(str(new)).model.model[0].provenance
    assert provenance.start == "checkpoint" and provenance.checkpoint == str(trained)
    assert provenance.earlier == YOLO(str(trained)).model.model[0].provenance
    chain = str(provenance)
    assert f"weights from the checkpoint {trained}" in chain and "it started from: " in chain


@pytest.mark.parametrize(
    ("edit", "where", "text"),
    [
        (
            lambda d: d["backbone"][0][3].append({"levels": [3, 4, 5]}),
            "my.yaml, head row",
            "needs the default levels [1, 2, 3, 4, 5]",
        ),
        (lambda d: d.update(scales={"n": 0.5}), "my.yaml, scales entry n", "[depth, width"),
        (lambda d: d.update(scales=[0.5, 0.25]), "my.yaml, scales", "mapping of scale letters"),
        (lambda d: d.update(scales={"n": ["a", "b", 3]}), "my.yaml, scales entry n", "numbers"),
        (
            lambda d: d["backbone"][0][3].append({"depth": 1000000}),
            "my.yaml, backbone row 0",
            "too large: at most 4",
        ),
        (
            lambda d: d["backbone"][0][3].append({"width": 100}),
            "my.yaml, backbone row 0",
            "too large",
        ),
        (
            lambda d: (
                d["backbone"][0][3].append({"width": "scale"})
                or d.update(scales={"n": [0.5, 1e9, 1024]})
            ),
            "my.yaml, scales entry n",
            "too large",
        ),
    ],
)
def test_rows_scales_and_sizes_that_cannot_build_name_the_file_and_row(edit, where, text):
    d = _dict(["efficientnet_b0"])
    d["backbone"][0][3] = ["efficientnet_b0"]
    edit(d)
    args = d["backbone"][0][3]
    if isinstance(args[-1], dict):
        args[-1].setdefault("pretrained", False)
    else:
        args.append({"pretrained": False})
    with pytest.raises(InvalidArgumentError) as e:
        tasks.DetectionModel(copy.deepcopy(d), nc=3, verbose=False)
    assert where in str(e.value) and text in str(e.value)


def test_a_one_channel_image_into_a_three_channel_model_is_an_error():
    model = tasks.DetectionModel(_dict(["efficientnet_b0", {"pretrained": False}]), nc=3)
    with pytest.raises(
        InvalidArgumentError,
        match=r"3-channel images, got a 1-channel input of shape \(1, 1, 64, 64\).*ch=1",
    ):
        model.eval()(torch.rand(1, 1, 64, 64))


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"width_mult": 100}, "width_mult 100 is too large: at most 4"),
        ({"depth_mult": 1e6}, "depth_mult 1000000.0 is too large"),
        ({"in_chans": 10**6}, "in_chans 1000000 is too large"),
        ({"features_only": "False"}, "features_only must be True or False"),
        ({"weights_tag": 123, "pretrained": True}, "weights_tag must be a string"),
    ],
)
def test_sizes_and_types_are_checked_before_anything_is_allocated(kwargs, text):
    with pytest.raises(InvalidArgumentError, match=text.replace("(", r"\(")):
        effzoo.create("efficientnet_b0", **kwargs)


def test_numpy_scalars_are_numbers():
    m = effzoo.create(
        "efficientnet_b0", width_mult=np.float32(0.5), out_indices=(np.int64(3), np.int64(4))
    )
    assert m.width_mult == 0.5 and m.out_indices == (3, 4)
    assert isinstance(effzoo.create("efficientnet_b0", features_only=np.False_), effzoo.Classifier)
    with pytest.raises(InvalidArgumentError, match="features_only"):
        effzoo.create("efficientnet_b0", features_only=np.float32(1.0))


def test_list_models_takes_a_pattern_string():
    with pytest.raises(InvalidArgumentError, match="pattern"):
        effzoo.list_models(None)  # type: ignore[arg-type]


def test_only_an_unfused_checkpoint_of_the_same_row_is_the_start():
    """What `checkpoint_start` accepts as the start of a rebuild: the weights a trainer's
    get_model was given (any trainer class, one defined after registration too); a
    user's own function named get_model with a `weights` argument is not a rebuild."""
    from ultralytics.engine.trainer import BaseTrainer

    from effzoo.yolo import patches

    d = _dict(["efficientnet_b0", {"pretrained": False}])
    spec = effzoo.yolo.find_row(copy.deepcopy(d))
    model = tasks.DetectionModel(copy.deepcopy(d), nc=3, verbose=False)
    model.pt_path = "run/weights/best.pt"

    class Probe(BaseTrainer):  # defined after register(): wrapped by __init_subclass__
        def get_model(self, cfg=None, weights=None, verbose=True):
            return patches.checkpoint_start(self.row)

    trainer = object.__new__(Probe)
    trainer.row = spec
    found = trainer.get_model(weights=model)
    assert found == ("run/weights/best.pt", model.model[0].provenance)
    assert trainer.get_model(None, model) == found  # positional, as Ultralytics may call it
    assert trainer.get_model(weights=None) is None
    assert patches.checkpoint_start(spec) is None  # not inside a get_model at all

    def get_model(cfg=None, weights=None):  # a user's own helper of the same shape
        return patches.checkpoint_start(spec)

    assert get_model(weights=model) is None
    trainer.row = effzoo.yolo.find_row(_dict(["efficientnet_b0", 0.5, 1.0, False]))
    assert trainer.get_model(weights=model) is None  # another row: not its start
    trainer.row = spec
    model.eval().fuse()  # folded weights could not be transferred: not a start
    assert trainer.get_model(weights=model) is None


def test_a_checkpoint_with_string_provenance_is_still_the_start():
    """Checkpoints written before provenance became data hold it as a string: a rebuild
    from one starts from it and keeps the line in its own record."""
    from ultralytics.engine.trainer import BaseTrainer

    from effzoo.yolo import patches

    d = _dict(["efficientnet_b0", {"pretrained": False}])
    spec = effzoo.yolo.find_row(copy.deepcopy(d))
    old = tasks.DetectionModel(copy.deepcopy(d), nc=3, verbose=False)
    line = "efficientnet_b0: pretrained efficientnet_b0.ra_in1k from timm/... exact: all"
    old.model[0].provenance = line  # as such a checkpoint unpickles

    class Rebuild(BaseTrainer):
        def get_model(self, cfg=None, weights=None, verbose=True):
            return tasks.DetectionModel(copy.deepcopy(d), nc=3, verbose=False)

    new = object.__new__(Rebuild).get_model(weights=old).model[0].provenance
    assert isinstance(new, Provenance) and new.start == "checkpoint" and new.earlier == line
    assert str(new).endswith(f"it started from: {line}")
    assert patches.checkpoint_start(spec) is None


def test_the_model_table_shows_the_multipliers():
    with _logged() as lines:
        tasks.DetectionModel(_dict(["efficientnet_b0", 0.25, 0.5, False]), nc=3, verbose=True)
    rows = [ln for ln in lines if "effzoo.yolo.modules.Backbone" in ln]
    assert len(rows) == 5
    assert "efficientnet_b0 x0.25/0.5 P1 (8 ch)" in rows[0]
    assert "efficientnet_b0 x0.25/0.5 P5 (80 ch)" in rows[4]


#: nine levels of nine aliases: 9**9 (387 million) strings once expanded, 2 kB of YAML
_BOMB = "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else ', '.join(['lol'] * 9)}]\n"
    for i in range(9)
)
#: where in an effzoo model yaml the bomb goes: (row args or scales, the message it gets)
_BOMB_PLACES = {
    "variant": ("[-1, 1, EfficientNet, [*l8]]", "the first arg must be a variant name"),
    "width": ("[-1, 1, EfficientNet, [efficientnet_b0, *l8]]", "width must be a positive"),
    "levels": ("[-1, 1, EfficientNet, [efficientnet_b0, {levels: *l8}]]", "levels must be"),
    "option": ("[-1, 1, EfficientNet, [efficientnet_b0, {bogus: *l8}]]", "unknown option"),
    "scales": ("[-1, 1, EfficientNet, [efficientnet_b0]]", "scales entry n"),
}


#: the same rows with a plain wrong value where the bomb goes (the bomb is still defined)
_PLAIN_PLACES = {
    "variant": "[-1, 1, EfficientNet, [[lol]]]",
    "width": "[-1, 1, EfficientNet, [efficientnet_b0, [lol]]]",
    "levels": "[-1, 1, EfficientNet, [efficientnet_b0, {levels: [lol]}]]",
    "option": "[-1, 1, EfficientNet, [efficientnet_b0, {bogus: [lol]}]]",
    "scales": "[-1, 1, EfficientNet, [efficientnet_b0]]",
}


def test_a_yaml_alias_bomb_in_an_effzoo_row_fails_fast_and_small(tmp_path):
    """A "billion laughs" row is refused with effzoo's typed error in bounded time and
    memory: no check or message expands it (a watchdog kills the process at 1.5 GiB).
    Time is bounded by the same refusal of a plain wrong value in the same file, timed in
    the same process: expanding 9**9 strings would take thousands of times longer, a busy
    machine slows both alike."""
    head = "head:\n  - [[-1], 1, Detect, [nc]]\n"
    for place, (row, _) in _BOMB_PLACES.items():
        scales = "scales:\n  n: *l8\n" if place == "scales" else ""
        text = f"{_BOMB}nc: 3\n{scales}backbone:\n  - {row}\n{head}"
        (tmp_path / f"yolo11n-{place}.yaml").write_text(text)
        scales = "scales:\n  n: [lol]\n" if place == "scales" else ""
        text = f"{_BOMB}nc: 3\n{scales}backbone:\n  - {_PLAIN_PLACES[place]}\n{head}"
        (tmp_path / f"yolo11n-plain{place}.yaml").write_text(text)
    out = yolo_helpers.run_fresh(
        f"""
        import os, resource, threading, time
        def watchdog():
            while True:
                rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
                if rss > 1.5 * 2**30:
                    print("OUT OF BOUNDS", flush=True)
                    os._exit(3)
                time.sleep(0.05)
        threading.Thread(target=watchdog, daemon=True).start()
        import effzoo.yolo
        from ultralytics.nn.tasks import DetectionModel
        from effzoo.errors import InvalidArgumentError
        def refuse(name):
            t = time.perf_counter()
            try:
                DetectionModel({str(tmp_path)!r} + f"/yolo11n-{{name}}.yaml", verbose=False)
            except InvalidArgumentError as e:
                return time.perf_counter() - t, str(e)
            return None, "built"
        refuse("plainvariant")  # imports and first-use checks, outside any timing
        for place in {list(_BOMB_PLACES)!r}:
            plain = max(refuse("plain" + place)[0] for _ in range(3))
            seconds, message = min(refuse(place) for _ in range(2))
            if seconds is None:
                print(place, "built")
            else:
                print(place, round(seconds / plain, 2), len(message), message[:300])
        """,
        timeout=600,
    )
    lines = {ln.split()[0]: ln.split(maxsplit=3) for ln in out.splitlines() if ln.strip()}
    for place, (_, message) in _BOMB_PLACES.items():
        assert place in lines, out
        _, ratio, length, text = lines[place]
        assert float(ratio) < 50 and int(length) < 4000, lines[place]
        assert message in text, lines[place]
