"""Model yamls generated from the installed Ultralytics (nothing Ultralytics-derived ships),
and the contract check of the Ultralytics internals effzoo's patches rely on."""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys

import pytest
import torch
import yaml
import yolo_helpers
from torch import nn as torch_nn

ultralytics = pytest.importorskip("ultralytics")
from ultralytics.models.yolo.classify import ClassificationTrainer  # noqa: E402
from ultralytics.nn import tasks  # noqa: E402

import effzoo.yolo  # noqa: E402
from effzoo.errors import InvalidArgumentError, UltralyticsContractError  # noqa: E402
from effzoo.yolo import patches, seams, splice, templates  # noqa: E402

OLD = yolo_helpers.DATA_DIR / "yolo-0.1"
#: (model name, the file effzoo 0.1 shipped under that name: tests/data)
PAIRS = [(p.name, p) for p in sorted(OLD.glob("*.yaml"))] + [
    (name, yolo_helpers.recipe_path(name)) for name in yolo_helpers.RECIPES
]


def _build(d: dict) -> tasks.BaseModel:
    d = copy.deepcopy(d)
    args = d["backbone"][0][3]
    if not isinstance(args[-1], dict):
        args.append({})
    args[-1]["pretrained"] = False
    head = d["head"][-1][2]
    cls = {"Segment": tasks.SegmentationModel, "Pose": tasks.PoseModel}.get(
        head, tasks.DetectionModel
    )
    return cls(d, verbose=False)


def _summary(model: tasks.BaseModel) -> tuple[list[str], list[list[int] | int], int]:
    layers = list(model.model)
    return (
        [type(m).__name__ for m in layers],
        [m.f for m in layers],
        sum(p.numel() for p in model.parameters()),
    )


def test_every_model_name_has_its_old_file():
    """The YOLO11 names are the ones effzoo 0.1 shipped (the other families:
    tests/test_yolo_families.py)."""
    yolo11 = [n for n, m in templates.MODELS.items() if m.family == "yolo11"]
    assert sorted(yolo11) == sorted(name for name, _ in PAIRS)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "old"), PAIRS, ids=[n for n, _ in PAIRS])
def test_generated_yaml_builds_the_model_the_shipped_file_built(name, old):
    """Same layers, wiring and parameters as the file effzoo 0.1 shipped (scale n), and
    a user's own copy of that file (by path) still builds."""
    generated = yaml.safe_load(templates.cfg_text(name))
    users_copy = tasks.yaml_model_load(old)  # a file on disk wins over effzoo's names
    assert users_copy["yaml_file"] == str(old)
    assert generated["backbone"][0] == users_copy["backbone"][0]
    assert _summary(_build(generated)) == _summary(_build(users_copy))


