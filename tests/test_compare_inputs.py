"""``effzoo compare``'s inputs, each checked before the first epoch (issue 36 items 1 and
6, issue 37 item 1): the data, the device, the train arguments, every candidate (files,
rows, the printed fixes, checkpoints). Each refusal is one typed line naming the input
and a fix that works when followed; nothing is trained before it."""

from __future__ import annotations

import io
import shutil
from contextlib import redirect_stderr
from pathlib import Path

import pytest
import yolo_helpers

pytest.importorskip("ultralytics")
pytest.importorskip("skimage")

from effzoo.compare.candidates import check_candidates, parse_candidates
from effzoo.compare.checks import check_data, check_device
from effzoo.errors import (
    DataNotFoundError,
    EffzooError,
    InvalidArgumentError,
    WeightsNotFoundError,
)
from effzoo.yolo import compare

SMALL = dict(epochs=1, imgsz=64, batch=4, rounds=2, processes=1, runtimes="pytorch",
             timing_budget=5.0)  # fmt: skip
TRAIN = {"workers": 0, "plots": False}


@pytest.fixture(autouse=True)
def _hub_offline():
    with yolo_helpers.hub_offline():
        yield


def _refused(error, match, tmp_path, models="yolo11n.yaml", *, built=False, **kw) -> str:
    """compare() refuses with one typed line matching ``match``; nothing was trained, and
    nothing written unless the candidates were ``built`` to be checked (into --out)."""
    out = tmp_path / "out"
    args = {**SMALL, "train_args": TRAIN, **kw}
    with pytest.raises(error, match=match) as e:
        compare(models, out=out, **args)
    assert isinstance(e.value, EffzooError) and "\n" not in str(e.value), str(e.value)
    assert not (out / "runs").exists(), "something was trained before the error"
    assert built or not out.exists(), "compare wrote something before refusing"
    return str(e.value)


def _copy_data(tmp_path: Path) -> Path:
    """The tiny dataset, copied so that a test may break it (its yaml's path: follows)."""
    src = yolo_helpers.tiny_dataset().parent
    root = tmp_path / "data"
    shutil.copytree(src, root, ignore=shutil.ignore_patterns("*.cache"))
    data = root / "data.yaml"
    data.write_text(data.read_text().replace(f"path: {src}", f"path: {root}"))
    return data


# --- the data -----------------------------------------------------------------------


def _class_out_of_range(root: Path, first_only: bool) -> None:
    files = sorted((root / "labels" / "train").glob("*.txt"))
    for f in files[:1] if first_only else files:
        f.write_text("7 0.5 0.5 0.2 0.2\n")


