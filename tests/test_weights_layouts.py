"""Pretrained weights on every cache layout the real huggingface_hub writes (issue 17).

Each layout is made by huggingface_hub's own code, never by hand: downloads through
``hf_hub_download`` from the loopback stand-in (tests/hub_server.py: a 302 to a second
"CDN" server with X-Linked-Etag, as the Hub answers for LFS and Xet files), with
symlinks or without (``HF_HUB_DISABLE_SYMLINKS=1``), with Xet enabled or disabled; the
cache-wide shared Xet store that a Xet download leaves, made with
``huggingface_hub.utils._shared_blobs.publish_blob_to_shared_store`` (the Xet transfer
itself cannot be served here; its Xet hash is not the file's sha256); a cache written by
the oldest huggingface_hub effzoo supports (0.30, installed once into
``.venv/effzoo-test/``); a copy made with ``cp -rL``; a cache on a path with spaces and
non-ASCII characters; several processes downloading at once.

For each: online and offline loads get the served file's sha256, from the cache
(``hf-cache``) when offline and never another file in its place (the PyPI copy of
Lite0); no file of the cache is lost; nothing is downloaded twice. Without effzoo's
record (a copied cache, one timm filled) a cached copy loads offline, said in the
provenance to be unchecked against the Hub, and is refused only on evidence of
corruption.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest
import timm
import torch
from hub_server import ROOT, HubStandIn, closed_port, hub_env, run_child, start_child
from safetensors.torch import save_file

import effzoo
from effzoo.backbone import Classifier
from effzoo.weights import catalogue, tags_for

try:  # huggingface_hub 2.x: the cache-wide shared store of Xet downloads
    from huggingface_hub.utils import _shared_blobs  # noqa: F401

    SHARED_STORE = True
except ImportError:  # older releases (scripts/compat_weights.sh runs them) have none
    SHARED_STORE = False
needs_shared_store = pytest.mark.skipif(
    not SHARED_STORE, reason="this huggingface_hub has no shared Xet store (2.x has)"
)
B0 = tags_for("efficientnet_b0")
LITE0 = tags_for("efficientnet_lite0")[0]  # tf_efficientnet_lite0.in1k: a PyPI copy exists
OLDEST_HF = "0.30.2"


def _repo(tag: str) -> str:
    return catalogue()[1][tag].repo


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> HubStandIn:
    """Random-init files in float16: one b0 file served under every b0 tag's repo (so two
    repos can share one store entry), and a Lite0 file under Lite0's default tag."""
    served = tmp_path_factory.mktemp("served")
    server = HubStandIn()
    torch.manual_seed(0)
    for variant, tags in (("efficientnet_b0", B0), ("efficientnet_lite0", [LITE0])):
        sd = Classifier(effzoo.lookup(variant)).state_dict()
        path = served / f"{variant}.safetensors"
        # float16: half the bytes in every cache a test makes (dtype converted on load)
        save_file({k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, str(path))
        for tag in tags:
            server.add(_repo(tag), path)
    yield server
    server.close()


CHILD = r"""
import json, os, shutil, sys
STEPS, = __ARGS__
import effzoo
from huggingface_hub import constants
report = []

def tag_variant(tag):
    return "efficientnet_lite0" if "lite0" in tag else "efficientnet_b0"

def blob_of(tag):
    from huggingface_hub import try_to_load_from_cache
    from effzoo.weights import catalogue
    return os.path.realpath(try_to_load_from_cache(catalogue()[1][tag].repo, "model.safetensors"))

for step in STEPS:
    kind, tag = step[0], step[1]
    if kind == "load":
        offline = step[2]
        if offline:
            os.environ["HF_HUB_OFFLINE"] = "1"
        else:
            os.environ.pop("HF_HUB_OFFLINE", None)
        try:
            w = effzoo.create(tag_variant(tag), pretrained=tag).weights
            report.append(dict(ok=True, source=w.source, sha256=w.sha256, revision=w.revision,
                               note=w.note))
        except Exception as e:
            report.append(dict(ok=False, error=type(e).__name__, message=str(e)))
    elif kind == "publish":  # what a Xet download leaves: the blob moved to the shared store
        from huggingface_hub.utils._shared_blobs import publish_blob_to_shared_store
        blob = blob_of(tag)
        ok = publish_blob_to_shared_store(
            blob_path=blob, xet_hash=step[2], cache_dir=constants.HF_HUB_CACHE,
            expected_size=os.path.getsize(blob))
        report.append(dict(ok=ok, linked=os.path.islink(blob), target=os.path.realpath(blob)))
    elif kind == "rot":  # the cached bytes go bad on disk
        real = blob_of(tag)
        os.chmod(real, 0o600)
        with open(real, "r+b") as f:
            f.seek(-64, 2)
            f.write(b"\xff" * 32)
        report.append(dict(ok=True, path=real))
    elif kind == "timm":  # timm fills the cache itself, as users did before effzoo
        import timm
        timm.create_model(tag, pretrained=True)
        report.append(dict(ok=True))
    elif kind == "cli":
        from effzoo.cli import main as cli
        report.append(dict(ok=cli(step[2]) == 0))
    elif kind == "ctl":
        import urllib.request
        from effzoo.weights import catalogue
        repo = catalogue()[1][tag].repo
        urllib.request.urlopen(f"{os.environ['HF_ENDPOINT']}/_control/{step[2]}/{repo}").read()
        report.append(dict(ok=True))
print(json.dumps(report))
"""


def _run(steps: list, env: dict[str, str]) -> list[dict]:
    code = CHILD.replace("__ARGS__", repr(json.loads(json.dumps([steps]))))
    return run_child(code, env, timeout=300)


def _files(home: Path) -> set[str]:
    """Every path of the cache (links and files), relative to it."""
    hub = home / "hub"
    return {str(p.relative_to(hub)) for p in hub.rglob("*")} if hub.is_dir() else set()


def _gets(hub: HubStandIn, since: int, tag: str) -> int:
    return sum(1 for m, p, *_ in hub.log[since:] if m == "GET" and f"{_repo(tag)}/" in p)


def _served(hub: HubStandIn, tag: str) -> str:
    return hub.files[(_repo(tag), "model.safetensors")].sha256


def _xet_hash(tag: str) -> str:
    """A Xet hash: 64 hex characters that are not the file's sha256."""
    return hashlib.sha256(f"xet:{tag}".encode()).hexdigest()


def _assert_loaded(r: dict, hub: HubStandIn, tag: str, source: str) -> None:
    assert r["ok"], r
    assert (r["source"], r["sha256"]) == (source, _served(hub, tag)), r
    assert r["revision"] == hub.files[(_repo(tag), "model.safetensors")].commit


@pytest.mark.parametrize("xet", ["disabled", "enabled"])
@pytest.mark.parametrize("symlinks", ["symlinks", "no-symlinks"])
def test_plain_cache_online_and_offline(hub, tmp_path: Path, xet: str, symlinks: str):
    """huggingface_hub's own cache, with or without symlinks (Windows without developer
    mode copies), Xet on or off: online, online again, offline; the offline Lite0 load
    is the Hub's file, not the PyPI package's copy."""
    home = tmp_path / "home"
    extra = {"HF_HUB_DISABLE_XET": "1" if xet == "disabled" else "0"}
    if symlinks == "no-symlinks":
        extra["HF_HUB_DISABLE_SYMLINKS"] = "1"
    env = hub_env(hub.url, home, **extra)
    since = len(hub.log)
    tag = B0[0]
    steps = [("load", t, off) for t in (tag, LITE0) for off in (False, False, True)]
    before = None
    r = _run(steps, env)
    for i, t in enumerate((tag, LITE0)):
        online, again, offline = r[3 * i : 3 * i + 3]
        _assert_loaded(online, hub, t, "hub")
        _assert_loaded(again, hub, t, "hub")
        _assert_loaded(offline, hub, t, "hf-cache")
        assert _gets(hub, since, t) == 1, f"{t} was downloaded more than once"
    before = _files(home)
    blobs = [p for p in before if "/blobs/" in f"/{p}/" or p.endswith("/blobs")]
    honoured = hasattr(huggingface_hub.constants, "HF_HUB_DISABLE_SYMLINKS")  # 0.30: absent
    if symlinks == "no-symlinks" and honoured:  # the files themselves in snapshots/
        assert not any((home / "hub" / p).is_symlink() for p in before)
    assert blobs
    # the record lives in effzoo's own directory, not in huggingface_hub's cache
    assert Path(env["EFFZOO_CACHE"], "verified.json").is_file()
    assert not any("effzoo" in p for p in before)


@needs_shared_store
def test_shared_xet_store_and_two_repos_sharing_an_entry(hub, tmp_path: Path):
    """The layout a Xet download leaves in huggingface_hub 2.x: ``blobs/<etag>`` a link
    into ``<cache>/blobs/<xx>/<xet hash>``, shared by two repos. Loading either works
    online and offline; when the store entry goes bad, each repo is repaired through
    huggingface_hub without deleting the entry the other links, and a corrupt repair of
    one leaves the other loading."""
    home = tmp_path / "home"
    env = hub_env(hub.url, home)
    one, two = B0[0], B0[2]
    xet = _xet_hash("b0")
    since = len(hub.log)
    r = _run(
        [("load", one, False), ("load", two, False), ("publish", one, xet), ("publish", two, xet),
         ("load", one, False), ("load", two, True), ("load", one, True)],
        env,
    )  # fmt: skip
    for i in (0, 1, 4):
        _assert_loaded(r[i], hub, one if i != 1 else two, "hub")
    _assert_loaded(r[5], hub, two, "hf-cache")
    _assert_loaded(r[6], hub, one, "hf-cache")
    assert r[2]["linked"] and r[3]["linked"] and r[2]["target"] == r[3]["target"]
    store = Path(r[2]["target"])
    assert store.name == xet and store.parent.parent == home / "hub" / "blobs"
    assert _gets(hub, since, one) == _gets(hub, since, two) == 1
    shared = _files(home)

    since = len(hub.log)
    r = _run(
        [("rot", one), ("ctl", one, "corrupt"), ("load", one, False), ("load", two, False),
         ("load", two, True), ("ctl", one, "ok"), ("load", one, False), ("load", one, True)],
        env,
    )  # fmt: skip
    bad = r[2]
    assert not bad["ok"] and bad["error"] == "CorruptWeightsError", bad
    assert "downloaded twice" in bad["message"] and "nothing was deleted" in bad["message"]
    _assert_loaded(r[3], hub, two, "hub")  # its link pointed at the bad entry: repaired
    _assert_loaded(r[4], hub, two, "hf-cache")
    _assert_loaded(r[6], hub, one, "hub")
    _assert_loaded(r[7], hub, one, "hf-cache")
    assert store.is_file(), "effzoo deleted the shared store entry"
    lost = shared - _files(home)
    assert not lost, f"files of the cache were lost: {sorted(lost)}"
    # one forced download for two (its repair), two for one (a corrupt one, then the repair)
    assert (_gets(hub, since, one), _gets(hub, since, two)) == (2, 1)


NOT_CHECKED = "not checked against the Hub"


def test_copied_cache_loads_without_effzoo_record_never_the_pypi_copy(hub, tmp_path: Path):
    """A cache copied to an offline machine, huggingface_hub's documented move (issue 27,
    item 3): without effzoo's record it loads the Hub's files (never the PyPI package's
    copy of Lite0 in their place), saying in the provenance what could not be checked
    against the Hub; with ``cp -a`` (links kept) a blob is checked against the sha256 it
    is named by, and one that went bad is refused with a fix that works when followed."""
    home = tmp_path / "home"
    env = hub_env(hub.url, home)
    # the fix an offline error prints, followed: `effzoo download` on a connected machine,
    # copy its Hugging Face cache, HF_HUB_OFFLINE=1 there
    r = _run([("cli", LITE0, ["download", LITE0, B0[0]])], env)
    assert all(x["ok"] for x in r), r
    for how in ("-rL", "-a"):  # plain copies (no names to check) / links kept
        copy = tmp_path / f"copy{how}"
        subprocess.run(["cp", how, str(home), str(copy)], check=True)
        offline = hub_env(closed_port(), copy, EFFZOO_CACHE=str(tmp_path / f"none{how}"))
        r = _run([("load", LITE0, False), ("load", B0[0], True)], offline)
        _assert_loaded(r[0], hub, LITE0, "hf-cache")
        _assert_loaded(r[1], hub, B0[0], "hf-cache")
        named = "matches the sha256 huggingface_hub named it by"
        for x in r:
            assert NOT_CHECKED in x["note"] and "shapes checked" in x["note"], x
            assert (named in x["note"]) == (how == "-a"), x["note"]
    # a blob whose content is not its name: refused, and the printed fix works
    online = dict(offline, HF_ENDPOINT=hub.url)
    r = _run([("rot", B0[0]), ("load", B0[0], True)], offline)
    bad = r[1]
    assert not bad["ok"] and bad["error"] == "CorruptWeightsError", bad
    fix = f"run `effzoo download {B0[0]}`"
    assert fix in bad["message"] and "Hub reachable" in bad["message"], bad["message"]
    r = _run([("cli", B0[0], ["download", B0[0]]), ("load", B0[0], True)], online)
    assert r[0]["ok"], r
    _assert_loaded(r[1], hub, B0[0], "hf-cache")
    # verified through the Hub now: nothing left unchecked
    assert NOT_CHECKED not in r[1]["note"] and "cached copy effzoo verified" in r[1]["note"]


def test_cache_filled_by_timm_loads_offline(hub, tmp_path: Path):
    """``timm.create_model(..., pretrained=True)`` downloads into the same cache; effzoo
    loads that copy offline the same way, saying it was not checked against the Hub."""
    home = tmp_path / "home"
    tag = B0[2]
    env = hub_env(hub.url, home)
    r = _run([("timm", tag), ("load", tag, True)], env)
    assert r[0]["ok"]
    _assert_loaded(r[1], hub, tag, "hf-cache")
    assert NOT_CHECKED in r[1]["note"], r[1]


@needs_shared_store
@pytest.mark.parametrize("layout", ["no-symlinks", "shared-xet-store"])
def test_unrecorded_cache_layouts_load_offline(hub, tmp_path: Path, layout: str):
    """Without effzoo's record, on huggingface_hub's other layouts: plain files in
    snapshots/ (HF_HUB_DISABLE_SYMLINKS=1), and the shared Xet store (a blob named by the
    sha256, linked into an entry named by the Xet hash): both load offline; a store entry
    that went bad is refused (its content is not the blob's name)."""
    home = tmp_path / "home"
    tag = B0[3]
    extra = {"HF_HUB_DISABLE_SYMLINKS": "1"} if layout == "no-symlinks" else {}
    env = hub_env(hub.url, home, **extra)
    steps: list = [("load", tag, False)]
    if layout == "shared-xet-store":
        steps.append(("publish", tag, _xet_hash("unrecorded")))
    r = _run(steps, env)
    assert all(x["ok"] for x in r), r
    shutil.rmtree(env["EFFZOO_CACHE"])  # the record did not travel
    r = _run([("load", tag, True)], env)
    _assert_loaded(r[0], hub, tag, "hf-cache")
    assert NOT_CHECKED in r[0]["note"]
    if layout == "shared-xet-store":
        assert "matches the sha256 huggingface_hub named it by" in r[0]["note"]
        shutil.rmtree(env["EFFZOO_CACHE"])
        r = _run([("rot", tag), ("load", tag, True)], env)
        assert not r[1]["ok"] and r[1]["error"] == "CorruptWeightsError", r[1]


def test_odd_cache_path(hub, tmp_path: Path):
    """An HF cache and effzoo record on a path with spaces and non-ASCII characters."""
    home = tmp_path / "caché dir ü 名前" / "hf home"
    env = hub_env(hub.url, home, EFFZOO_CACHE=str(tmp_path / "effzoo ré cord"))
    since = len(hub.log)
    r = _run([("load", B0[1], False), ("load", B0[1], False), ("load", B0[1], True)], env)
    _assert_loaded(r[0], hub, B0[1], "hub")
    _assert_loaded(r[1], hub, B0[1], "hub")
    _assert_loaded(r[2], hub, B0[1], "hf-cache")
    assert _gets(hub, since, B0[1]) == 1


@pytest.fixture(scope="module")
def oldest_hf() -> Path:
    """huggingface_hub 0.30 (the floor in pyproject.toml), installed once, without its
    dependencies (the venv has them), into a folder of its own."""
    target = ROOT / ".venv" / "effzoo-test" / f"huggingface_hub-{OLDEST_HF}"
    if not (target / "huggingface_hub").is_dir():
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(tmp),
             f"huggingface_hub=={OLDEST_HF}"],
            check=True, timeout=300,
        )  # fmt: skip
        os.replace(tmp, target)
    return target