def test_model_names_resolve_inside_ultralytics_with_their_scale(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = tasks.yaml_model_load("yolo11s-effv2s.yaml")
    assert d["scale"] == "s" and d["backbone"][0][2:] == ["EfficientNet", ["efficientnet_v2_s"]]
    recipe = tasks.yaml_model_load("yolo11-EfficientNetV1.yaml")
    assert recipe["backbone"][0] == [-1, 1, "efficient", ["efficientnet-b0", 0.25, 0.5]]
    # a file of the same name in the working directory is the user's, and it wins
    (tmp_path / "yolo11-EfficientNetV1.yaml").write_text(
        templates.cfg_text("yolo11-EfficientNetV1.yaml").replace("0.25, 0.5", "0.5, 0.5")
    )
    mine = tasks.yaml_model_load("yolo11-EfficientNetV1.yaml")
    assert mine["backbone"][0][3] == ["efficientnet-b0", 0.5, 0.5]


def test_generated_text_says_where_it_came_from():
    text = templates.cfg_text("yolo11-effb0-pose.yaml")
    source = templates.ultralytics_file("pose")
    assert text.splitlines()[0] == source.read_text().splitlines()[0]  # the license line
    assert f"from {source.name} of the installed Ultralytics {ultralytics.__version__}" in text
    d = yaml.safe_load(text)
    assert d["kpt_shape"] == yaml.safe_load(source.read_text())["kpt_shape"]
    assert d["head"][-1][0] == [12, 15, 18]  # stock [16, 19, 22], shifted by the row


def test_splice_refuses_a_head_that_reads_a_hidden_backbone_layer():
    stock = yaml.safe_load(templates.ultralytics_file("detect").read_text())
    stock["head"][1][0] = [-1, 5]  # layer 5 is a stride-2 Conv inside P4, not an output
    with pytest.raises(UltralyticsContractError, match="not a P-level output"):
        templates.splice(stock, templates.effzoo_row("efficientnet_b0"))
    del stock["backbone"][3]  # one stride-2 level fewer
    with pytest.raises(UltralyticsContractError, match="five stride-2 levels"):
        templates.splice(stock, templates.effzoo_row("efficientnet_b0"))


def test_unknown_names_and_bad_arguments_are_typed_errors():
    with pytest.raises(effzoo.InvalidArgumentError, match="effzoo yaml VARIANT"):
        templates.cfg_text("yolo11-effb9.yaml")
    with pytest.raises(effzoo.InvalidArgumentError, match="choose one of detect"):
        templates.model_yaml("efficientnet_b0", task="track")
    with pytest.raises(effzoo.InvalidArgumentError, match="nc must be an integer >= 1"):
        templates.model_yaml("efficientnet_b0", nc=0)


class _Reformatted(logging.Logger):
    """A logger whose lines start differently (as a reformatted model table would)."""

    def info(self, msg, *args, **kwargs):
        super().info(f"| {msg}", *args, **kwargs)


def test_contract_holds_on_the_installed_ultralytics():
    assert seams._contract() == []
    patches.check_contract()


@pytest.mark.parametrize(
    ("breakage", "what"),
    [
        (lambda mp: mp.delattr(tasks, "Index"), "no Index module"),
        (lambda mp: mp.setattr(tasks, "yaml_model_load", lambda path: {}), "check_yaml"),
        # a build that no longer calls the module-global parse_model (behaviour, not text)
        (
            lambda mp: mp.setattr(
                tasks.ClassificationModel, "_from_yaml", lambda self, *a, **k: None
            ),
            "no longer built through tasks.parse_model",
        ),
        (
            lambda mp: mp.setattr(
                __import__("ultralytics.engine.exporter").engine.exporter,
                "Exporter",
                type("Exporter", (), {"__call__": lambda self: None}),
            ),
            "the Exporter no longer fuses",
        ),
        # the rebuild for a checkpoint moved out of get_model(cfg, weights): a replacement
        # set on the class directly is not wrapped, so the probe's rebuild starts random
        (
            lambda mp: mp.setattr(
                ClassificationTrainer,
                "get_model",
                lambda self, cfg=None, weights=None, verbose=True: tasks.ClassificationModel(
                    cfg, nc=2, verbose=False
                ),
            ),
            "trainers no longer rebuild models through get_model(cfg, weights)",
        ),
    ],
)
def test_a_moved_internal_is_one_error_naming_the_versions(monkeypatch, breakage, what):
    breakage(monkeypatch)
    with pytest.raises(UltralyticsContractError) as e:
        patches.check_contract()
    msg = str(e.value)
    assert what in msg and ultralytics.__version__ in msg
    assert f'pip install "ultralytics{patches.SUPPORTED}"' in msg


def _fresh_cache(tmp_path) -> dict[str, str]:
    """A process of its own with an empty effzoo cache: no cached verdict of the probe."""
    return {"EFFZOO_CACHE": str(tmp_path / "effzoo-cache")}


_ROW_MODEL = """
        from ultralytics.nn.tasks import DetectionModel
        ROW = {"nc": 2, "backbone": [[-1, 1, "EfficientNet", [
            "efficientnet_lite0", {"width": 0.25, "pretrained": False, "levels": [3, 4, 5]}]]],
            "head": [[[0, 1, 2], 1, "Detect", ["nc"]]]}
"""


def test_a_required_seam_is_checked_at_the_first_row_and_takes_every_patch_back(tmp_path):
    """Registering checks nothing (it costs nothing); the first effzoo row built checks
    the seams, and a required one that does not hold is one error, after which stock
    Ultralytics is as it was."""
    code = (
        _ROW_MODEL
        + """
        from ultralytics.nn import tasks
        del tasks.Index
        import effzoo.yolo                      # no error: nothing is checked yet
        patched = lambda: getattr(tasks.parse_model, "__effzoo__", False)
        print(patched())
        try:
            DetectionModel(ROW, verbose=False)
        except Exception as e:
            print(type(e).__name__, "no Index module" in str(e), patched())
    """
    )
    out = yolo_helpers.run_fresh(code, env=_fresh_cache(tmp_path))
    assert out.split() == ["True", "UltralyticsContractError", "True", "False"], out


def test_a_failed_probe_takes_every_patch_back(tmp_path):
    """The probe runs with the patches in place (it builds an effzoo row through them);
    when a required seam fails it, nothing of effzoo stays in Ultralytics."""
    code = (
        _ROW_MODEL
        + """
        import effzoo.yolo
        from ultralytics.engine.trainer import BaseTrainer
        from ultralytics.models.yolo.classify import ClassificationTrainer
        from ultralytics.models.yolo.detect import DetectionTrainer
        from ultralytics.nn import tasks

        # the rebuild for a checkpoint moved out of get_model(cfg, weights)
        ClassificationTrainer.get_model = (
            lambda self, cfg=None, weights=None, verbose=True:
            tasks.ClassificationModel(cfg, nc=2, verbose=False))
        try:
            DetectionModel(ROW, verbose=False)
        except Exception as e:
            print(type(e).__name__, "get_model(cfg, weights)" in str(e))
        import sys
        patches = sys.modules["effzoo.yolo.patches"]
        from ultralytics.engine import exporter, model
        from ultralytics.utils import dist
        seams = (
            tasks.parse_model, tasks.check_yaml, tasks.BaseModel.fuse, DetectionTrainer.get_model,
            BaseTrainer.get_model, BaseTrainer.__init_subclass__, exporter.Exporter.__call__,
            model.Model._load, dist.generate_ddp_file,
        )
        marked = [getattr(getattr(f, "__func__", f), "__effzoo__", False) for f in seams]
        print(any(marked), patches.registered())
    """
    )
    out = yolo_helpers.run_fresh(code, env=_fresh_cache(tmp_path))
    assert out.split() == ["UltralyticsContractError", "True", "False", "False"], out


def test_an_optional_seam_that_does_not_match_degrades_with_one_warning(tmp_path):
    """A reformatted model table (an optional seam: logs only) is one warning naming the
    seam and the Ultralytics version; the row still builds, predicts and exports, and a
    second build says nothing more."""
    code = (
        _ROW_MODEL
        + """
        import logging, warnings, torch, ultralytics
        from ultralytics.nn import tasks

        class Reformatted(logging.Logger):
            def info(self, msg, *args, **kwargs):
                super().info(f"| {msg}", *args, **kwargs)

        tasks.LOGGER = Reformatted("reformatted")
        import effzoo.yolo
        from effzoo.yolo import patches
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = DetectionModel(ROW, verbose=False)
            again = DetectionModel(ROW, verbose=False)
        said = [str(w.message) for w in caught if w.category is patches.SeamDegradedWarning]
        print(len(said), "'model table'" in said[0], ultralytics.__version__ in said[0])
        print(type(model.model[0]).__name__, patches.registered())
        out = again.eval().fuse(verbose=False)(torch.rand(1, 3, 64, 64))
        print(tuple(out[0].shape))
    """
    )
    out = yolo_helpers.run_fresh(code, env=_fresh_cache(tmp_path))
    assert out.split() == ["1", "True", "True", "BackboneStem", "True", "(1,", "6,", "84)"], out


def test_the_probe_runs_once_per_ultralytics_version_and_never_on_loading(tmp_path):
    """``import effzoo.yolo`` imports no timm and checks nothing; the first effzoo row runs
    the probe and caches its verdict, so the next process does not run it; loading a
    checkpoint (unpickling it) runs no check at all."""
    env = _fresh_cache(tmp_path)
    first = (
        _ROW_MODEL
        + f"""
        import sys
        import effzoo.yolo
        print("timm" in sys.modules, "effzoo.backbone" in sys.modules)
        from ultralytics import YOLO
        yolo = YOLO("yolo11n.yaml")
        yolo.model = DetectionModel(ROW, verbose=False)
        yolo.ckpt = {{}}
        yolo.save({str(tmp_path / "best.pt")!r})
    """
    )
    assert yolo_helpers.run_fresh(first, env=env).split()[-2:] == ["False", "False"]
    cached = json.loads((tmp_path / "effzoo-cache" / "yolo-seams.json").read_text())
    assert [f"ultralytics {ultralytics.__version__}" in key for key in cached] == [True]
    again = (
        _ROW_MODEL
        + f"""
        import effzoo.yolo
        from effzoo.yolo import seams
        def refuse(*args, **kwargs):
            raise AssertionError("checked again")
        seams._probe_rows = refuse
        DetectionModel(ROW, verbose=False)      # the cached verdict: no probe
        seams._static = refuse
        seams.ensure_contract = refuse
        seams._CHECKED = False
        from ultralytics import YOLO
        yolo = YOLO({str(tmp_path / "best.pt")!r})
        print(type(yolo.model.model[0]).__name__)
    """
    )
    assert yolo_helpers.run_fresh(again, env=env).split()[-1] == "BackboneStem"


def test_registering_shows_nothing():
    """The probe's build and rebuild are not shown: importing effzoo.yolo prints what
    importing Ultralytics alone prints, nothing more."""
    env = {**os.environ, **yolo_helpers.HUB_OFFLINE, "PYTHONPATH": yolo_helpers.pythonpath()}

    def shown(code: str) -> tuple[int, str, str]:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            cwd=str(yolo_helpers.session_root()),
        )
        return proc.returncode, proc.stdout, proc.stderr

    stock = shown("from ultralytics.nn import tasks; from ultralytics.engine import exporter")
    assert shown("import effzoo.yolo") == stock