BROKEN = {  # how the data is broken -> (error, what the message says)
    "a class id outside names in one file": (
        lambda r: _class_out_of_range(r, True),
        (InvalidArgumentError, r"drop 1 of 8 train images.*train_0000.txt.*Label class 7 "),
    ),
    "class ids outside names in every file": (
        lambda r: _class_out_of_range(r, False),
        (InvalidArgumentError, r"drop 8 of 8 train images.*class ids 0 to 2"),
    ),
    "a label row of four numbers": (
        lambda r: (r / "labels/train/train_0003.txt").write_text("0 0.5 0.5 0.2\n"),
        (InvalidArgumentError, r"train_0003.txt.*labels require 5 columns"),
    ),
    "no labels folder": (
        lambda r: shutil.rmtree(r / "labels"),
        (DataNotFoundError, r"none of the 8 train images has a label file.*labels/train"),
    ),
    "an empty val split": (
        lambda r: [p.unlink() for p in (r / "images" / "val").iterdir()],
        (DataNotFoundError, r"the val split \(.*images/val\) holds no images"),
    ),
    "an empty train split": (
        lambda r: [p.unlink() for p in (r / "images" / "train").iterdir()],
        (DataNotFoundError, r"the train split \(.*images/train\) holds no images"),
    ),
    "a data yaml without names": (
        lambda r: (r / "data.yaml").write_text(
            "\n".join(ln for ln in (r / "data.yaml").read_text().splitlines()[:4])
        ),
        (DataNotFoundError, r"either 'names' or 'nc' are required.*names: \(the class names\)"),
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_data_is_refused_before_training(case, tmp_path):
    data = _copy_data(tmp_path)
    breaks, (error, match) = BROKEN[case]
    breaks(data.parent)
    msg = _refused(error, match, tmp_path, data=data)
    assert msg.startswith(f"data='{data}': "), msg  # from Python: the keyword, not --data


def test_a_class_id_fix_followed_is_accepted(tmp_path):
    """The advice (class ids 0 to nc-1, as names: lists them) works when followed."""
    data = _copy_data(tmp_path)
    label = data.parent / "labels" / "train" / "train_0000.txt"
    good = label.read_text()
    label.write_text("7 0.5 0.5 0.2 0.2\n")
    with pytest.raises(InvalidArgumentError, match="class ids 0 to 2"):
        check_data(data)
    label.write_text(good.replace("0 ", "2 ", 1))
    assert check_data(data)[1]["nc"] == 3


# --- the device ---------------------------------------------------------------------


def _absent(device: str) -> bool:
    import torch

    if device == "mps":
        return not torch.backends.mps.is_available()
    return torch.cuda.device_count() <= (5 if device == "5" else 0)


@pytest.mark.parametrize("device", ["5", "0", "cuda", "cpu,cpu", "mps"])
def test_a_device_this_machine_lacks_is_refused(device, tmp_path):
    if device != "cpu,cpu" and not _absent(device):
        pytest.skip(f"this machine has device {device}")
    msg = _refused(InvalidArgumentError, rf"^device='{device}': ", tmp_path, device=device)
    assert "give " in msg and "device='cpu'" in msg
    assert check_device("cpu") == "cpu"  # the fix, followed


# --- the train arguments ------------------------------------------------------------


@pytest.mark.parametrize(
    "args, match",
    [
        ({"foo": 1}, r"'foo' is not a valid YOLO argument.*`effzoo yolo cfg`"),
        ({"lr0": "abc"}, r"'lr0=abc' is of invalid type str.*'lr0=0.5'"),
        ({"optimizer": "Foo"}, r"Optimizer 'Foo' not found in list of available optimizers"),
        ({"epochs": 3}, r"compare's own options.*use data, epochs, imgsz"),
    ],
)
def test_a_bad_train_argument_is_refused_as_yolo_train_does(args, match, tmp_path):
    _refused(InvalidArgumentError, match, tmp_path, train_args={**TRAIN, **args})


def _cli(*argv: str) -> tuple[int, list[str]]:
    from effzoo.cli import main

    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["compare", *argv])
    return code, err.getvalue().strip().splitlines()


def test_the_command_line_parses_values_as_yolo_train_and_names_its_flags(tmp_path):
    out = tmp_path / "out"
    # lr0=1e-3 is a float to Ultralytics (YAML would read a string): the next check speaks
    code, lines = _cli("--data", str(tmp_path / "missing.yaml"), "--out", str(out), "--runtime",
                       "pytorch", "lr0=1e-3",
                       "optimizer=adamw", "workers=0")  # fmt: skip
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"effzoo compare: error: --data {tmp_path / 'missing.yaml'}: no")
    assert "leave --data out" in lines[0] and "data=" not in lines[0]
    code, lines = _cli("--out", str(out), "--runtime", "pytorch", "lr0=abc")
    assert code == 1 and len(lines) == 1 and "'lr0=abc' is of invalid type str" in lines[0]
    if _absent("mps"):
        code, lines = _cli("--out", str(out), "--runtime", "pytorch", "--device", "mps")
        assert lines == [
            "effzoo compare: error: --device mps: this machine has no Apple GPU (MPS), and "
            "Ultralytics would run on the CPU: give --device cpu"
        ]
    assert not out.exists()


