"""Red team, generated: over 300 bad inputs across the API, weights files, yaml rows and
the CLI. Each must get a typed effzoo error (or, for argparse usage mistakes, argparse's
documented exit 2): no untyped exception, no traceback out of the CLI, and nothing
silently accepted. docs/guarantees.md gives the counts. The set continues in
tests/test_bad_inputs_more.py (issue 29's kinds: credentials, broken dependencies,
console encodings, models larger than their weights, YOLO checkpoints as weights)."""

from __future__ import annotations

import copy
import itertools
import json
import math
import struct
from pathlib import Path

import pytest
import torch
import yaml
import yolo_helpers
from safetensors.torch import save_file

import effzoo
from effzoo.cli import main as cli
from effzoo.errors import CorruptWeightsError, EffzooError, WeightsMismatchError

NOT_NUMBERS = ["1", None, [1.0], {"a": 1}, b"1", 1j, True]
BAD_MULTIPLIERS = [0, -1, -0.0, math.nan, math.inf, -math.inf, 1e6, 4.5, 100, 10**400]
BAD_MULTIPLIERS += NOT_NUMBERS

# -- the API ----------------------------------------------------------------------------

API: list[tuple[str, dict]] = [
    *(("efficientnet_b0", {"width_mult": v}) for v in BAD_MULTIPLIERS),
    *(("efficientnet_v2_s", {"depth_mult": v}) for v in BAD_MULTIPLIERS),
    *(("efficientnet_lite0", {"in_chans": v}) for v in [0, -3, 1.5, "3", True, 10**6, None]),
    *(
        ("efficientnet_b0", {"out_indices": v})
        for v in [(), (5,), (-1,), (2, 2), (4, 3), "2", [1.5], None, (True,), (2, 3, 9), 7]
    ),
    *(
        ("efficientnet_b0", {"drop_path_rate": v})
        for v in [-0.1, 1, 1.5, "0.1", math.nan, None, True, [0.1]]
    ),
    *(("efficientnet_b0", {"pretrained": v}) for v in [3, 1.5, [], {}, "", "   ", b"x"]),
    *(("efficientnet_b0", {"features_only": v}) for v in ["False", 1, None, 0.0, "yes"]),
    *(
        ("efficientnet_b0", {"pretrained": True, "weights_tag": v})
        for v in [123, b"x", [], "", "nope_in1k", "tf_efficientnet_b7.ns_jft_in1k"]
    ),
    *(("efficientnet_b0", {"weights_tag": "ra_in1k"}),),  # a tag without a file
    *(("efficientnet_b0", {k: 1}) for k in ["widht_mult", "pretrain", "levels", "num_classes"]),
    *((name, {}) for name in [None, 3, "", "resnet50", "efficientnet_b99", "efficientnet-v3", [1]]),
]


@pytest.mark.parametrize(("name", "kwargs"), API, ids=[f"api{i}" for i in range(len(API))])
def test_api(name, kwargs):
    with pytest.raises(EffzooError):
        effzoo.create(name, **kwargs)


def _calls() -> list[tuple[str, object]]:
    """Other public entry points, each with a bad argument."""
    calls: list[tuple[str, object]] = []
    calls += [("list_models", v) for v in [None, 3, [], b"*"]]
    calls += [("model_info", v) for v in [None, 3, "", "nope", ["efficientnet_b0"]]]
    calls += [("lookup", v) for v in [None, 3, "", "nope", 1.5]]
    calls += [("freeze", v) for v in [-2, 99, "1", 1.5, True]]
    calls += [("cfg_text", v) for v in ["nope.yaml", "yolo11-effb9.yaml", ""]]
    calls += [
        ("model_yaml", kw)
        for kw in [
            {"task": "track"},
            {"task": None},
            {"nc": 0},
            {"nc": -1},
            {"nc": 1.5},
            {"width": 0},
            {"width": math.nan},
            {"width": 100},
            {"depth": "1"},
            {"pretrained": "no"},
        ]
    ]
    return calls


CALLS = _calls()