def test_offline_quieting_is_opt_in():
    code = """
        import effzoo.yolo
        from ultralytics.utils import checks
        before = getattr(checks.check_font, "__effzoo__", False)
        effzoo.yolo.quiet_ultralytics()
        print(before, getattr(checks.check_font, "__effzoo__", False))
    """
    assert yolo_helpers.run_fresh(code).split() == ["False", "True"]


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("yolo11n-efflite0", "yolo11n-efflite0.yaml"),  # no suffix: taken for weights
        ("YOLO11n-efflite0.yaml", "yolo11n-efflite0.yaml"),
        ("yolo11n-efflite0.yml", "yolo11n-efflite0.yaml"),
        ("yolo26s-P2-effb0.yaml", "yolo26s-p2-effb0.yaml"),
        ("yolo11-efficientnetv1.yaml", "yolo11-EfficientNetV1.yaml"),
    ],
)
def test_a_mistyped_model_name_gets_the_right_one(typed, meant, tmp_path, monkeypatch):
    """Stock Ultralytics says FileNotFoundError with no hint."""
    from ultralytics import YOLO

    monkeypatch.chdir(tmp_path)
    with pytest.raises(effzoo.InvalidArgumentError, match=f"did you mean effzoo's '{meant}'"):
        YOLO(typed)