def test_python_errors_name_keywords_not_flags(tmp_path):
    """From Python the options are keywords (issue 38 item 11): no `--` flag in the line."""
    cases = [
        ({"epochs": 0}, r"^epochs must be an integer >= 1, got 0$"),
        ({"per_round": 0}, r"^per_round must be an integer >= 1"),
        ({"imgsz": 65}, r"^imgsz must be a multiple of 32"),
        ({"data": tmp_path / "no.yaml"}, r"leave data out to compare on"),
    ]
    for kw, match in cases:
        msg = _refused((InvalidArgumentError, DataNotFoundError), match, tmp_path, **kw)
        assert "--" not in msg, msg


# --- the candidates -----------------------------------------------------------------


def test_candidate_files_that_are_no_model_are_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("backbone: [\n  - [1, 2\nhead: []\n")
    msg = _refused(InvalidArgumentError, r"'.*bad.yaml' is not valid YAML at line 2", tmp_path,
                   models=f"yolo11n.yaml,{bad}")  # fmt: skip
    assert "fix the file" in msg
    data = yolo_helpers.tiny_dataset()
    msg = _refused(InvalidArgumentError, r"is not a model yaml \(no backbone: and head:\)",
                   tmp_path, models=str(data))  # fmt: skip
    assert msg.endswith(f"it is a data yaml (train:, val:): give it as data='{data}'")
    check_data(data)  # the advice, followed: it is a data yaml compare takes


def test_a_comma_in_a_candidate_file_name_says_how_to_give_it(tmp_path):
    odd = tmp_path / "my,model.yaml"
    shutil.copy(yolo_helpers.recipe_path(yolo_helpers.RECIPES[0]), odd)
    msg = _refused(InvalidArgumentError, r"has a comma in its name, and models is split at",
                   tmp_path, models=f"yolo11n.yaml,{odd}")  # fmt: skip
    assert "rename the file (e.g. my_model.yaml)" in msg and "compare([" in msg
    # both fixes, followed: a list from Python, or the renamed file
    (cand,) = parse_candidates([str(odd)])
    assert cand.kind == "yaml" and cand.cfg == str(odd.resolve())
    renamed = odd.rename(tmp_path / "my_model.yaml")
    assert [c.name for c in parse_candidates(f"yolo11n.yaml,{renamed}")] == ["yolo11n", "my_model"]


def test_conflicting_start_words_are_refused(tmp_path):
    msg = _refused(InvalidArgumentError, r"'scratch' and 'pretrained' both set its start",
                   tmp_path, models="efficientnet_lite0:scratch:pretrained")  # fmt: skip
    fix = msg.rsplit("e.g. ", 1)[1]
    assert fix == "efficientnet_lite0:scratch"
    assert parse_candidates(fix)[0].pretrained is False  # the fix is a candidate it accepts
    _refused(InvalidArgumentError, r"'w0.5' and 'w0.25' both set its width", tmp_path,
             models="efficientnet_lite0:w0.5:w0.25")  # fmt: skip