OLD_CHILD = r"""
import json, huggingface_hub as hf
path = hf.hf_hub_download(__REPO__, "model.safetensors")
print(json.dumps(dict(version=hf.__version__, path=path)))
"""


def test_cache_written_by_the_oldest_huggingface_hub(hub, tmp_path: Path, oldest_hf: Path):
    """A file cached by huggingface_hub 0.30 (timm or transformers downloaded it before
    effzoo was installed): offline it loads, said to be unchecked against the Hub; once
    online effzoo verifies it without downloading it again, then it loads offline as
    verified."""
    home = tmp_path / "home"
    tag = B0[3]
    env = hub_env(hub.url, home)
    old = dict(env, PYTHONPATH=str(oldest_hf))
    since = len(hub.log)
    got = run_child(OLD_CHILD.replace("__REPO__", repr(_repo(tag))), old)
    assert got["version"] == OLDEST_HF and Path(got["path"]).is_file()
    before = _files(home)
    r = _run([("load", tag, True), ("load", tag, False), ("load", tag, True)], env)
    _assert_loaded(r[0], hub, tag, "hf-cache")
    assert NOT_CHECKED in r[0]["note"], r[0]
    _assert_loaded(r[1], hub, tag, "hub")
    _assert_loaded(r[2], hub, tag, "hf-cache")
    assert NOT_CHECKED not in r[2]["note"] and "cached copy effzoo verified" in r[2]["note"]
    assert _gets(hub, since, tag) == 1, "the file huggingface_hub 0.30 cached was fetched again"
    assert before <= _files(home)