def test_names_that_are_not_effzoo_names_are_left_to_ultralytics(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert templates.suggest_name("yolo11n-efflite0.yaml") is None  # exact: it builds
    for name in ("yolo11n.yaml", "my-model.yaml", "yolo11n.pt", "x" * 300):
        assert templates.suggest_name(name) is None, name
    (tmp_path / "YOLO11n-efflite0.yaml").write_text(templates.cfg_text("yolo11-efflite0.yaml"))
    assert tasks.yaml_model_load("YOLO11n-efflite0.yaml")["yaml_file"] == "YOLO11n-efflite0.yaml"


@pytest.mark.parametrize(
    ("module", "args", "stride"),
    [
        ("ADown", [256], 2),  # halves the size; no stride among its arguments
        ("Conv", [64, 3, 2], 2),
        ("Conv", [64, 3, 1], 1),
        ("C3k2", [256, False, 0.25], 1),
        ("HGStem", [32, 48], 4),
        ("ResNetLayer", [3, 64, 1, True, 1], 4),  # the first row: 3 channels, conv + pool
        ("nn.MaxPool2d", [2, 2], 2),
    ],
)
def test_a_stock_row_s_stride_is_what_its_module_does(module, args, stride):
    assert splice._stride(module, args) == stride


class EfficientNetV3(torch_nn.Module):
    """A user's own module, named like effzoo's (registered in ``ultralytics.nn.tasks``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch_nn.Conv2d(3, 3, 3, 2, 1)

    def forward(self, x):
        return self.conv(x)


def test_a_user_module_registered_in_tasks_is_never_refused(monkeypatch):
    """Stock Ultralytics builds a row of a module put into ``tasks``; so does it with
    effzoo imported, whatever its name resembles. Unregistered, the same name is a
    misspelling of effzoo's and gets the suggestion."""
    d = {
        "nc": 2,
        "backbone": [[-1, 1, "EfficientNetV3", []], [-1, 1, "Conv", [16, 3, 2]]],
        "head": [[-1, 1, "Classify", [2]]],
    }
    with pytest.raises(InvalidArgumentError, match="did you mean 'EfficientNet'"):
        tasks.ClassificationModel(copy.deepcopy(d), ch=3, nc=2, verbose=False)
    monkeypatch.setattr(tasks, "EfficientNetV3", EfficientNetV3, raising=False)
    model = tasks.ClassificationModel(copy.deepcopy(d), ch=3, nc=2, verbose=False)
    assert type(model.model[0]) is EfficientNetV3
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 2)