@pytest.mark.parametrize(
    "text",
    [
        "yolo11n-effb0.yaml",
        "rtdetr-effb0.yaml",
        "efficientnet_b0:w0.5:yolo26",
        "yolo11s-effb0.yaml",
    ],
)
def test_the_printed_fix_for_weights_that_cannot_be_had_is_accepted(text, tmp_path):
    """Offline, efficientnet_b0 has no ImageNet weights here: the fix printed is a
    candidate (or a command, then a candidate) that compare takes, from scratch."""
    from effzoo.cli.yolo import yaml_main

    with pytest.raises(InvalidArgumentError, match="cannot be had here") as e:
        check_candidates(parse_candidates(text), tmp_path / "models", log=lambda m: None)
    msg = str(e.value)
    assert "effzoo download efficientnet_b0" in msg and "VARIANT" not in msg
    fix = msg.split("compare it from scratch: ", 1)[1]
    if fix.startswith("`effzoo yaml "):  # another scale: the yaml command, then the file
        command, given = fix.split("`, then models=")
        argv = command.strip("`").split()[2:]
        argv[argv.index("-o") + 1] = str(tmp_path / argv[argv.index("-o") + 1])
        assert yaml_main(argv) == 0
        fix = str(tmp_path / given.strip("'"))
    (cand,) = check_candidates(parse_candidates(fix), tmp_path / "models", log=lambda m: None)
    assert cand.start == "scratch"
    if text.startswith("yolo11s"):  # the same model: the scale letter kept
        assert cand.identity[0]["scale"] == "s"


def test_a_segmentation_name_is_refused_with_its_detection_model(tmp_path):
    match = r"is a segment model; compare trains detectors: give its detection model, yolo11n-eff"
    _refused(InvalidArgumentError, match + r"b0.yaml$", tmp_path, models="yolo11n-effb0-seg.yaml",
             built=True)  # fmt: skip
    assert parse_candidates("yolo11n-effb0.yaml")[0].kind == "effzoo"


# --- checkpoints (.pt) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def stock_pt(tmp_path_factory) -> Path:
    """A stand-in for Ultralytics' yolo11n.pt (never downloaded): yolo11n.yaml trained one
    epoch on the tiny dataset."""
    from ultralytics import YOLO

    root = tmp_path_factory.mktemp("stock")
    with yolo_helpers.hub_offline():
        YOLO("yolo11n.yaml").train(data=str(yolo_helpers.tiny_dataset()), **yolo_helpers.TRAIN,
                                   project=str(root), name="run", exist_ok=True)  # fmt: skip
    return root / "run" / "weights" / "best.pt"


@pytest.fixture
def weights_dir(tmp_path, monkeypatch) -> Path:
    """Ultralytics' weights_dir, empty (its settings file is the session's, conftest.py)."""
    from ultralytics.utils import SETTINGS

    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setitem(SETTINGS, "weights_dir", str(folder))
    return folder


def test_a_stock_checkpoint_not_on_disk_is_refused_not_downloaded(weights_dir, tmp_path):
    match = r"^candidate 'yolo11n.pt': no such checkpoint on disk, and compare downloads nothing"
    msg = _refused(WeightsNotFoundError, match, tmp_path, models="yolo11n.yaml,yolo11n.pt")
    assert msg.endswith(
        f"put yolo11n.pt in Ultralytics' weights_dir ({weights_dir}) or give its path"
    )
    assert list(weights_dir.iterdir()) == []  # nothing was downloaded there


def test_the_default_grid_adds_the_stock_checkpoints_on_disk(stock_pt, weights_dir, tmp_path):
    from effzoo.compare.candidates import stock_note

    assert not [c for c in parse_candidates(None) if c.cfg.endswith(".pt")]
    (ref,) = check_candidates(parse_candidates("yolo11n.yaml"), tmp_path, log=lambda m: None)
    note = stock_note([ref])
    assert note.startswith("The stock rows (yolo11n) start from scratch (random init)")
    assert "put yolo11n.pt and yolo26n.pt in Ultralytics' weights_dir" in note
    shutil.copy(stock_pt, weights_dir / "yolo11n.pt")  # the advice, followed
    grid = parse_candidates(None)
    pts = [c for c in grid if c.cfg.endswith(".pt")]
    assert [(c.name, c.cfg) for c in pts] == [("yolo11n.pt", str(weights_dir / "yolo11n.pt"))]
    (pt,) = check_candidates(pts, tmp_path, log=lambda m: None)
    assert (pt.kind, pt.start) == ("stock", "yolo11n.pt")
    assert stock_note([ref, pt]) == ""