@pytest.mark.parametrize(("fn", "arg"), CALLS, ids=[f"call{i}" for i in range(len(CALLS))])
def test_other_entry_points(fn, arg):
    if fn in ("cfg_text", "model_yaml"):  # imported outside: its own errors would count
        pytest.importorskip("ultralytics")
        from effzoo.yolo import templates
    with pytest.raises(EffzooError):
        if fn == "freeze":
            effzoo.create("efficientnet_lite0").freeze(arg)
        elif fn in ("cfg_text", "model_yaml"):
            if fn == "cfg_text":
                templates.cfg_text(arg)
            else:
                templates.model_yaml("efficientnet_b0", **arg)
        else:
            getattr(effzoo, fn)(arg)


# -- weights files ----------------------------------------------------------------------


def _safetensors(header: object, data: bytes = b"") -> bytes:
    blob = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(blob)) + blob + data


def _files(root: Path) -> list[Path]:
    """Malformed weights files, each a different way to be wrong."""
    root.mkdir(parents=True, exist_ok=True)
    good = effzoo.create("efficientnet_lite0", features_only=False).state_dict()
    out: list[Path] = []

    def put(name: str, raw: bytes) -> None:
        path = root / name
        path.write_bytes(raw)
        out.append(path)

    torch.save(good, root / "good.pth")
    save_file({k: v.contiguous() for k, v in good.items()}, str(root / "good.safetensors"))
    pth, st = (root / "good.pth").read_bytes(), (root / "good.safetensors").read_bytes()
    for i, cut in enumerate([0, 1, 7, 8, 9, 100, 1000, len(st) // 2, len(st) - 1]):
        put(f"cut{i}.safetensors", st[:cut])
    for i, cut in enumerate([0, 1, 10, 100, 1000, len(pth) // 2, len(pth) - 10]):
        put(f"cut{i}.pth", pth[:cut])
    rng = torch.Generator().manual_seed(0)
    for i in range(10):
        noise = torch.randint(0, 256, (64 + 97 * i,), generator=rng, dtype=torch.uint8)
        put(f"noise{i}.safetensors", noise.numpy().tobytes())
        put(f"noise{i}.pth", noise.numpy().tobytes())
    entry = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    headers = [
        [],
        "a string",
        42,
        None,
        {"w": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}},
        {"w": {"dtype": "F32", "shape": [2], "data_offsets": ["0", "8"]}},
        {"w": {"dtype": "F32", "shape": [2]}},
        {"w": {"dtype": "NOPE", "shape": [2], "data_offsets": [0, 8]}},
        {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}},
        {"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}},
        {"w": entry, "__metadata__": ["not", "a", "dict"]},
        {"w": entry, "__metadata__": {"effzoo.tag": 5}},
        {"w": entry},  # a valid file, but not a model's state dict
        {"conv_stem.weight": entry},
    ]
    for i, h in enumerate(headers):
        put(f"header{i}.safetensors", _safetensors(h, b"\0" * 8))
    put("deep.safetensors", _safetensors(b"[" * 200_000 + b"]" * 200_000))
    put("badjson.safetensors", _safetensors(b"{not json"))
    put("huge_len.safetensors", struct.pack("<Q", 2**62) + b"{}")
    objs = [
        [],
        [torch.zeros(1)],
        torch.zeros(3),
        "text",
        {},
        {"state_dict": {}},
        {1: torch.zeros(1)},
        {"conv_stem.weight": torch.zeros(32)},
        {"conv_stem.weight": torch.zeros(32, 3)},
        {"blocks.0.0.conv.weight": torch.zeros(1)},
        {k: v for k, v in list(good.items())[:10]},
        {**good, "conv_stem.weight": torch.zeros(8, 3, 3, 3)},
        {k: v.flatten() for k, v in good.items()},
    ]
    for i, obj in enumerate(objs):
        torch.save(obj, root / f"obj{i}.pth")
        out.append(root / f"obj{i}.pth")
    put("wrong.suffix", pth)
    return out


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> list[Path]:
    return _files(tmp_path_factory.mktemp("bad-weights"))


N_FILES = 9 + 7 + 20 + 14 + 3 + 13 + 1


@pytest.mark.parametrize("i", range(N_FILES), ids=[f"file{i}" for i in range(N_FILES)])
def test_weights_file(bad_files, i):
    path = bad_files[i]
    with pytest.raises(EffzooError) as e:
        effzoo.create("efficientnet_lite0", pretrained=str(path))
    if path.suffix != ".suffix":
        assert isinstance(e.value, (CorruptWeightsError, WeightsMismatchError)), repr(e.value)
    assert str(path) in str(e.value) or path.name in str(e.value)


def test_the_file_list_is_complete(bad_files):
    assert len(bad_files) == N_FILES


# -- yaml rows --------------------------------------------------------------------------

ROW_ARGS: list[list] = [
    *([v] for v in [None, 3, "", "resnet50", "efficientnet_b99", ["efficientnet_b0"]]),
    *(["efficientnet_b0", v] for v in BAD_MULTIPLIERS),
    *(["efficientnet_b0", 1.0, v] for v in BAD_MULTIPLIERS),
    *(["efficientnet_b0", {"levels": v}] for v in [[], [0], [6], [3, 3], [5, 4], "P3", [1.5]]),
    *(["efficientnet_b0", {"levels": v}] for v in [[3, 4, 5], [2, 3, 4], [4, 5], [5]]),
    *(["efficientnet_b0", {"drop_path_rate": v}] for v in [-1, 1, "0.1", None, math.nan]),
    *(["efficientnet_b0", {"pretrained": v}] for v in [3, "", None, [], 1.5]),
    *(["efficientnet_b0", {k: 1}] for k in ["widht", "size", "scale", "channels"]),
    ["efficientnet_b0", 1, 1, False, [1, 2, 3, 4, 5], 7],
    ["efficientnet_b0", {"width": 1}, 1.0],
    ["efficientnet_b0", 1.0, {"width": 2.0}],
    ["efficientnet_b0", {"width": "scale"}],  # with a scale that is too large (below)
    [{"width": 1.0}],
    ["efficientnet_b0", {1: 2, "a": 3}],
    ["efficientnet_b0", {"width": 10**400}],
]
ROW_EDITS = [
    lambda d: d["backbone"][0].__setitem__(0, 2),
    lambda d: d["backbone"][0].__setitem__(0, [-1, 0]),
    lambda d: d["backbone"][0].__setitem__(1, 3),
    lambda d: d["backbone"][0].__setitem__(3, "efficientnet_b0"),
    lambda d: d["backbone"][0].__setitem__(3, []),
    lambda d: d["head"].insert(0, [-1, 1, "EfficientNet", ["efficientnet_b0"]]),
    lambda d: d["backbone"].insert(1, [-1, 1, "efficient", ["efficientnet_b0"]]),
    lambda d: d.update(scales={"n": 0.5}),
    lambda d: d.update(scales=[0.5, 0.25]),
    lambda d: d.update(scales={"n": ["a", "b", 3]}),
    lambda d: d.update(scales={"n": [0.5]}),
    lambda d: d.update(scales="n"),
    lambda d: d["head"][-1].__setitem__(0, [12, 15, 99]),
    lambda d: d["head"][1].__setitem__(0, [-1, 40]),
    lambda d: d["head"][0].__setitem__(0, -30),
    lambda d: d.update(scales={"n": [0.5, 0.25]}),
    lambda d: d.update(scales={"n": [0.5, 0.25, 1024, 3]}),
    lambda d: d.update(scales={"n": [1e6, 0.25, 1024]}),
    lambda d: d.update(scales={"n": [0.5, 0.25, -8]}),
    lambda d: d.pop("scales") and d.update(width_multiple="abc"),
    lambda d: d.pop("scales") and d.update(depth_multiple=None),
]


def _base() -> dict:
    from effzoo.yolo.templates import cfg_text

    d = yaml.safe_load(cfg_text("yolo11-effb0.yaml"))
    d["yaml_file"] = "red-team.yaml"
    d["backbone"][0][3] = ["efficientnet_b0", {"pretrained": False}]
    return d


ROWS = [("args", i) for i in range(len(ROW_ARGS))] + [("edit", i) for i in range(len(ROW_EDITS))]


@pytest.mark.parametrize(("kind", "i"), ROWS, ids=[f"row-{k}{i}" for k, i in ROWS])
def test_yaml_row(kind, i):
    pytest.importorskip("ultralytics")
    from ultralytics.nn.tasks import DetectionModel

    import effzoo.yolo  # noqa: F401

    d = _base()
    if kind == "args":
        d["backbone"][0][3] = copy.deepcopy(ROW_ARGS[i])
        if ROW_ARGS[i][-1] == {"width": "scale"}:
            d["scales"]["n"] = [0.5, 50.0, 1024]
    else:
        ROW_EDITS[i](d)
    with yolo_helpers.hub_offline(), pytest.raises(EffzooError) as e:
        DetectionModel(d, nc=3, verbose=False)
    assert "red-team.yaml" in str(e.value)


# -- the CLI ----------------------------------------------------------------------------

CLI: list[list[str]] = [
    ["nope"],
    ["info"],
    ["info", "efficientnet_b99"],
    ["info", "resnet50"],
    ["list", "--nope"],
    ["download"],
    ["download", "efficientnet_b99"],
    ["download", "efficientnet_b0.nope_in1k"],
    ["download", "efficientnet_b0", "--to", ""],
    ["download", "efficientnet_b0", "--to", "/dev/null"],
    *(
        ["yaml", "efficientnet_b0", *extra]
        for extra in [
            ["--width", "nan"],
            ["--width", "inf"],
            ["--width", "0"],
            ["--width", "-1"],
            ["--width", "100"],
            ["--depth", "1e6"],
            ["--depth", "x"],
            ["--nc", "0"],
            ["--nc", "-5"],
            ["--nc", "1.5"],
            ["--task", "track"],
            ["-o", "/dev/full"],
            ["-o", "/"],
        ]
    ),
    ["yaml", "efficientnet_b99"],
    ["yaml"],
    ["info", ""],
    ["download", "--all-tags"],
    ["yaml", "efficientnet_b0", "--scratch", "--width", "0"],
    *(
        ["demo", *extra]
        for extra in [
            ["--epochs", "0"],
            ["--imgsz", "33"],
            ["--imgsz", "0"],
            ["--batch", "0"],
            ["--train-images", "0"],
            ["--val-images", "-1"],
            ["--variant", "efficientnet_b99"],
            ["--out", "/dev/null"],
            ["--epochs", "x"],
        ]
    ),
]


@pytest.mark.parametrize("argv", CLI, ids=[f"cli{i}" for i in range(len(CLI))])
def test_cli(argv, capsys):
    try:
        with yolo_helpers.hub_offline():  # never wait on the network here
            code = cli(argv)
    except SystemExit as e:  # argparse: usage and one error line, exit 2
        code = e.code
        assert code == 2
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    assert "unexpected" not in err  # the dispatcher's line for a bug, not a typed error
    last = err.strip().splitlines()[-1]
    assert last.startswith(("effzoo", "usage:")) or ": error:" in last, err


def test_over_300_bad_inputs():
    counts = {"api": len(API) + len(CALLS), "files": N_FILES, "rows": len(ROWS), "cli": len(CLI)}
    assert sum(counts.values()) >= 300, counts


def test_every_combination_of_two_bad_multipliers_is_refused():
    """A valid width with each bad depth and the reverse, so that neither check hides
    behind the other."""
    for w, d in itertools.chain(
        itertools.product([0.5], BAD_MULTIPLIERS), itertools.product(BAD_MULTIPLIERS, [0.5])
    ):
        with pytest.raises(EffzooError):
            effzoo.create("efficientnet_b0", width_mult=w, depth_mult=d)