def test_effzoo_env_checks_the_seams_now(monkeypatch):
    """``effzoo env`` (what a bug report needs) runs the seam check, without the cached
    verdict, and says which seam does not hold."""
    from effzoo.cli import env

    line = next(ln for ln in env.report() if ln.startswith("- Ultralytics seams"))
    req = sum(s.required for s in seams.SEAMS)
    want = f"all {len(seams.SEAMS)} hold ({req} required, {len(seams.SEAMS) - req} optional)"
    assert f"Ultralytics {ultralytics.__version__}: {want}" in line
    monkeypatch.setattr(tasks, "LOGGER", _Reformatted("effzoo-test-env"))
    line = next(ln for ln in env.report() if ln.startswith("- Ultralytics seams"))
    assert "optional 'model table' degraded" in line and "REQUIRED" not in line
    assert "model table" not in seams.DEGRADED  # a report changes nothing


def test_one_seam_table_declares_every_patch_and_the_docs_list_it():
    """``SEAMS`` is the one table: every patch ``register()`` applies is a "replaces" row
    of it (and is in place), every row holds on the installed Ultralytics, and
    docs/yolo.md's seam table lists exactly its rows, kinds and owners."""
    from effzoo.yolo import patches

    names = [s.name for s in seams.SEAMS]
    assert len(set(names)) == len(names)
    for owner, attr, _, seam in patches._patches():
        row = next(s for s in seams.SEAMS if s.name == seam)
        assert row.effzoo == "replaces" and getattr(getattr(owner, attr), "__effzoo__", False)
    assert seams._static() == []
    docs = (yolo_helpers.ROOT / "docs" / "yolo.md").read_text(encoding="utf-8")
    table = docs.split("## Ultralytics seams")[1].split("\n\n")[2].splitlines()[2:]
    rows = [[c.strip().strip("`") for c in line.strip("|").split("|")] for line in table]
    assert [r[0] for r in rows] == names
    for r, s in zip(rows, seams.SEAMS):
        assert r[1:4] == ["required" if s.required else "optional", s.effzoo, s.owner], s.name
