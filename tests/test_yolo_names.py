"""Every name of the documented pattern resolves (issue 27, item 2):
``<family>[scale][-p2|-p6]-<backbone>[-seg|-pose|-obb|-cls].yaml``, generated on demand
from the installed Ultralytics' files; a name that does not parse gets effzoo's error
with a close match; a level or task the family lacks is a clear error."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
import yaml
import yolo_helpers

ultralytics = pytest.importorskip("ultralytics")
from ultralytics import YOLO  # noqa: E402

import effzoo  # noqa: E402
import effzoo.yolo  # noqa: E402
from effzoo.cli import main as cli  # noqa: E402
from effzoo.errors import InvalidArgumentError  # noqa: E402
from effzoo.yolo import templates  # noqa: E402

SUFFIX = {"detect": "", "segment": "-seg", "pose": "-pose", "obb": "-obb", "classify": "-cls"}
HEAD = {
    "detect": "Detect",
    "segment": "Segment",
    "pose": "Pose",
    "obb": "OBB",
    "classify": "Classify",
}


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """A user's working directory, the Hub unreachable: the backbone starts from random
    init with effzoo's warning (these tests are about names, not weights)."""
    monkeypatch.chdir(tmp_path)
    for key, value in yolo_helpers.HUB_OFFLINE.items():
        monkeypatch.setenv(key, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", effzoo.yolo.PretrainedUnavailableWarning)
        yield


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "variant", "task", "scale"),
    [  # the names issue 27 found failing with Ultralytics' bare "does not exist"
        ("yolo11n-effb1.yaml", "efficientnet_b1", "detect", "n"),
        ("yolo11s-effb0-obb.yaml", "efficientnet_b0", "obb", "s"),
        ("yolo11m-efflite2-seg.yaml", "efficientnet_lite2", "segment", "m"),
        ("yolo26n-effv2m-pose.yaml", "efficientnet_v2_m", "pose", "n"),
    ],
)
def test_names_outside_the_examples_build_inside_ultralytics(name, variant, task, scale, offline):
    family = name.split("-")[0][:-1]
    if not yolo_helpers.ships_family(family):
        pytest.skip(f"Ultralytics {ultralytics.__version__} ships no {family}")
    assert name not in templates.MODELS  # not one of the listed examples
    model = YOLO(name)
    assert model.task == task
    assert model.model.yaml["scale"] == scale
    assert model.model.model[0].backbone.spec.name == variant
    assert type(model.model.model[-1]).__name__.startswith(HEAD[task])  # Pose26: YOLO26


def test_every_name_of_the_pattern_parses_to_its_row():
    """every backbone x family x task x level x scale: the row and the file it goes into."""
    shorts = templates.backbones()
    assert set(shorts.values()) == set(effzoo.list_models())
    combos = itertools.product(
        shorts.items(), templates.FAMILIES.values(), SUFFIX.items(), ("", "p2", "p6"), "nslmx"
    )
    for (short, variant), fam, (task, suffix), level, scale in combos:
        scale = "" if fam.name == "rtdetr" else scale  # RT-DETR's names take no scale
        name = f"{fam.name}{scale}{'-' + level if level else ''}-{short}{suffix}.yaml"
        model = templates.parse_name(name)
        assert model is not None, name
        assert templates.is_model_name(name) and templates.suggest_name(name) is None, name
        assert (model.family, model.task, model.variant) == (fam.name, task, level), name
        assert model.row == templates.effzoo_row(variant), name


def test_every_family_task_and_level_the_installed_ultralytics_has_generates():
    """cfg_text for each (family, task, level) with one backbone: a yaml whose first row is
    the effzoo row and whose head is the family's, or a clear error where the family has
    no such file in effzoo's table."""
    for fam in templates.FAMILIES.values():
        if not yolo_helpers.ships_family(fam.name):
            continue
        for (task, suffix), level in itertools.product(SUFFIX.items(), ("", "p2", "p6")):
            name = f"{fam.name}{'-' + level if level else ''}-effb0{suffix}.yaml"
            offered = task in fam.tasks and level in fam.variants and not (level and suffix)
            if offered:
                d = yaml.safe_load(templates.cfg_text(name))
                assert d["backbone"][0] == [-1, 1, "EfficientNet", ["efficientnet_b0"]], name
                continue
            with pytest.raises(InvalidArgumentError) as e:
                templates.cfg_text(name)
            msg = str(e.value)
            assert name in msg and fam.name in msg, msg
            assert ("has no" in msg) or ("detection model" in msg), msg


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("yolo11n-effb9.yaml", "yolo11n-effb8.yaml"),  # no B9: the closest backbone
        ("yolo11n-effv2x.yaml", "yolo11n-effv2xl.yaml"),
        ("yolo11s-effb0-segment.yaml", "yolo11s-effb0-seg.yaml"),
        ("yolov11n-effb0.yaml", "yolo11n-effb0.yaml"),
        ("rtdetrl-effb0.yaml", "rtdetr-effb0.yaml"),  # RT-DETR's names take no scale
        ("YOLO26n-EffB1.yml", "yolo26n-effb1.yaml"),
    ],
)
def test_a_name_that_does_not_parse_gets_effzoos_error_with_a_close_match(typed, meant, offline):
    with pytest.raises(InvalidArgumentError, match=f"did you mean effzoo's '{meant}'"):
        YOLO(typed)
    with pytest.raises(
        InvalidArgumentError, match=f"is not an effzoo model name.*did you mean '{meant}'"
    ):
        templates.cfg_text(typed)


def test_a_level_the_family_lacks_is_a_clear_error(offline):
    with pytest.raises(InvalidArgumentError, match=r"yolo11 has no P2 variant.*only yolo26"):
        YOLO("yolo11n-p2-effb0.yaml")
    with pytest.raises(InvalidArgumentError, match="rtdetr has no segment model"):
        templates.cfg_text("rtdetr-effb0-seg.yaml")


@pytest.mark.slow
def test_p6_builds_where_the_family_has_it(offline):
    """YOLO26-P6: the stock rows that build P6/64 from P5 stay after the effzoo row; the
    head reads strides 8, 16, 32, 64."""
    if not yolo_helpers.ships_family("yolo26"):
        pytest.skip(f"Ultralytics {ultralytics.__version__} ships no yolo26")
    model = YOLO("yolo26n-p6-efflite0.yaml").model
    layers = list(model.model)
    assert model.model[0].backbone.spec.name == "efficientnet_lite0"
    p6 = layers[5]  # the stock stride-2 Conv, reading the row's P5 (index 4)
    assert type(p6).__name__ == "Conv" and p6.f == -1 and p6.conv.stride == (2, 2)
    sizes: dict[int, int] = {}
    hooks = [
        layers[i].register_forward_hook(lambda m, a, o, i=i: sizes.__setitem__(i, o.shape[-1]))
        for i in layers[-1].f
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 128, 128))
    for h in hooks:
        h.remove()
    assert [128 // sizes[i] for i in layers[-1].f] == [8, 16, 32, 64]


def test_effzoo_yaml_p6_needs_a_family_with_it(capsys):
    assert cli(["yaml", "efficientnet_b0", "--p6"]) != 0
    err = capsys.readouterr().err
    assert "only yolo26 has --p2 and --p6" in err and "Traceback" not in err


def test_the_cli_help_gives_the_pattern_and_calls_the_list_examples(capsys):
    from effzoo.cli.yolo import yolo_main

    assert yolo_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert templates.PATTERN in out
    assert "examples: " + ", ".join(templates.list_cfgs()) in out