def test_a_checkpoint_is_keyed_by_its_content(stock_pt, tmp_path):
    """Two files of one name with other bytes are two candidates (sha256 of the file)."""
    import hashlib

    import torch

    a, b = tmp_path / "a" / "yolo11n.pt", tmp_path / "b" / "yolo11n.pt"
    a.parent.mkdir()
    b.parent.mkdir()
    shutil.copy(stock_pt, a)
    ckpt = torch.load(a, weights_only=False)
    ckpt["date"] = "another training"
    torch.save(ckpt, b)
    (ca,) = check_candidates(parse_candidates(str(a)), tmp_path, log=lambda m: None)
    (cb,) = check_candidates(parse_candidates(str(b)), tmp_path, log=lambda m: None)
    assert ca.identity[0] == {"checkpoint": hashlib.sha256(a.read_bytes()).hexdigest()}
    assert ca.name == cb.name == "yolo11n.pt" and ca.identity != cb.identity


def test_a_damaged_or_non_detector_checkpoint_is_one_line(stock_pt, tmp_path):
    from ultralytics import YOLO

    cut = tmp_path / "cut.pt"
    cut.write_bytes(stock_pt.read_bytes()[:4096])
    match = r"^candidate '.*cut.pt' is not a checkpoint Ultralytics loads \(.*\): give a detection"
    _refused(InvalidArgumentError, match, tmp_path, models=str(cut), built=True)
    cls = tmp_path / "cls.pt"
    YOLO("yolo11n-cls.yaml").save(str(cls))
    _refused(InvalidArgumentError, r"^candidate '.*cls.pt' is a classify checkpoint; compare "
             "trains detectors", tmp_path, models=str(cls), built=True)  # fmt: skip


@pytest.mark.slow
def test_a_stock_checkpoint_is_fine_tuned_with_the_same_budget(stock_pt, weights_dir, tmp_path):
    import yaml

    shutil.copy(stock_pt, weights_dir / "yolo11n.pt")
    data, out = yolo_helpers.tiny_dataset(), tmp_path / "out"
    result = compare("yolo11n.yaml,yolo11n.pt", data=data, out=out, **SMALL, train_args=TRAIN)
    rows = {r["name"]: r for r in result.table}
    assert (rows["yolo11n.pt"]["kind"], rows["yolo11n.pt"]["start"]) == ("stock", "yolo11n.pt")
    assert rows["yolo11n"]["start"] == "scratch"
    (args,) = out.glob("runs/yolo11n.pt-seed0-*/args.yaml")  # trained from the checkpoint
    assert yaml.safe_load(args.read_text())["model"] == str(weights_dir / "yolo11n.pt")
    assert "start from scratch (random init)" not in result.report.read_text()
    # without the checkpoint row the report says, near its top, how to add it (the folder
    # moved: the runs are found there, nothing is trained again)
    shutil.copytree(out, tmp_path / "moved")
    again = compare("yolo11n.yaml", data=data, out=tmp_path / "moved", **SMALL, train_args=TRAIN)
    assert again.trained == []
    head = again.report.read_text().split("## Recommendation")[0]
    assert "The stock rows (yolo11n) start from scratch (random init)" in head


def test_the_command_line_has_an_option_per_keyword_of_compare():
    """`effzoo compare`'s options are compare()'s keywords (issue 35: --per-round and
    --warmup had drifted away): every keyword has its option, with the same default, and
    the command passes every one of them."""
    import inspect

    from effzoo.cli.yolo import FLAG_FOR, NOT_FLAGS, compare_parser
    from effzoo.compare import compare as function

    options = {a.dest: a for a in compare_parser()._actions}
    for name, param in inspect.signature(function).parameters.items():
        if name in NOT_FLAGS:
            continue
        action = options[FLAG_FOR.get(name, name)]
        default = param.default
        if isinstance(default, tuple):  # a list option is one comma-separated string
            default = ",".join(default)
        assert action.default == default, name