CONCURRENT = r"""
import json, effzoo
w = effzoo.create("efficientnet_b0", pretrained=__TAG__).weights
print(json.dumps(dict(source=w.source, sha256=w.sha256)))
"""


def test_concurrent_first_downloads(hub, tmp_path: Path):
    """Three processes fetch the same uncached file at once: each gets the verified file,
    it is downloaded once (huggingface_hub's lock), and effzoo's record stays whole."""
    tag = B0[4]
    env = hub_env(hub.url, tmp_path / "home")
    since = len(hub.log)
    hub.delay = 0.05  # 1 MiB per 50 ms: the download lasts about a second
    try:
        procs = [start_child(CONCURRENT.replace("__TAG__", repr(tag)), env) for _ in range(3)]
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        hub.delay = 0.0
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == {
            "source": "hub",
            "sha256": _served(hub, tag),
        }
    assert _gets(hub, since, tag) == 1
    record = json.loads(Path(env["EFFZOO_CACHE"], "verified.json").read_text())
    versions = record["hub"][f"{_repo(tag)}/model.safetensors"]
    assert [v["sha256"] for v in versions] == [_served(hub, tag)]


ENV_CHILD = r"""
import contextlib, io, json, os
import huggingface_hub as hf
import effzoo
from effzoo.cli import main as cli
from effzoo.weights import catalogue
GOOD, OTHER, ROTTEN, XET = __ARGS__
info = catalogue()[1]
effzoo.create("efficientnet_b0", pretrained=GOOD)
hf.hf_hub_download(info[OTHER].repo, "model.safetensors")  # cached by another program
blob = os.path.realpath(effzoo.create("efficientnet_b0", pretrained=ROTTEN).weights.path)
from huggingface_hub.utils._shared_blobs import publish_blob_to_shared_store
publish_blob_to_shared_store(blob_path=blob, xet_hash=XET, cache_dir=hf.constants.HF_HUB_CACHE,
                             expected_size=os.path.getsize(blob))
real = os.path.realpath(blob)
os.chmod(real, 0o600)
with open(real, "r+b") as f:
    f.seek(-64, 2)
    f.write(b"\xff" * 32)
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = cli(["env"])
print(json.dumps(dict(code=code, out=out.getvalue())))
"""


@needs_shared_store
def test_effzoo_env_reports_versions_caches_and_what_verifies(hub, tmp_path: Path):
    home = tmp_path / "home"
    env = hub_env(hub.url, home)
    good, other, rotten = B0[0], B0[1], B0[5]
    args = repr([good, other, rotten, _xet_hash("env")])
    r = run_child(ENV_CHILD.replace("__ARGS__", args), env)
    assert r["code"] == 0
    out = r["out"]
    for line in (
        f"- timm version: {timm.__version__}",
        f"- huggingface_hub version: {huggingface_hub.__version__}",
        f"- HF endpoint: {hub.url}",
        f"- HF cache: {home / 'hub'}",
        f"- HF shared Xet store: {home / 'hub' / 'blobs'}",
        f"- effzoo record: {Path(env['EFFZOO_CACHE'], 'verified.json')} (2 Hub file(s) verified)",
        "- Cached weights tags: 3",
        "- ultralytics version: ",
        "- hf_xet version: ",
    ):
        assert line in out, f"{line!r} not in:\n{out}"
    lines = {ln.split(":")[0].strip(): ln for ln in out.splitlines() if ln.startswith("  ")}
    assert "link, verifies (sha256 " in lines[good] and _served(hub, good)[:12] in lines[good]
    assert (
        "not verified against the Hub yet" in lines[other]
        and f"effzoo download {other}" in lines[other]
    )
    assert lines[rotten].startswith(f"  {rotten}: link into the shared Xet store, CORRUPTED")
